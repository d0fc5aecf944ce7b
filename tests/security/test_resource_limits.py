"""Resource limits: a request body over the limit is refused before it is parsed and before
anyone is authenticated, whether it declares its length or streams it (docs/security.md,
issue 22 row 11)."""

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
