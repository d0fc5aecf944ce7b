"""Resource limits: a request body over the limit is refused before it is parsed and before
anyone is authenticated, whether it declares its length or streams it (issue 22 row 11);
anonymous web chat opens a bounded number of cases per address and per origin (row 12).
See docs/security.md."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.api.bodylimit import DEFAULT_MAX_BODY, BodyLimit, configure
from accord.api.mail import MAX_RAW
from accord.channels.email.mailboxes import DEFAULT_MAX_MESSAGE
from accord.node import Node
from accord.web.portal import MAX_UPLOAD
from tests.clocks import TickingClock, cheap_passwords

LIMIT = 64 * 1024


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    node = Node.init(tmp_path / "node", name="Northwind")
    app = create_app(node, now=TickingClock(), passwords=cheap_passwords(), max_body=LIMIT)
    with TestClient(app) as made:
        yield made
    node.close()


def test_a_declared_body_over_the_limit_is_refused_before_authentication(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    big = b"{" + b" " * (LIMIT * 2) + b"}"
    with caplog.at_level(logging.WARNING, logger="accord.api"):
        answer = client.post(
            "/api/v1/cases", content=big, headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 413  # not 401: no one was authenticated, nothing parsed
    assert "larger than" in answer.json()["detail"]
    assert any("refused: a" in r.getMessage() for r in caplog.records)
    # the login endpoint and the web form alike
    assert client.post("/api/v1/session", content=big).status_code == 413
    assert client.post("/login", content=big).status_code == 413
    # a body under the limit goes on to authentication as before
    assert client.post("/api/v1/cases", json={"title": "x"}).status_code == 401


def test_a_streamed_body_is_cut_when_it_passes_the_limit(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(64):  # 64 x 16 KiB = 1 MiB, sixteen times the limit
            sent += 1
            yield b"a" * 16 * 1024

    with caplog.at_level(logging.WARNING, logger="accord.api"):
        answer = client.post(
            "/api/v1/session", content=chunks(), headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 413, answer.text
    assert any("streamed body" in r.getMessage() for r in caplog.records)


def test_the_limit_leaves_room_for_legitimate_uploads() -> None:
    assert configure(None, {}) == DEFAULT_MAX_BODY > MAX_UPLOAD + 64 * 1024  # portal files
    assert configure(None, {"ACCORD_MAX_BODY_BYTES": "2000000"}) == 2_000_000
    with pytest.raises(ValueError, match="ACCORD_MAX_BODY_BYTES"):
        configure(None, {"ACCORD_MAX_BODY_BYTES": "lots"})
    limited = BodyLimit(lambda *_: None, 1024 * 1024, {"/api/v1/mail/inbound": MAX_RAW + 1})  # type: ignore[arg-type]
    # a whole raw mail in base64, as large as a mailbox accepts
    assert limited.limit_for("/api/v1/mail/inbound") > DEFAULT_MAX_MESSAGE * 4 // 3
    assert limited.limit_for("/api/v1/cases") == 1024 * 1024


# -- issue 22, row 12: anonymous web chat opens a bounded number of cases -------------------


def _chat(client: TestClient, origin: str, text: str) -> dict[str, object]:
    """One new visitor's first message; the frame answering it (ack or error)."""
    with client.websocket_connect("/chat/ws", headers={"Origin": origin}) as ws:
        ws.send_json({"type": "hello"})
        assert ws.receive_json()["type"] == "welcome"
        ws.send_json({"type": "message", "id": "m1", "text": text})
        for _ in range(20):
            frame: dict[str, object] = ws.receive_json()
            if frame["type"] in ("ack", "error"):
                return frame
    raise AssertionError("no answer")


def _cases(client: TestClient) -> int:
    services = client.app.state.services  # type: ignore[attr-defined]
    return len(services.node.cases.list_cases(limit=1000))


def test_anonymous_chat_opens_a_bounded_number_of_cases_per_address(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="accord.webchat"):
        answers = [_chat(client, "https://evil.example", f"spam {n}") for n in range(12)]
    stored = [a for a in answers if a.get("status") == "stored"]
    refused = [a for a in answers if a["type"] == "error"]
    assert len(stored) == 5 and len(refused) == 7  # the probe opened 12
    assert "Too many new conversations" in str(refused[0]["message"])
    assert _cases(client) == 5
    assert any("refused: a new web chat" in r.getMessage() for r in caplog.records)


def test_anonymous_chat_opens_a_bounded_number_of_cases_per_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_CHAT_NEW_PER_ADDRESS", "1000")
    monkeypatch.setenv("ACCORD_CHAT_NEW_PER_ORIGIN", "3")
    node = Node.init(tmp_path / "origin", name="Northwind")
    app = create_app(node, now=TickingClock(), passwords=cheap_passwords())
    with TestClient(app) as client:
        answers = [_chat(client, "https://evil.example", f"spam {n}") for n in range(5)]
        assert [a["type"] for a in answers] == ["ack", "ack", "ack", "error", "error"]
        assert _chat(client, "https://shop.example", "a real question")["type"] == "ack"
    node.close()
