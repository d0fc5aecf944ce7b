"""One person writes by email, then WhatsApp, then web chat; the member links the
identities once; everything lands on one case, on one timeline, and the customer was never
asked to identify again."""

from __future__ import annotations

import hashlib
import hmac
from email.message import EmailMessage
from pathlib import Path

import pytest

from accord.channels.email.mailboxes import Mailbox

from .conftest import Desk, StandIn, fixture


def test_email_then_whatsapp_then_web_chat_is_one_case(desk: Desk, stand_in: StandIn) -> None:
    services = desk.services
    services.mail.mailboxes.add(
        Mailbox(
            id=0,
            address="support@northwind.example",
            display_name="Northwind Support",
            smtp=None,
            imap=None,
        )
    )
    mail = EmailMessage()
    mail["From"] = "Priya Shah <priya@example.com>"
    mail["To"] = "support@northwind.example"
    mail["Subject"] = "Engineer visit"
    mail["Message-ID"] = "<visit-1@example.com>"
    mail.set_content("When will the engineer come?")
    first = services.mail.receive(mail.as_bytes(), recipients=["support@northwind.example"])
    assert first.new_case and first.customer_id is not None

    desk.clock.advance(minutes=5)
    # The member links her phone once (she gave it on the call).
    services.customers.link(first.customer_id, "phone", "+44 7700 900123", by="tom")

    made = desk.client.post(
        "/api/v1/channels",
        json={
            "platform": "whatsapp",
            "name": "Northwind WhatsApp",
            "settings": {"phone_number_id": "106540352242922", "api_base": stand_in.url},
            "secrets": {"app_secret": "s", "verify_token": "v", "access_token": "t"},
        },
        headers=desk.admin,
    )
    body = fixture("whatsapp-text.json", ts=str(int(desk.clock.at.timestamp())))
    signature = "sha256=" + hmac.new(b"s", body, hashlib.sha256).hexdigest()
    desk.client.post(
        f"/hooks/{made.json()['id']}", content=body, headers={"X-Hub-Signature-256": signature}
    )

    desk.clock.advance(minutes=5)
    # And links the web chat visitor once (she said so in the chat).
    visitor = services.webchat.hello(None).visitor
    services.customers.link(first.customer_id, "web", visitor, by="tom")
    with desk.client.websocket_connect("/chat/ws") as ws:
        ws.send_json({"type": "hello", "visitor": visitor})
        welcome = ws.receive_json()
        assert [c["title"] for c in welcome["open_cases"]] == ["Engineer visit"]
        ws.send_json(
            {
                "type": "message",
                "id": "c1",
                "text": "Any news?",
                "case": welcome["open_cases"][0]["ref"],
            }
        )
        assert ws.receive_json()["status"] == "stored"

    timeline = services.customers.timeline(first.customer_id)
    hers = [(t["via"], t["text"]) for t in timeline if t["customer"]]
    assert hers == [
        ("email", "When will the engineer come?"),
        ("whatsapp", "The engineer didn't come"),
        ("webchat", "Any news?"),
    ]
    assert {t["case"] for t in timeline} == {first.case_id}
    view = services.customers.view(first.customer_id)
    assert len(view["cases"]) == 1
    # Nothing Accord sent asked who she was: no message in the case asks to identify.
    everything = " ".join(t["text"].lower() for t in timeline)
    assert "who you are" not in everything and "identify" not in everything


def test_channel_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from accord.cli import app
    from accord.node import Node

    Node.init(tmp_path / "n", name="Northwind").close()
    args = ["--data", str(tmp_path / "n")]
    for key, value in {"BOT_TOKEN": "123:ABC", "SECRET_TOKEN": "s3cret"}.items():
        monkeypatch.setenv(f"ACCORD_CHANNEL_SECRET_{key}", value)
    runner = CliRunner()
    made = runner.invoke(app, ["channel", "add", "telegram", "Support bot", *args])
    assert made.exit_code == 0, made.output
    assert "webhook /hooks/1" in made.output and "123:ABC" not in made.output
    listed = runner.invoke(app, ["channel", "list", *args], env={"COLUMNS": "200"})
    assert "Support bot" in listed.output and "s3cret" not in listed.output
    bad = runner.invoke(app, ["channel", "add", "fax", "x", *args])
    assert bad.exit_code == 1 and "platform must be one of" in bad.output
