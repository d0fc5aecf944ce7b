"""Mail hardening (docs/security.md, issue 22 row 16): a mailbox display name cannot carry
header lines, a password is not sent in clear to a remote relay unless an admin says so,
and a stored raw mail is a download, never a page of this site."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.web.conftest import Desk, make_desk


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    made = make_desk(tmp_path / "node")
    yield made
    made.node.close()


@pytest.fixture
def admin(desk: Desk) -> TestClient:
    ann = desk.services.members.by_username("ann")
    token = desk.services.tokens.create(ann.id, "a", ["channels:admin", "cases:read"]).token
    return TestClient(desk.app, headers={"Authorization": f"Bearer {token}"})


def test_a_display_name_with_a_line_break_is_refused(
    admin: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="accord.channels.email"):
        made = admin.post(
            "/api/v1/mailboxes",
            json={"address": "sales@northwind.example", "display_name": "Sales\r\nBcc: x@evil"},
        )
    assert made.status_code == 422 and "line breaks" in made.text
    assert any("display name" in r.getMessage() for r in caplog.records)
    (box,) = admin.get("/api/v1/mailboxes").json()["mailboxes"]
    changed = admin.patch(
        f"/api/v1/mailboxes/{box['id']}", json={"display_name": "Northwind\nX-Evil: 1"}
    )
    assert changed.status_code == 422
    assert admin.get(f"/api/v1/mailboxes/{box['id']}").json()["display_name"] == "Northwind"


def test_a_password_in_clear_to_a_remote_relay_is_refused_unless_allowed(
    admin: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    relay = {"host": "smtp.example.net", "port": 25, "username": "u", "password": "p4ss"}
    new = {"address": "sales@northwind.example", "display_name": "Sales"}
    with caplog.at_level(logging.WARNING, logger="accord.channels.email"):
        plain = admin.post("/api/v1/mailboxes", json={**new, "smtp": {**relay, "security": "none"}})
    assert plain.status_code == 422 and "in clear" in plain.text
    assert any("in clear to smtp.example.net" in r.getMessage() for r in caplog.records)
    assert "p4ss" not in caplog.text
    # TLS (either way) is fine; so is a relay on this machine; or an admin's explicit choice
    tls = admin.post("/api/v1/mailboxes", json={**new, "smtp": {**relay, "security": "starttls"}})
    assert tls.status_code == 201, tls.text
    local = {**relay, "host": "127.0.0.1", "security": "none"}
    box = tls.json()["id"]
    assert admin.patch(f"/api/v1/mailboxes/{box}", json={"smtp": local}).status_code == 200
    allowed = {**relay, "security": "none", "allow_plaintext": True}
    answer = admin.patch(f"/api/v1/mailboxes/{box}", json={"smtp": allowed})
    assert answer.status_code == 200 and answer.json()["smtp"]["allow_plaintext"] is True


def test_the_raw_mail_is_a_download(desk: Desk, admin: TestClient) -> None:
    message = EmailMessage()
    message["From"] = "Priya <priya@example.com>"
    message["To"] = "support@northwind.example"
    message["Subject"] = "Hi"
    message["Message-ID"] = "<1@example.com>"
    message.set_content("<script>alert(1)</script>", subtype="html")
    receipt = desk.services.mail.receive(
        message.as_bytes(), recipients=["support@northwind.example"]
    )
    raw = admin.get(f"/api/v1/mail/messages/{receipt.row_id}/raw")
    assert raw.status_code == 200 and b"alert(1)" in raw.content
    assert raw.headers["content-disposition"].startswith("attachment;")
    assert raw.headers["x-content-type-options"] == "nosniff"


# -- acknowledgements cannot relay spam (issue 22, row 7) ---------------------------------

SPAM_SUBJECT = "WIN 10000 EUR NOW at http://spam.example/claim"
SPAM_NAME = "Visit spam.example for cheap pills"


def test_an_acknowledgement_echoes_nothing_a_forged_mail_chose(desk: Desk) -> None:
    import sqlalchemy as sa

    from accord.channels.blobs import node_blobs
    from accord.store.tables import channel_messages

    # A forged From: the victim's address, the spammer's subject and display name.
    desk.mail(SPAM_SUBJECT, "Click the link!", sender="victim@example.org", name=SPAM_NAME)
    with desk.node.db.read() as conn:
        (ack,) = conn.execute(
            sa.select(channel_messages).where(channel_messages.c.kind == "acknowledgement")
        ).all()
    raw = _readable(node_blobs(desk.node.data_dir, durable=False).get(ack.raw_sha256))
    assert "victim@example.org" in raw  # it still goes to the From: address
    for echoed in ("spam.example", "WIN 10000", "pills"):
        assert echoed not in raw
        assert echoed not in ack.subject
    assert "We have your message" in ack.subject
    # A second mail from the same address (an open case): the first's subject, now a
    # case title, is not echoed either.
    desk.mail("Second " + SPAM_SUBJECT, "Again", sender="victim@example.org", name=SPAM_NAME)
    with desk.node.db.read() as conn:
        raws = conn.execute(
            sa.select(channel_messages.c.raw_sha256).where(
                channel_messages.c.kind == "acknowledgement"
            )
        ).scalars()
        texts = [_readable(node_blobs(desk.node.data_dir, durable=False).get(r)) for r in raws]
    assert texts and not any("spam.example" in t or "WIN 10000" in t for t in texts)


def _readable(raw: bytes) -> str:
    """The mail's headers and text, decoded (whatever transfer encoding it used)."""
    from email import message_from_bytes, policy

    message = message_from_bytes(raw, policy=policy.default)
    headers = "\n".join(f"{k}: {v}" for k, v in message.items())
    body = message.get_body(("plain",))
    return headers + "\n" + (body.get_content() if body is not None else "")
