"""The web chat over its WebSocket: a visitor's first message opens a case, the next ones
join it, a member's reply arrives, a reconnect brings the history back, resends are not
doubled, and bad frames get a clear error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from accord.api.app import create_app
from accord.node import Node
from accord.service.negotiation import Actor
from accord.service.notes import Notes
from tests.clocks import TickingClock, cheap_passwords


@pytest.fixture
def desk(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, Any]]:
    node = Node.init(tmp_path / "northwind", name="Northwind Broadband", database=database_url)
    app = create_app(node, now=TickingClock(), passwords=cheap_passwords())
    services = app.state.services
    services.members.create("tom", "correct horse battery", role="agent", display_name="Tom Baker")
    services.ownership.set_profile("tom", availability="online")
    with TestClient(app) as client:
        yield client, services
    node.close()


def _until(ws: Any, kind: str) -> dict[str, Any]:
    for _ in range(50):
        frame: dict[str, Any] = ws.receive_json()
        if frame["type"] == kind:
            return frame
    raise AssertionError(f"no {kind} frame")


def test_a_visitor_chats_and_a_member_answers(desk: tuple[TestClient, Any]) -> None:
    client, services = desk
    script = client.get("/chat/widget.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    with client.websocket_connect("/chat/ws") as ws:
        ws.send_json({"type": "hello"})
        welcome = _until(ws, "welcome")
        visitor = welcome["visitor"]
        assert welcome["messages"] == []
        ws.send_json({"type": "message", "id": "m1", "text": "Is there an outage in Leeds?"})
        assert _until(ws, "ack") == {"type": "ack", "id": "m1", "status": "stored"}
        mine = _until(ws, "message")["message"]
        assert mine["mine"] and mine["text"] == "Is there an outage in Leeds?"
        ws.send_json({"type": "message", "id": "m1", "text": "Is there an outage in Leeds?"})
        assert _until(ws, "ack")["status"] == "duplicate"  # a resend after a drop
        case_id = services.webchat.current_case(visitor)
        services.negotiation.post_message(
            Actor(member="Tom Baker", via="web"), case_id, "Yes, fixed by 3 pm."
        )
        texts = []
        while "Yes, fixed by 3 pm." not in texts:
            texts.append(_until(ws, "message")["message"]["text"])
        ws.send_json({"type": "message", "id": "m2", "text": "Thanks!"})
        assert _until(ws, "ack")["status"] == "stored"
    assert services.webchat.current_case(visitor) == case_id  # joined, not a new case
    with client.websocket_connect("/chat/ws") as ws:  # a reload
        ws.send_json({"type": "hello", "visitor": visitor})
        history = [m["text"] for m in _until(ws, "welcome")["messages"]]
    assert history[0] == "Is there an outage in Leeds?"
    assert "Yes, fixed by 3 pm." in history and history[-1] == "Thanks!"
    assert history.count("Is there an outage in Leeds?") == 1


def test_contact_left_in_the_chat_is_a_note_not_an_identity(desk: tuple[TestClient, Any]) -> None:
    client, services = desk
    with client.websocket_connect("/chat/ws") as ws:
        ws.send_json({"type": "hello"})
        visitor = _until(ws, "welcome")["visitor"]
        ws.send_json({"type": "contact", "kind": "email", "value": "jo@example.com"})
        assert "write a message first" in _until(ws, "error")["message"]
        ws.send_json({"type": "message", "id": "a", "text": "Call me back please"})
        _until(ws, "ack")
        ws.send_json({"type": "contact", "kind": "phone", "value": "+44 7700 900123"})
        assert _until(ws, "contact")["value"] == "+447700900123"
        ws.send_json({"type": "contact", "kind": "phone", "value": "not a number"})
        assert "international form" in _until(ws, "error")["message"]
        ws.send_json({"type": "dance"})
        assert "unknown frame type" in _until(ws, "error")["message"]
        ws.send_text("{not json")
        assert _until(ws, "error")["message"] == "not a JSON frame"
        ws.send_json({"type": "message", "id": "b", "text": "x" * 5000})
        assert "at most 4000" in _until(ws, "error")["message"]
    case_id = services.webchat.current_case(visitor)
    (note,) = Notes(services.node.cases).list(case_id)
    assert "+447700900123" in note.text and "not verified" in note.text
    with services.node.db.read() as conn:
        assert services.customers.customers.find(conn, "phone", "+447700900123") is None


def test_a_socket_must_say_hello(desk: tuple[TestClient, Any]) -> None:
    client, _ = desk
    with client.websocket_connect("/chat/ws") as ws:
        ws.send_json({"type": "message", "text": "hi"})
        closed = ws.receive()
    assert closed["type"] == "websocket.close" and closed["code"] == 1008


def test_a_known_customer_is_offered_their_open_cases(desk: tuple[TestClient, Any]) -> None:
    client, services = desk
    from accord.channels.intake import Inbound

    by_mail = services.mail.intake.receive(
        Inbound(
            channel="email",
            external_id="<1@example.com>",
            content_hash="h",
            identity_kind="email",
            identity="priya@example.com",
            sender_name="Priya Shah",
            subject="My new price",
            text="Can I have the new price?",
        )
    )
    visitor = services.webchat.hello(None).visitor
    services.customers.link(by_mail.customer_id, "web", visitor, by="tom")
    with client.websocket_connect("/chat/ws") as ws:
        ws.send_json({"type": "hello", "visitor": visitor})
        offered = _until(ws, "welcome")["open_cases"]
        assert [c["title"] for c in offered] == ["My new price"]
        ws.send_json({"type": "message", "id": "x", "text": "any news?", "case": offered[0]["ref"]})
        assert _until(ws, "ack")["status"] == "stored"
    assert services.webchat.current_case(visitor) == by_mail.case_id
