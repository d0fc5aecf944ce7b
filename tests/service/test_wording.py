"""The one vocabulary the case page and the signed copy share (accord.service.wording)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from accord.service.report import money_or_value
from accord.service.wording import change_words, party_name, when

LONDON = ZoneInfo("Europe/London")
PARTIES = {"n": {"name": "Northwind Broadband"}, "c": {"name": "Priya Shah"}}


def test_an_activity_names_its_owner_member_due_time_and_promise() -> None:
    change = {
        "op": "activity.put",
        "kind": "callback",
        "title": "Call Priya",
        "owner": "n",
        "member": "Tom Baker",
        "due": "2026-07-02T08:00:00Z",
        "committed": {"by": "n"},
    }
    assert change_words(change, PARTIES, LONDON) == (
        "Callback: Call Priya — Northwind Broadband (Tom Baker), due Thu 02 Jul 2026, 09:00;"
        " promised by Northwind Broadband"
    )


def test_values_are_shown_by_the_callers_formatter() -> None:
    change = {
        "op": "data.put",
        "key": "fee",
        "label": "Monthly fee",
        "value": {"type": "money", "amount": "40.00", "currency": "GBP", "per": "month"},
    }
    assert change_words(change, PARTIES, LONDON) == "Monthly fee: 40.00 GBP/month"
    assert (
        change_words(change, PARTIES, LONDON, value=lambda v: money_or_value(v, LONDON))
        == "Monthly fee: £40.00 a month"
    )


def test_a_cancelled_activity_is_named_by_its_title_when_known() -> None:
    change = {"op": "activity.remove", "activity": "a1"}
    assert change_words(change, PARTIES, LONDON) == "Cancel a1"
    assert change_words(change, PARTIES, LONDON, titles={"a1": "Engineer visit"}) == (
        "Cancel Engineer visit"
    )


def test_parties_and_keys() -> None:
    assert change_words({"op": "party.add", "party": {"name": "FibreFix"}}, PARTIES, LONDON) == (
        "Add FibreFix as a party"
    )
    assert change_words({"op": "party.key", "party": "c"}, PARTIES, LONDON) == (
        "Priya Shah moves to its own key"
    )
    assert party_name(PARTIES, "unknown") == "unknown"
    assert party_name(PARTIES, None) == ""


def test_times_in_the_zone_and_unparsable_times_as_they_are() -> None:
    assert when("2026-01-05T09:00:00Z", LONDON) == "Mon 05 Jan 2026, 09:00"
    assert when("next Tuesday", LONDON) == "next Tuesday"
    assert when(None, LONDON) == ""
