"""Nothing waits on the database without a limit: with PostgreSQL frozen (a proxy that
keeps the connections open and passes no byte, as SIGSTOP would) ``/ready`` says "not
ready" within about a second and API requests fail with a clean 503 within the
configured timeouts, then all recovers; a lock held too long is a 503 after
``lock_timeout``; a COMMIT that fails is not reported as "nothing was changed"."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.node import Node
from accord.ops.http import instrument
from accord.store import database
from accord.store.database import Database, Timeouts
from tests.clocks import FakeClock
from tests.freezable_proxy import FreezableProxy


@pytest.fixture
def frozen_desk(
    tmp_path: Path, postgres_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """A node on its own PostgreSQL database, reached through a freezable proxy, with
    short timeouts: 1 s per statement and per lock wait, 2 s to connect."""
    monkeypatch.setenv(database.ENV_STATEMENT_TIMEOUT, "1")
    monkeypatch.setenv(database.ENV_LOCK_TIMEOUT, "1")
    monkeypatch.setenv(database.ENV_CONNECT_TIMEOUT, "2")
    name = f"accord_f_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    direct = sa.make_url(postgres_admin_url).set(database=name)
    proxy = FreezableProxy((direct.host or "127.0.0.1", direct.port or 5432))
    node: Node | None = None
    try:
        Node.init(
            tmp_path / "n", name="Northwind", database=str(direct.render_as_string(False))
        ).close()
        via = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        node = Node.open(tmp_path / "n", database=via)
        app = create_app(node, rate_limit=0, now=FakeClock())
        services = app.state.services
        tom = services.members.create(
            "tom", "correct horse battery", role="agent", display_name="Tom"
        )
        token = services.tokens.create(tom.id, "t", ["cases:read", "cases:write"]).token
        with TestClient(app, raise_server_exceptions=False) as client:
            yield {
                "client": client,
                "auth": {"Authorization": f"Bearer {token}"},
                "proxy": proxy,
                "direct": direct.render_as_string(False),
            }
        services.close()
    finally:
        proxy.close()
        if node is not None:
            node.close()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


@pytest.mark.postgres
def test_a_frozen_database_is_not_ready_at_once_and_requests_fail_cleanly_in_time(
    frozen_desk: dict[str, Any],
) -> None:
    client, auth, proxy = frozen_desk["client"], frozen_desk["auth"], frozen_desk["proxy"]
    body = {"title": "Line down"}
    assert client.get("/ready").status_code == 200
    assert client.post("/api/v1/cases", json=body, headers=auth).status_code == 201

    proxy.freeze()
    ready, took = timed(lambda: client.get("/ready"))
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    assert took < 2.5, took  # a 1 s deadline; before: 45 s, then 200

    # Client-side limit: statement 1 s + 2 s of grace for the pool's ping of the open
    # connection, then 2 s to connect anew. Generous bound, far below the old hang.
    down, took = timed(lambda: client.post("/api/v1/cases", json=body, headers=auth))
    assert down.status_code == 503, down.text
    assert took < 15, took
    answer = down.json()
    assert answer["error"] == "unavailable" and down.headers["Retry-After"] == "5"
    assert answer["changed"] is False and "nothing was changed" in answer["message"]
    listed, took = timed(lambda: client.get("/api/v1/cases", headers=auth))
    assert listed.status_code == 503 and took < 15, took
    assert client.get("/ready").status_code == 503
    assert client.get("/health").status_code == 200  # the process itself is fine

    proxy.thaw()
    deadline = time.monotonic() + 20
    while client.get("/ready").status_code != 200:
        assert time.monotonic() < deadline, "the node did not become ready again"
        time.sleep(0.2)
    assert client.post("/api/v1/cases", json=body, headers=auth).status_code == 201
    cases = client.get("/api/v1/cases", headers=auth).json()["cases"]
    assert len(cases) == 2  # the refused request left nothing behind


@pytest.mark.postgres
def test_a_lock_held_too_long_is_a_503_after_the_lock_timeout(
    frozen_desk: dict[str, Any],
) -> None:
    client, auth = frozen_desk["client"], frozen_desk["auth"]
    holder = sa.create_engine(frozen_desk["direct"])
    try:
        with holder.begin() as conn:
            conn.exec_driver_sql("LOCK TABLE cases IN ACCESS EXCLUSIVE MODE")
            listed, took = timed(lambda: client.get("/api/v1/cases", headers=auth))
            assert listed.status_code == 503, listed.text
            assert listed.json()["changed"] is False
            assert took < 8, took  # lock_timeout is 1 s
        assert client.get("/api/v1/cases", headers=auth).status_code == 200
    finally:
        holder.dispose()


def test_a_failed_commit_is_not_reported_as_nothing_changed(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}", timeouts=Timeouts())
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")

    @sa.event.listens_for(db.writer, "commit")
    def _lost(_conn: Any) -> None:  # as a COMMIT whose answer never came back
        raise sa.exc.OperationalError("COMMIT", {}, Exception("server closed the connection"))

    app = FastAPI()
    instrument(app)

    @app.post("/read-then-fail")
    def read_then_fail() -> None:
        with db.read() as conn:
            conn.exec_driver_sql("SELECT 1")
        raise sa.exc.OperationalError("SELECT", {}, Exception("statement timeout"))

    @app.post("/commit")
    def commit() -> None:
        with db.write() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")

    with TestClient(app, raise_server_exceptions=False) as client:
        early = client.post("/read-then-fail")
        late = client.post("/commit")
    db.dispose()
    assert early.status_code == late.status_code == 503
    assert early.json()["changed"] is False
    assert late.json()["changed"] is None and "nothing was changed" not in late.json()["message"]
    assert "check before trying again" in late.json()["message"]
