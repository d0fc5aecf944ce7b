"""The client covers the API: every operation in a live node's ``/openapi.json`` is a
client method with the same path, query and body names, and the client has nothing else.

``/federation/v1/…`` is left out: those endpoints are node to node, signed with the
calling node's key by ``accord.federation`` (``accord join``, ``accord sync``), not
something a program with an API token calls.
"""

from __future__ import annotations

from typing import Any

import httpx

from accord.client import OPERATIONS, AccordClient

from .conftest import Desk

NODE_TO_NODE = "/federation/"


def live_spec(desk: Desk) -> dict[str, Any]:
    response = httpx.get(f"{desk.url}/openapi.json", timeout=10)
    response.raise_for_status()
    spec: dict[str, Any] = response.json()
    return spec


def api_operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, operations in spec["paths"].items()
        if not path.startswith(NODE_TO_NODE)
        for method, operation in operations.items()
    }


def body_fields(spec: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return set(schema.get("properties", {}))


def test_every_endpoint_is_a_client_method(live: Desk) -> None:
    spec = live_spec(live)
    in_spec = set(api_operations(spec))
    declared = {(op.method, op.path) for op in OPERATIONS.values()}
    assert len(declared) == len(OPERATIONS), "two client methods call the same operation"
    missing = sorted(f"{m} {p}" for m, p in in_spec - declared)
    assert not missing, f"no client method for {missing}: declare one in accord.client.endpoints"
    extra = sorted(f"{m} {p}" for m, p in declared - in_spec)
    assert not extra, f"client methods for operations the API does not have: {extra}"
    # the exclusion is deliberate and only that: node-to-node endpoints exist and are left out
    assert any(path.startswith(NODE_TO_NODE) for path in spec["paths"])
    assert not any(op.path.startswith(NODE_TO_NODE) for op in OPERATIONS.values())


def test_client_methods_take_the_operations_parameters(live: Desk) -> None:
    spec = live_spec(live)
    operations = api_operations(spec)
    for name, op in OPERATIONS.items():
        operation = operations[(op.method, op.path)]
        parameters = operation.get("parameters", [])
        where = f"{name} ({op.method} {op.path})"
        assert set(op.path_names) == {p["name"] for p in parameters if p["in"] == "path"}, where
        assert set(op.query_names) == {p["name"] for p in parameters if p["in"] == "query"}, where
        assert set(op.body_names) == body_fields(spec, operation), where
        # and the method is there, with that name, on both clients
        assert callable(getattr(AccordClient("http://unused"), name)), where
