"""Schemathesis against ``/openapi.json``: no generated request makes the server fail,
and every success body conforms to the schema the document gives it.

Requests carry a valid member token and, for ``{case_id}``, a real case, so the
generated bodies reach the services and the core rather than stopping at a 401 or 404.
Database behaviour on both backends is covered elsewhere; this runs on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import response_schema_conformance

from accord.api.app import create_app
from accord.node import Node
from tests.clocks import TickingClock, cheap_passwords

CASEWORK = ["cases:read", "cases:write", "notes:read", "notes:write"]


class Context:
    headers: dict[str, str]
    case_id: str


@pytest.fixture
def api_schema(tmp_path: Path) -> Iterator[Any]:
    node = Node.init(tmp_path / "node", name="Northwind Broadband")
    app = create_app(
        node, rate_limit=0, now=TickingClock(), passwords=cheap_passwords()
    )  # ~600 generated requests on one token
    services = app.state.services
    tom = services.members.create(
        "tom", "correct horse battery", role="agent", display_name="Tom Baker"
    )
    token = services.tokens.create(tom.id, "schemathesis", CASEWORK).token
    from accord.service.negotiation import Actor

    opened = services.negotiation.open_case(
        Actor("Tom Baker", "api"),
        title="Broadband",
        party_id=services.party_id,
        party_name=node.name,
        customer={"id": "priya", "name": "Priya Shah"},
        topics=[{"topic": "price", "title": "New price"}],
    )
    Context.headers = {"Authorization": f"Bearer {token}"}
    Context.case_id = opened.case_id
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    node.close()


def test_no_request_makes_the_server_fail(api_schema: Any) -> None:
    """Every operation, with generated parameters and bodies, answers below 500.

    Drives schemathesis' strategies with Hypothesis directly: its pytest plugin does
    not support pytest 9 yet.
    """
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 30

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def call(case: Any) -> None:
            if case.path_parameters and "case_id" in case.path_parameters:
                case.path_parameters["case_id"] = Context.case_id
            response = case.call(headers=Context.headers)
            assert response.status_code < 500, (
                case.method,
                case.formatted_path,
                response.text[:500],
            )
            if response.status_code < 300:
                # the body is what /openapi.json says (tests/api/test_response_schemas.py)
                case.validate_response(response, checks=[response_schema_conformance])

        call()
