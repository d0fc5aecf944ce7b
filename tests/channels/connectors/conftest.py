"""A node with a member, the connectors on a controllable clock, and a loopback stand-in
of the platforms' HTTP APIs that records every request and answers as documented."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.channels.connectors.accounts import Connectors
from accord.jobs.queue import JobQueue
from accord.jobs.worker import Worker
from accord.node import Node
from tests.clocks import cheap_passwords
from tests.servers import free_port

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class StandIn:
    """The platforms' send endpoints on 127.0.0.1: answers by path prefix."""

    url: str
    seen: list[Seen] = field(default_factory=list)
    answers: dict[str, Callable[[Seen], tuple[int, dict[str, str], bytes]]] = field(
        default_factory=dict
    )

    def answer(
        self, prefix: str, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        self.answers[prefix] = lambda _seen: (status, headers or {}, data)


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    made = StandIn(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            seen = Seen(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            made.seen.append(seen)
            answer = next(
                (
                    a
                    for p, a in sorted(made.answers.items(), key=lambda i: -len(i[0]))
                    if self.path.startswith(p)
                ),
                None,
            )
            status, headers, body = answer(seen) if answer else (404, {}, b'{"error":"no route"}')
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _any

        def log_message(self, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    made.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield made
    server.shutdown()
    server.server_close()


@dataclass
class Desk:
    client: TestClient
    node: Node
    services: Any
    clock: Clock
    tom: dict[str, str]
    admin: dict[str, str]

    @property
    def connectors(self) -> Connectors:
        connectors: Connectors = self.services.connectors
        return connectors

    def run_jobs(self) -> None:
        queue = JobQueue(self.node.db, now=self.clock)
        Worker(
            self.node.db,
            queue,
            {"channel.send": self.connectors.send},
            worker_id="t",
            now=self.clock,
        ).run_once()


@pytest.fixture
def desk(tmp_path: Path, database_url: str) -> Iterator[Desk]:
    node = Node.init(tmp_path / "northwind", name="Northwind Broadband", database=database_url)
    clock = Clock()
    app = create_app(node, now=clock, rate_limit=0, passwords=cheap_passwords())
    services = app.state.services
    tom = services.members.create(
        "tom", "correct horse battery", role="agent", display_name="Tom Baker"
    )
    services.ownership.set_profile("tom", availability="online")
    ada = services.members.create("ada", "correct horse battery", role="admin", display_name="Ada")
    tom_token = services.tokens.create(tom.id, "t", ["cases:read", "cases:write"]).token
    ada_token = services.tokens.create(ada.id, "a", ["channels:admin", "cases:read"]).token
    with TestClient(app, base_url="https://support.northwind.example") as client:
        yield Desk(
            client,
            node,
            services,
            clock,
            {"Authorization": f"Bearer {tom_token}"},
            {"Authorization": f"Bearer {ada_token}"},
        )
    node.close()


FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str, **replace: str) -> bytes:
    text = (FIXTURES / name).read_text()
    for key, value in replace.items():
        text = text.replace("{" + key + "}", value)
    return text.encode()
