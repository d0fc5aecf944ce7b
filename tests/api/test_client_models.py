"""The typed client reads only what ``/openapi.json`` says the server returns.

``accord.client``'s models (``accord.client.models``, TypedDicts written by hand) are
checked against the document, not generated from it: for every client method whose answer
is typed, each field the model names must exist in the operation's success schema with a
compatible type (nested models and lists followed). A field renamed or retyped on the
server, or a client field the server never sends, fails here.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest
from fastapi.testclient import TestClient

import accord.client.endpoints as endpoints
from accord.api.app import create_app
from accord.client import OPERATIONS
from accord.node import Node
from tests.clocks import FakeClock, cheap_passwords

JSON_TYPES = {str: {"string"}, int: {"integer"}, float: {"number", "integer"}, bool: {"boolean"}}


@pytest.fixture
def document(tmp_path: Path) -> Iterator[dict[str, Any]]:
    node = Node.init(tmp_path / "node", name="Northwind Broadband")
    app = create_app(node, now=FakeClock(), passwords=cheap_passwords())
    with TestClient(app) as client:
        yield client.get("/openapi.json").json()
    node.close()


class Checker:
    def __init__(self, document: dict[str, Any]) -> None:
        self.schemas: dict[str, Any] = document["components"]["schemas"]
        self.problems: list[str] = []

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.schemas[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def alternatives(self, schema: dict[str, Any]) -> list[dict[str, Any]]:
        schema = self.resolve(schema)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return [a for s in schema[key] for a in self.alternatives(s)]
        return [schema]

    def check(self, where: str, hint: Any, schema: dict[str, Any]) -> None:
        """``hint`` (the client's type) can hold every value ``schema`` allows."""
        if hint is Any:
            return
        origin, args = get_origin(hint), get_args(hint)
        if origin in (Union, types.UnionType):
            options = [a for a in args if a is not type(None)]
            allowed = self.alternatives(schema)
            if any(s.get("type") == "null" for s in allowed) and type(None) not in args:
                self.problems.append(f"{where}: the server may send null; the client says {hint}")
            for s in (s for s in allowed if s.get("type") != "null"):
                if not any(self.fits(option, s) for option in options):
                    self.problems.append(f"{where}: {s} fits none of {hint}")
            return
        for s in self.alternatives(schema):
            if s.get("type") == "null":
                self.problems.append(f"{where}: the server may send null; the client says {hint}")
            elif not self.fits(hint, s, where):
                self.problems.append(f"{where}: the client says {hint}, the server sends {s}")

    def fits(self, hint: Any, schema: dict[str, Any], where: str | None = None) -> bool:
        if hint is Any or (not schema.get("type") and not schema.get("properties")):
            return True  # an open value: nothing to compare
        origin = get_origin(hint) or hint
        if is_typeddict(hint):
            if schema.get("type") not in (None, "object"):
                return False
            if where is not None:
                self.fields(where, hint, schema)
            return True
        if origin is list:
            if schema.get("type") != "array":
                return False
            if where is not None and get_args(hint):
                self.check(f"{where}[]", get_args(hint)[0], schema.get("items", {}))
            return True
        if origin is dict:
            return schema.get("type") == "object"
        return schema.get("type") in JSON_TYPES.get(origin, set())

    def fields(self, where: str, model: Any, schema: dict[str, Any]) -> None:
        schema = self.resolve(schema)
        properties = schema.get("properties", {})
        for name, hint in get_type_hints(model).items():
            if name not in properties:
                self.problems.append(f"{where}.{name}: the response schema has no such field")
                continue
            self.check(f"{where}.{name}", hint, properties[name])


def _return_type(declared: Any) -> Any:
    annotation = declared.signature.return_annotation
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(endpoints), dict(vars(typing)))
    return annotation


def _typed(hint: Any) -> bool:
    if is_typeddict(hint):
        return True
    return any(_typed(a) for a in get_args(hint))


def _success_schema(operation: dict[str, Any]) -> dict[str, Any]:
    for code, response in sorted(operation["responses"].items()):
        if code.startswith("2"):
            content = response.get("content", {})
            schema: dict[str, Any] = content.get("application/json", {}).get("schema", {})
            return schema
    raise AssertionError("the operation has no success response")


def test_the_clients_models_match_the_response_schemas(document: dict[str, Any]) -> None:
    checker = Checker(document)
    checked = 0
    for name, declared in OPERATIONS.items():
        hint = _return_type(declared)
        if not _typed(hint):
            continue
        operation = document["paths"][declared.path][declared.method.lower()]
        checker.check(f"{name}()", hint, _success_schema(operation))
        checked += 1
    assert checked >= 10, "the client types fewer answers than it did (see accord.client.models)"
    assert not checker.problems, "\n".join(checker.problems)


def test_the_check_catches_a_client_field_the_server_never_sends(
    document: dict[str, Any],
) -> None:
    """A guard on the guard: a model with a field the server lacks, or the wrong type."""

    class Wrong(typing.TypedDict):
        case: int  # a string on the server
        colour: str  # never sent

    checker = Checker(document)
    schema = _success_schema(document["paths"]["/api/v1/cases/{case_id}/messages"]["post"])
    checker.check("wrong()", Wrong, schema)
    assert len(checker.problems) == 2, checker.problems
