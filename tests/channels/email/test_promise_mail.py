"""Issue 19, item 4: the customer hears by mail of a promise made at once."""

from __future__ import annotations

from accord.service.negotiation import Actor
from tests.channels.email.conftest import MailDesk, Sink, mail
from tests.channels.email.test_mail_pipeline import _ack_text, _sent


def test_a_promise_reaches_the_customer_by_mail(desk: MailDesk, sink: Sink) -> None:
    case_id = desk.receive(mail()).case_id or ""
    desk.run_jobs()
    tom = Actor(member="Tom Baker", via="phone")
    desk.services.negotiation.commit(
        tom,
        case_id,
        {
            "activity": "callback",
            "title": "Call you back about the router",
            "kind": "callback",
            "due": "2026-11-25T10:00:00Z",
        },
        note="As we said on the phone.",
    )
    desk.run_jobs()
    text = _ack_text(_sent(sink))
    assert "Promised: “Call you back about the router”, by 10:00 UTC on 25 November 2026" in text
    assert "As we said on the phone." in text
