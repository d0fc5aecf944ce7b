"""Schemathesis over the webhook endpoints with an admin's token (the whole-API run in
tests/api/test_schema.py calls them without ``members:admin``): no generated request
makes the server fail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from accord.api.app import create_app
from accord.node import Node
from tests.clocks import TickingClock, cheap_passwords

ADMIN = ["cases:read", "cases:write", "members:admin"]


class Context:
    headers: dict[str, str]


@pytest.fixture
def webhook_schema(tmp_path: Path) -> Iterator[Any]:
    node = Node.init(tmp_path / "node", name="Northwind Broadband")
    app = create_app(node, now=TickingClock(), passwords=cheap_passwords())
    services = app.state.services
    services.webhooks.resolver = lambda _host, _port: ["93.184.216.34"]  # no real DNS
    ada = services.members.create(
        "ada", "correct horse battery", role="admin", display_name="Ada Admin"
    )
    Context.headers = {
        "Authorization": f"Bearer {services.tokens.create(ada.id, 's', ADMIN).token}"
    }
    services.webhooks.create("https://hooks.example.com/in", ["case.opened"], created_by="ada")
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    node.close()


def test_no_request_to_the_webhook_endpoints_makes_the_server_fail(webhook_schema: Any) -> None:
    operations = [
        result.ok()
        for result in webhook_schema.get_all_operations()
        if result.ok().path.startswith("/api/v1/webhooks")
    ]
    assert len(operations) == 7

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def call(case: Any) -> None:
            response = case.call(headers=Context.headers)
            assert response.status_code < 500, (
                case.method,
                case.formatted_path,
                response.text[:500],
            )

        call()
