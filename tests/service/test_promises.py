"""Issue 19, item 4: a callback promised on the phone is tracked at once — no acceptance
needed — so its reminder comes before the due time like any agreed callback's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.service.test_accountable import Desk, desk, open_case

__all__ = ["desk"]  # the fixture, shared with test_accountable


def test_a_callback_promised_on_the_phone_is_reminded_without_any_acceptance(
    desk: Desk,
) -> None:
    case_id = open_case(desk)
    due = datetime(2026, 10, 23, 14, 0, tzinfo=UTC)  # Friday 15:00 BST
    promised = desk.client.post(
        f"/api/v1/cases/{case_id}/activities",
        headers=desk.as_("tom"),
        json={
            "activity": "callback",
            "title": "Call Priya about the router",
            "kind": "callback",
            "member": "Tom Baker",
            "due": due.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "note": "promised on the phone",
        },
    )
    assert promised.status_code == 201, promised.text
    case = desk.client.get(f"/api/v1/cases/{case_id}", headers=desk.as_("tom")).json()
    assert case["agreement"]["version"] == 0  # nobody accepted anything
    assert case["agreement"]["activities"]["callback"]["committed"]["by"] == "northwind-broadband"
    portal = desk.client.get("/api/v1/portal", headers=desk.portal(case_id)).json()
    assert any(e["type"] == "activity.committed" for e in portal["timeline"]), (
        "the customer sees the promise"
    )
    # a promise for another party is refused: that needs a proposal
    other = desk.client.post(
        f"/api/v1/cases/{case_id}/activities",
        headers=desk.as_("tom"),
        json={"activity": "send-photo", "title": "Send a photo", "kind": "task", "owner": "priya"},
    )
    assert other.status_code == 403, other.text

    desk.clock.at = due - timedelta(minutes=15)
    desk.run_due()
    reminders = [n for n in desk.notes_for("tom") if n["kind"] == "reminder"]
    assert len(reminders) == 1 and "Fri 23 Oct 15:00 BST" in reminders[0]["text"]
