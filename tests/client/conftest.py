"""A node's application for the client to call: in-process (``httpx.ASGITransport``) or
served on loopback by uvicorn in a thread of the test process, with a fake clock for
its rate limit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from accord.api.app import create_app
from accord.api.ratelimit import RateLimiter
from accord.node import Node
from tests.clocks import TickingClock, cheap_passwords

from ..servers import free_port

CASEWORK = ["cases:read", "cases:write", "notes:read", "notes:write"]
PASSWORD = "correct horse battery"


@dataclass
class Monotonic:
    """A monotonic clock the test moves."""

    at: float = 1000.0

    def __call__(self) -> float:
        return self.at


@dataclass
class Desk:
    """Northwind's node: Tom (agent) with a full and a read-only token, Ada (admin)."""

    app: FastAPI
    node: Node
    tom: str
    reader: str
    ada: str
    clock: Monotonic
    url: str = field(default="http://northwind.test")

    def transport(self) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=self.app)


def make_desk(tmp_path: Path, per_minute: int = 600, burst: int | None = None) -> Desk:
    node = Node.init(tmp_path / "northwind", name="Northwind Broadband")
    clock = Monotonic()
    app = create_app(
        node,
        rate_limit=RateLimiter(per_minute, burst=burst, clock=clock),
        now=TickingClock(),
        passwords=cheap_passwords(),
    )
    services = app.state.services
    tom = services.members.create("tom", PASSWORD, role="agent", display_name="Tom Baker")
    ada = services.members.create("ada", PASSWORD, role="admin", display_name="Ada Admin")
    return Desk(
        app,
        node,
        tom=services.tokens.create(tom.id, "tests", CASEWORK).token,
        reader=services.tokens.create(tom.id, "dashboard", ["cases:read"]).token,
        ada=services.tokens.create(
            ada.id, "admin", [*CASEWORK, "members:admin", "tokens:admin"]
        ).token,
        clock=clock,
    )


def close_desk(desk: Desk) -> None:
    desk.app.state.services.close()
    desk.node.close()


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    desk = make_desk(tmp_path)
    yield desk
    close_desk(desk)


@pytest.fixture
def live(desk: Desk) -> Iterator[Desk]:
    """The desk served over HTTP on loopback: ``desk.url`` is its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            desk.app, host="127.0.0.1", port=port, lifespan="off", ws="none", log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        threading.Event().wait(0.01)
    desk.url = f"http://127.0.0.1:{port}"
    yield desk
    server.should_exit = True
    thread.join(timeout=10)
