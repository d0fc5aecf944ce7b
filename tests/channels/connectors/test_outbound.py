"""Every outgoing message has a visible fate (issue 20, item 8): queued with its attempts
and last error, sent, delivered and read as the platform reports them (never moved back),
failed with the reason — in ``GET /api/v1/outbound``, ``accord outbound`` and the case
page's conversation, with a failure told to the case's owner; and WhatsApp's 24-hour window
counted from the platform's own timestamp, not from when Accord received the message.
On SQLite and PostgreSQL, through the platforms' documented webhooks and a loopback
stand-in of their APIs."""

from __future__ import annotations

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from accord.api.auth import SESSION_COOKIE
from accord.cli import app as cli_app

from .conftest import Desk, StandIn, fixture
from .test_platforms import _account, _meta_post, _stored, _ts


def _outbound(desk: Desk, query: str = "") -> list[dict[str, object]]:
    answer = desk.client.get(f"/api/v1/outbound{query}", headers=desk.tom)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, object]] = answer.json()
    return found


def test_whatsapp_fates_and_the_window_from_the_platforms_time(
    desk: Desk, stand_in: StandIn
) -> None:
    account = _account(desk, stand_in, "whatsapp")
    # Meta delivers late: the customer wrote 23 hours ago by WhatsApp's own clock
    body = fixture("whatsapp-text.json", ts=_ts(desk, hours=23))
    assert _meta_post(desk, account, body).status_code == 200
    (row,) = _stored(desk, "whatsapp")
    stand_in.answer(
        "/v21.0/106540352242922/messages",
        200,
        {"messaging_product": "whatsapp", "messages": [{"id": "wamid.OUT1"}]},
    )
    sent = desk.client.post(
        f"/api/v1/cases/{row.case_id}/reply", json={"text": "On our way."}, headers=desk.tom
    )
    assert sent.status_code == 200, sent.text
    (queued,) = _outbound(desk)
    assert (queued["status"], queued["channel"], queued["to"]) == (
        "queued",
        "whatsapp",
        ["+447700900123"],
    )
    assert queued["attempts"] == 0 and queued["event"] == sent.json()["event"]
    desk.run_jobs()
    assert _outbound(desk)[0]["status"] == "sent"

    # receipts: delivered, then read; a late "delivered" does not move it back
    delivered = fixture("whatsapp-status.json", ts=_ts(desk), wamid="wamid.OUT1")
    read = delivered.replace(b'"status":"delivered"', b'"status":"read"')
    assert _meta_post(desk, account, delivered).status_code == 200
    assert _outbound(desk, "?channel=whatsapp")[0]["status"] == "delivered"
    assert _meta_post(desk, account, read).status_code == 200
    assert _meta_post(desk, account, delivered).status_code == 200
    assert _outbound(desk, "?status=read")[0]["status"] == "read"
    assert _outbound(desk, "?status=failed") == []

    # the conversation on the case page shows it
    tom = desk.services.members.by_username("tom")
    browser = TestClient(desk.client.app)
    browser.cookies.set(SESSION_COOKIE, desk.services.sessions.create(tom.id).token)
    page = browser.get(f"/cases/{row.case_id}", follow_redirects=True)
    assert page.status_code == 200
    assert '<p class="fate"><span class="sr-only">Delivery: </span>WhatsApp: read' in page.text

    # an hour later by Accord's clock, 24 by WhatsApp's: free text is refused
    desk.clock.advance(hours=1, minutes=1)
    late = desk.client.post(
        f"/api/v1/cases/{row.case_id}/reply", json={"text": "Still there?"}, headers=desk.tom
    )
    assert late.status_code == 409, late.text
    assert "24 hours" in late.json()["message"] and "template" in late.json()["message"]


def test_a_failure_is_shown_listed_and_told_to_the_owner(desk: Desk, stand_in: StandIn) -> None:
    account = _account(desk, stand_in, "telegram")
    good = {"X-Telegram-Bot-Api-Secret-Token": "tg-secret"}
    desk.client.post(
        f"/hooks/{account}", content=fixture("telegram-text.json", ts=_ts(desk)), headers=good
    )
    (row,) = _stored(desk, "telegram")
    tom = desk.services.members.by_username("tom")
    owner = desk.services.ownership.owner(row.case_id)
    assert owner is not None and owner.member.id == tom.id
    stand_in.answer("/bot123:ABC/sendMessage", 429, {"ok": False}, {"Retry-After": "7"})
    desk.client.post(f"/api/v1/cases/{row.case_id}/reply", json={"text": "x"}, headers=desk.tom)
    desk.run_jobs()
    (retrying,) = _outbound(desk)
    assert retrying["status"] == "queued" and retrying["attempts"] == 1
    assert "429" in str(retrying["error"])
    browser = TestClient(desk.client.app)
    browser.cookies.set(SESSION_COOKIE, desk.services.sessions.create(tom.id).token)
    page = browser.get(f"/cases/{row.case_id}", follow_redirects=True).text
    assert "Telegram: queued (1 attempt; last:" in page

    desk.clock.advance(seconds=8)
    stand_in.answer(
        "/bot123:ABC/sendMessage", 400, {"ok": False, "description": "Bad Request: chat not found"}
    )
    desk.run_jobs()
    (failed,) = _outbound(desk, f"?case={row.case_id[:20]}&status=failed")
    assert failed["attempts"] == 2 and "chat not found" in str(failed["error"])
    page = browser.get(f"/cases/{row.case_id}", follow_redirects=True).text
    assert '<p class="fate bad">' in page and "Telegram: not delivered:" in page
    (told,) = [
        n for n in desk.services.ownership.notifications_for(tom.id) if n["kind"] == "send.failed"
    ]
    assert told["case"] == row.case_id
    assert "Your Telegram message to 901234567 was not delivered:" in told["text"]
    assert "chat not found" in told["text"]
    assert "Not delivered" in browser.get("/notifications").text
    # and in the owner's inbox, on the case's row, until a later message goes
    assert '<span class="badge bad">not delivered</span>' in browser.get("/?view=mine").text
    stand_in.answer("/bot123:ABC/sendMessage", 200, {"ok": True, "result": {"message_id": 77}})
    desk.client.post(f"/api/v1/cases/{row.case_id}/reply", json={"text": "y"}, headers=desk.tom)
    desk.run_jobs()
    assert _outbound(desk)[0]["status"] == "sent"
    assert "not delivered</span>" not in browser.get("/?view=mine").text

    # the same list on the command line; a status it does not know is refused
    database = ["--data", str(desk.node.data_dir), "--database", desk.node.db.url]
    shown = CliRunner().invoke(
        cli_app, ["outbound", "--status", "failed", *database], env={"COLUMNS": "250"}
    )
    assert shown.exit_code == 0, shown.output
    assert "telegram" in shown.output and "chat not found" in shown.output
    wrong = CliRunner().invoke(cli_app, ["outbound", "--status", "lost", *database])
    assert wrong.exit_code == 1 and "status is one of queued, sent" in wrong.output
    assert desk.client.get("/api/v1/outbound?status=lost", headers=desk.tom).status_code == 422
    assert desk.client.get("/api/v1/outbound").status_code == 401
    assert desk.client.get("/api/v1/outbound?case=sha256:ffff", headers=desk.tom).status_code == 404
