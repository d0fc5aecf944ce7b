"""Federation: a joining node cannot point this node at an internal address, and a peer
cannot exhaust its memory (docs/security.md, issue 22 rows 3 and 4)."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from accord.core.crypto import NodeKey
from accord.federation.client import PeerClient, PeerError
from tests.federation.test_hostile import (
    TOM,
    MakeA,
    make_a,  # noqa: F401 (the fixture)
    pending_party_adds,
)
from tests.servers import free_port

MiB = 1024 * 1024


@pytest.fixture
def internal() -> Iterator[tuple[str, list[str]]]:
    """An internal service on loopback that must never be reached: records every request."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _any(self) -> None:
            seen.append(f"{self.command} {self.path}")
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = _any

        def log_message(self, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_a_join_naming_an_internal_url_is_refused(
    make_a: MakeA,  # noqa: F811 (the fixture imported above)
    internal: tuple[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("ACCORD_ALLOW_PRIVATE_PEERS", "0")  # as in production
    a = make_a()
    base, seen = internal
    federation = a.app.state.services.federation
    link = federation.invite(a.case, TOM, timedelta(hours=1))
    body = {
        "case": a.case,
        "secret": link.secret,
        "party": {"id": "fibrefix", "name": "Fibrefix", "kind": "organisation"},
        "url": f"{base}/internal-api/v1",
    }
    with caplog.at_level(logging.WARNING, logger="accord.federation"):
        joined = a.post("/federation/v1/join", orjson.dumps(body), key=NodeKey.generate())
    assert joined.status_code in (400, 422), joined.text
    assert "refused" in joined.text
    assert pending_party_adds(a.state()) == []
    assert any("refused" in r.getMessage() for r in caplog.records)
    # Nor does the node call a peer URL on loopback, whatever put it in a case.
    with pytest.raises(PeerError, match="refused"):
        federation.client.post(f"{base}/internal-api/v1/federation/v1/heads", b"{}")
    with pytest.raises(PeerError, match="refused"):
        federation.client.get(f"{base}/internal-api/v1/federation/v1/node")
    assert seen == []


def test_a_huge_sync_reply_is_refused_before_it_is_all_read() -> None:
    sent = [0]
    chunk = b"x" * MiB

    def endless(_request: httpx.Request) -> httpx.Response:
        def body() -> Iterator[bytes]:
            for _ in range(150):  # 150 MiB, streamed, no Content-Length
                sent[0] += len(chunk)
                yield chunk

        return httpx.Response(200, content=body())

    client = PeerClient(
        NodeKey.generate(),
        now=lambda: datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
        transport=httpx.MockTransport(endless),
        allow_private=True,
    )
    with pytest.raises(PeerError, match="larger than"):
        client.post("http://b.test/federation/v1/cases/c/sync", b"{}")
    client.close()
    assert sent[0] <= 64 * MiB + 2 * MiB  # stopped at the limit, not after 150 MiB


def test_a_declared_huge_sync_reply_is_refused_unread() -> None:
    def declared(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"Content-Length": str(150 * MiB)}, content=iter([b"{}"])
        )

    client = PeerClient(
        NodeKey.generate(),
        now=lambda: datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
        transport=httpx.MockTransport(declared),
        allow_private=True,
    )
    with pytest.raises(PeerError, match="larger than"):
        client.post("http://b.test/federation/v1/cases/c/sync", b"{}")
    client.close()
