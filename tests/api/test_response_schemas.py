"""``/openapi.json`` says what every operation returns (issue 24, item 1).

Walks the document the node serves and fails for any 2xx response of any operation whose
body has no schema, or only an empty one (``{}`` or a bare title: what FastAPI writes for
a handler that returns ``Any``). A 204 has no body, so no schema to give.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.node import Node
from tests.clocks import FakeClock, cheap_passwords

DESCRIBING = {"type", "$ref", "anyOf", "oneOf", "allOf", "properties", "items", "const", "enum"}


@pytest.fixture
def document(tmp_path: Path) -> Iterator[dict[str, Any]]:
    node = Node.init(tmp_path / "node", name="Northwind Broadband")
    app = create_app(node, now=FakeClock(), passwords=cheap_passwords())
    with TestClient(app) as client:
        response = client.get("/openapi.json")
        assert response.status_code == 200
        yield response.json()
    node.close()


def _successes(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if code.startswith("2"):
                    yield f"{method.upper()} {path} → {code}", code, response


def _describes(schema: Any) -> bool:
    return isinstance(schema, dict) and bool(DESCRIBING & schema.keys())


def test_every_success_response_has_a_schema(document: dict[str, Any]) -> None:
    missing = []
    for name, code, response in _successes(document):
        content = response.get("content")
        if code == "204":
            assert not content, f"{name}: a 204 has no body"
            continue
        if not content:
            missing.append(f"{name}: no content")
            continue
        for media_type, body in content.items():
            if not _describes(body.get("schema")):
                missing.append(f"{name} ({media_type}): {body.get('schema')}")
    assert not missing, "success bodies without a schema:\n" + "\n".join(missing)


def test_the_walk_sees_the_whole_api(document: dict[str, Any]) -> None:
    """The walk covers the operations that matter (a guard against walking nothing)."""
    names = {name for name, _, _ in _successes(document)}
    assert len(names) > 100
    assert "GET /api/v1/cases/{case_id} → 200" in names
    assert "GET /federation/v1/node → 200" in names
    assert "GET /api/v1/metrics → 200" in names


def test_every_schema_it_names_is_defined(document: dict[str, Any]) -> None:
    """Every ``$ref`` of a success body resolves in ``components.schemas``."""
    defined = set(document.get("components", {}).get("schemas", {}))
    refs: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                refs.add(ref.rsplit("/", 1)[-1])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for _, _, response in _successes(document):
        walk(response)
    walk(document.get("components", {}))
    assert refs <= defined, refs - defined
