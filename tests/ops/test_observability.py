"""Request ids, JSON logs, Prometheus metrics, and a clean 503 while the database is out
of reach (PostgreSQL), then recovery with nothing half-written."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.node import Node
from accord.ops.logs import JsonFormatter
from tests.clocks import TickingClock, cheap_passwords


@pytest.fixture
def desk(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, Any, dict[str, str]]]:
    node = Node.init(tmp_path / "northwind", name="Northwind Broadband", database=database_url)
    app = create_app(node, rate_limit=0, now=TickingClock(), passwords=cheap_passwords())
    services = app.state.services
    ada = services.members.create("ada", "correct horse battery", role="admin", display_name="Ada")
    token = services.tokens.create(ada.id, "ops", ["metrics:read", "cases:read", "cases:write"])
    with TestClient(app) as client:
        yield client, services, {"Authorization": f"Bearer {token.token}"}
    node.close()


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(self.format(record)))


def test_request_ids_and_json_access_lines(desk: tuple[TestClient, Any, dict[str, str]]) -> None:
    client, _, auth = desk
    lines = Lines()
    access = logging.getLogger("accord.access")
    access.addHandler(lines)
    access.setLevel(logging.INFO)
    try:
        given = client.get("/api/v1/cases", headers={**auth, "X-Request-ID": "proxy-1234abcd"})
        made = client.get("/api/v1/cases/abc", headers={**auth, "X-Request-ID": "<script>"})
    finally:
        access.removeHandler(lines)
    assert given.headers["X-Request-ID"] == "proxy-1234abcd"
    assert made.headers["X-Request-ID"] != "<script>" and len(made.headers["X-Request-ID"]) == 24
    first, second = lines.lines[-2:]
    assert first["request_id"] == "proxy-1234abcd"
    assert first["route"] == "/api/v1/cases" and first["status"] == 200
    assert second["route"] == "/api/v1/cases/{case_id}"  # the template, not the id
    assert second["request_id"] == made.headers["X-Request-ID"]
    text = orjson.dumps(lines.lines).decode()
    assert auth["Authorization"].split()[1] not in text  # the token is never logged


def test_metrics_need_the_scope_off_loopback(desk: tuple[TestClient, Any, dict[str, str]]) -> None:
    client, services, auth = desk
    services.mail.intake.receive(
        __import__("accord.channels.intake", fromlist=["Inbound"]).Inbound(
            channel="email",
            external_id="<1@example.com>",
            content_hash="h",
            identity_kind="email",
            identity="priya@example.com",
            sender_name="Priya",
            subject="Price",
            text="Hello",
        )
    )
    client.get("/api/v1/cases", headers=auth)
    assert client.get("/metrics").status_code == 401  # the test client is not loopback
    reader = services.tokens.create(
        services.members.by_username("ada").id, "r", ["cases:read"]
    ).token
    assert client.get("/metrics", headers={"Authorization": f"Bearer {reader}"}).status_code == 403
    scraped = client.get("/metrics", headers=auth)
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    body = scraped.text
    assert 'accord_http_requests_total{method="GET",route="/api/v1/cases",status="200"}' in body
    assert "accord_http_request_duration_seconds_bucket" in body
    assert 'accord_inbound_messages{channel="email",status="stored"} 1.0' in body
    assert 'accord_cases{state="open"} 1.0' in body
    assert "accord_timer_lag_seconds" in body


@pytest.mark.postgres
def test_the_database_out_of_reach_is_a_503_and_nothing_half_written(
    tmp_path: Path, postgres_admin_url: str
) -> None:
    import uuid

    name = f"accord_o_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    node = Node.init(tmp_path / "n", name="Northwind", database=url)
    app = create_app(node, rate_limit=0, now=TickingClock(), passwords=cheap_passwords())
    services = app.state.services
    tom = services.members.create("tom", "correct horse battery", role="agent", display_name="Tom")
    token = services.tokens.create(tom.id, "t", ["cases:read", "cases:write"]).token
    auth = {"Authorization": f"Bearer {token}"}
    body = {"title": "Line down"}
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.post("/api/v1/cases", json=body, headers=auth).status_code == 201
            with admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                conn.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{name}'"
                )
            # Token checks need the database too: every request fails cleanly.
            down = client.post("/api/v1/cases", json=body, headers=auth)
            assert down.status_code == 503, down.text
            assert down.json()["error"] == "unavailable" and down.headers["Retry-After"] == "5"
            assert client.get("/ready").status_code == 503
            assert client.get("/health").status_code == 200  # the process itself is fine
            with admin.connect() as conn:
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            assert client.get("/ready").status_code == 200
            assert client.post("/api/v1/cases", json=body, headers=auth).status_code == 201
            listed = client.get("/api/v1/cases", headers=auth).json()
        assert len(listed["cases"]) == 2  # the refused request left nothing behind
    finally:
        services.close()
        node.close()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
