"""The negotiation service on both backends: scenario 1 and every refusal it owes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from accord.core.bundle import verify_bundle, write_bundle
from accord.core.crypto import NodeKey
from accord.service.errors import Conflict, Forbidden, Invalid, NotFound, StaleProposal
from accord.service.negotiation import Actor, Negotiation
from accord.service.notes import Notes
from accord.service.views import case_view
from accord.store import migrate
from accord.store.cases import CaseStore
from accord.store.database import Database

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TOM = Actor(member="Tom Baker", via="api")
PRIYA = Actor(member="Priya Shah", via="portal", party="priya", session="sess-priya-1")


class Clock:
    def __init__(self) -> None:
        self.at = NOW

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def store(database_url: str) -> Iterator[CaseStore]:
    db = Database(database_url)
    migrate.upgrade(db)
    yield CaseStore(db)
    db.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(store: CaseStore, clock: Clock) -> Negotiation:
    return Negotiation(store, NodeKey(b"northwind".ljust(32, b"\0")), now=clock)


def money(amount: str, per: str | None = "month") -> dict[str, Any]:
    value = {"type": "money", "amount": amount, "currency": "GBP"}
    if per:
        value["per"] = per
    return value


def activity(aid: str, title: str, owner: str, due: str, kind: str = "task") -> dict[str, Any]:
    return {
        "op": "activity.put",
        "activity": aid,
        "title": title,
        "owner": owner,
        "kind": kind,
        "due": due,
    }


def open_broadband(service: Negotiation) -> str:
    return service.open_case(
        TOM,
        title="Business broadband contract",
        party_id="northwind",
        party_name="Northwind Broadband",
        customer={"id": "priya", "name": "Priya Shah"},
        topics=[
            {"topic": "price", "title": "New price"},
            {"topic": "term", "title": "Contract term"},
        ],
    ).case_id


PLAN = [
    {"op": "data.put", "key": "current-price", "value": money("40.00")},
    {"op": "data.put", "key": "new-price", "value": money("20.00")},
    activity("switch", "Switch tariff", "northwind", "2026-12-01T00:00:00Z"),
    activity("address", "Confirm the installation address", "priya", "2026-11-27T17:00:00Z"),
    activity(
        "callback",
        "Call Priya to confirm the switch",
        "northwind",
        "2026-11-24T15:00:00Z",
        kind="callback",
    ),
]


def test_the_broadband_negotiation(service: Negotiation, store: CaseStore) -> None:
    case_id = open_broadband(service)
    plan = service.propose(TOM, case_id, PLAN, note="Same line, half the price").event_ids[0]
    counter = service.counter(
        PRIYA,
        case_id,
        plan,
        [
            *PLAN,
            {
                "op": "data.put",
                "key": "term",
                "value": {
                    "type": "choice",
                    "value": "1-month rolling",
                    "options": ["12 months", "1-month rolling"],
                },
            },
        ],
        note="I want a rolling term",
    ).event_ids[0]
    state = service.state(case_id)
    assert state["proposals"][plan]["state"] == "countered"
    accepted = service.accept(TOM, case_id, counter)
    view = case_view(store.state(case_id) or {}, store.timeline(case_id))
    assert view["agreement"]["version"] == 1
    assert view["agreement"]["proposal"] == counter
    assert set(view["agreement"]["acceptances"]) == {"northwind", "priya"}
    assert view["agreement"]["acceptances"]["northwind"] == accepted.event_ids[0]
    assert {a["activity"] for a in view["activities"]["agreed"]} == {
        "switch",
        "address",
        "callback",
    }
    assert view["timeline"][0]["type"] == "proposal.accepted"
    assert view["timeline"][1]["author"] == {
        "member": "Priya Shah",
        "party": "priya",
        "via": "portal",
    }

    service.report_progress(PRIYA, case_id, "address", "done", note="12 High St")
    credit = service.propose(
        TOM, case_id, [{"op": "data.put", "key": "credit", "value": money("10.00", per="once")}]
    )
    service.accept(PRIYA, case_id, credit.event_ids[0])
    assert service.state(case_id)["terms"]["version"] == 2
    # resolution means the work is done: refused, naming what is open
    with pytest.raises(Conflict) as refused:
        service.satisfied(TOM, case_id, rating=5)
    assert "activities: callback, switch; topics: price, term" in refused.value.message
    assert [a["activity"] for a in refused.value.details["open"]["activities"]] == [
        "callback",
        "switch",
    ]
    for aid in ("callback", "switch"):
        service.report_progress(TOM, case_id, aid, "done")
    for topic in ("price", "term"):
        service.close_topic(TOM, case_id, topic)
    service.satisfied(TOM, case_id, rating=5)
    service.satisfied(PRIYA, case_id, rating=4, note="Thanks, Tom")
    assert service.state(case_id)["resolved"] is True
    service.reopen(PRIYA, case_id, "The engineer did not come")
    assert service.state(case_id)["resolved"] is False
    assert store.state(case_id) == store.refold(case_id)


def test_validation_names_the_field(service: Negotiation, clock: Clock) -> None:
    case_id = open_broadband(service)
    cases: list[tuple[list[dict[str, Any]], str]] = [
        (
            [{"op": "data.put", "key": "price", "value": {"type": "number", "value": "abc"}}],
            "changes[0].value.value",
        ),
        (
            [{"op": "data.put", "key": "price", "value": {"type": "money", "amount": "20.00"}}],
            "changes[0].value.currency",
        ),
        ([activity("late", "Too late", "northwind", "2026-11-22T09:00:00Z")], "changes[0].due"),
        ([activity("who", "Nobody's", "fibrefix", "2026-12-22T09:00:00Z")], "changes[0].owner"),
        ([{"op": "activity.remove", "activity": "ghost"}], "changes[0].activity"),
        ([{"op": "data.put", "key": "Bad Key", "value": money("1.00")}], "changes[0].key"),
    ]
    for changes, field in cases:
        with pytest.raises(Invalid) as caught:
            service.propose(TOM, case_id, changes)
        assert caught.value.field == field, (caught.value.message, changes)
    with pytest.raises(Invalid, match="at least one"):
        service.propose(TOM, case_id, [])
    with pytest.raises(Invalid) as caught:
        service.set_info(TOM, case_id, "account", {"type": "money", "amount": 5, "currency": "GBP"})
    assert caught.value.field == "value.amount"
    assert service.state(case_id)["events"] == 1  # nothing was signed


def test_stale_proposal_is_refused_with_a_rebase(service: Negotiation) -> None:
    case_id = open_broadband(service)
    first = service.propose(TOM, case_id, [PLAN[1]]).event_ids[0]
    second = service.propose(TOM, case_id, [PLAN[0]]).event_ids[0]
    service.accept(PRIYA, case_id, first)
    with pytest.raises(StaleProposal) as caught:
        service.accept(PRIYA, case_id, second)
    error = caught.value
    assert error.status == 409 and error.details["current_version"] == 1
    assert error.details["rebase"] == {"base": 1, "changes": [PLAN[0]], "counter_of": None}
    rebased = service.propose(
        TOM, case_id, error.details["rebase"]["changes"], base=error.details["rebase"]["base"]
    )
    service.accept(PRIYA, case_id, rebased.event_ids[0])
    assert service.state(case_id)["terms"]["version"] == 2
    with pytest.raises(StaleProposal):
        service.propose(TOM, case_id, [PLAN[0]], base=1)


def test_parties_act_only_for_themselves(service: Negotiation, store: CaseStore) -> None:
    case_id = open_broadband(service)
    plan = service.propose(TOM, case_id, PLAN).event_ids[0]
    with pytest.raises(Conflict, match="already accepted"):
        service.accept(TOM, case_id, plan)  # Tom proposed it: Northwind accepted already
    with pytest.raises(Forbidden, match="does not host"):
        service.accept(Actor("Mallory", "portal", party="northwind", session="s"), case_id, plan)
    with pytest.raises(Forbidden, match="verified portal session"):
        service.accept(Actor("Priya", "api", party="priya", session="s"), case_id, plan)
    service.accept(PRIYA, case_id, plan)
    with pytest.raises(Forbidden, match="only the owner party"):
        service.report_progress(PRIYA, case_id, "switch", "done")
    with pytest.raises(Conflict, match="agreed terms"):
        service.set_info(PRIYA, case_id, "new-price", money("1.00"))
    with pytest.raises(NotFound):
        service.accept(TOM, case_id, "sha256:" + "0" * 64)
    with pytest.raises(NotFound):
        service.post_message(TOM, "sha256:" + "1" * 64, "hello")
    with pytest.raises(Conflict, match="not resolved"):
        service.reopen(TOM, case_id, "why")
    assert store.state(case_id)["evidence"] == []  # type: ignore[index]


def test_internal_notes_never_reach_the_shared_log(
    service: Negotiation, store: CaseStore, clock: Clock
) -> None:
    case_id = open_broadband(service)
    service.post_message(TOM, case_id, "Your case is owned by Tom Baker.")
    notes = Notes(store, now=clock)
    secret = "Customer sounded upset; offer the loyalty discount if needed"
    notes.add(case_id, "Tom Baker", secret)
    assert [n.text for n in notes.list(case_id)] == [secret]
    events = store.events(case_id)
    assert all(secret.encode() not in e.raw for e in events)
    bundle = write_bundle(case_id, events, store.state(case_id) or {})
    assert secret.encode() not in bundle and b"loyalty" not in bundle
    assert verify_bundle(bundle).ok
    with pytest.raises(NotFound):
        notes.add("sha256:" + "2" * 64, "Tom", "x")
    with pytest.raises(Invalid):
        notes.add(case_id, "Tom", "   ")


def test_due_time_is_judged_by_the_injected_clock(service: Negotiation, clock: Clock) -> None:
    case_id = open_broadband(service)
    change = activity("visit", "Visit the cabinet", "northwind", "2026-12-03T09:00:00Z")
    clock.at = NOW + timedelta(days=20)
    with pytest.raises(Invalid, match="in the past"):
        service.propose(TOM, case_id, [change])
    clock.at = NOW
    assert service.propose(TOM, case_id, [change]).event_ids
