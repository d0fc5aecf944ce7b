"""The case fold and its rules: scenario 1 negotiated end to end, rule breaks kept as
evidence, concurrency, structural errors and equivocation."""

from __future__ import annotations

import itertools
import random
from typing import Any

import orjson
import pytest

from accord.core.canonical import canonical
from accord.core.crypto import NodeKey
from accord.core.errors import (
    AccordError,
    ChainError,
    EventFormatError,
    MissingParentsError,
    WrongCaseError,
)
from accord.core.events import Event
from accord.core.fold import CaseFold, MemoryGraph, OutOfOrder, fold_events
from accord.core.state import State, state_hash
from tests.core.builders import (
    ENGINEER,
    FIBREFIX,
    FIBREFIX_PARTY,
    NORTHWIND,
    NORTHWIND_PARTY,
    OUTSIDER,
    PRIYA,
    PRIYA_NODE,
    PRIYA_OWN_NODE,
    SARA,
    TERM_1,
    TOM,
    Broadband,
    CaseBuilder,
    activity_put,
    data_put,
    deliver,
    money,
    portal,
)

BOOKKEEPING = ("events", "heads", "last", "authors", "evidence", "equivocations")


def state_of(events: list[Event]) -> State:
    folder, _graph = fold_events(events[0].case, events)
    return folder.state


def without_bookkeeping(state: State) -> dict[str, Any]:
    return {k: v for k, v in state.items() if k not in BOOKKEEPING}


def evidence_of(state: State, event: Event) -> dict[str, Any] | None:
    found = [e for e in state["evidence"] if e["event"] == event.id]
    assert len(found) <= 1
    return found[0] if found else None


def assert_evidence(b: CaseBuilder, event: Event, reason: str) -> State:
    """``event`` (the last one built) is kept as evidence with ``reason`` and has no effect."""
    assert b.events[-1] is event
    state = b.state()
    entry = evidence_of(state, event)
    assert entry is not None, f"{event.type} was applied"
    assert entry == {
        "event": event.id,
        "type": event.type,
        "author": event.author.node,
        "reason": entry["reason"],
    }
    assert reason in entry["reason"]
    before = state_of(b.events[:-1])
    assert without_bookkeeping(state) == without_bookkeeping(before)
    assert state["evidence"][:-1] == before["evidence"]
    assert state["events"] == before["events"] + 1  # kept, and counted
    assert event.id in state["heads"]
    return state


def assert_applied(b: CaseBuilder, event: Event) -> State:
    state = b.state()
    assert evidence_of(state, event) is None, evidence_of(state, event)
    return state


# -- scenario 1 ----------------------------------------------------------------------------------


def test_broadband_negotiation_end_to_end() -> None:
    sc = Broadband()
    b, ev = sc.b, sc.ev

    s = b.state()
    assert s["case"] == sc.case == ev["opened"].id
    assert s["title"] == "Business broadband: new price and contract term"
    assert s["opened"] == {"by": "northwind", "event": sc.case, "time": ev["opened"].time}
    assert set(s["parties"]) == {"northwind", "priya"}
    assert s["parties"]["priya"]["hosted_by"] == NORTHWIND.public
    assert s["parties"]["priya"]["node"] is None
    assert {t: v["state"] for t, v in s["topics"].items()} == {
        "new-price": "open",
        "contract-term": "open",
    }
    assert s["messages"] == 1 and s["last_message"]["by"] == "northwind"
    assert s["terms"] == {"version": 0, "data": {}, "activities": {}}

    # Tom's plan: 3 activities and 2 data items, pending Priya's acceptance
    sc.agree_v1()
    plan, counter, accept = ev["plan"], ev["counter"], ev["accept_counter"]
    s = state_of(b.events[: b.events.index(plan) + 1])
    proposal = s["proposals"][plan.id]
    assert proposal["state"] == "pending" and proposal["by"] == "northwind"
    assert proposal["accepted_by"] == {"northwind": plan.id}
    assert len(proposal["changes"]) == 5

    # Priya counters from the portal: the plan is countered, the counter pending
    s = state_of(b.events[: b.events.index(counter) + 1])
    assert s["proposals"][plan.id]["state"] == "countered"
    assert s["proposals"][plan.id]["countered_by"] == counter.id
    assert s["proposals"][plan.id]["rejected_by"] == {"priya": counter.id}
    assert s["proposals"][counter.id]["by"] == "priya"
    assert s["proposals"][counter.id]["state"] == "pending"
    assert s["proposals"][counter.id]["counter_of"] == plan.id
    assert s["terms"]["version"] == 0

    # Tom accepts the counter: agreement v1 with both signed acceptances
    s = b.state()
    assert s["evidence"] == []
    assert s["terms"]["version"] == 1
    assert s["proposals"][counter.id]["state"] == "agreed"
    assert s["proposals"][counter.id]["version"] == 1
    (v1,) = s["agreements"]
    assert v1["version"] == 1 and v1["proposal"] == counter.id and v1["event"] == accept.id
    assert v1["acceptances"] == {"priya": counter.id, "northwind": accept.id}
    assert v1["terms"]["parties"] == ["northwind", "priya"]
    assert s["terms"]["data"]["term"] == {"value": TERM_1, "label": "Contract term"}
    assert set(s["terms"]["activities"]) == {"switch-tariff", "confirm-address", "callback"}
    assert s["terms"]["activities"]["callback"]["kind"] == "callback"
    assert s["terms"]["activities"]["confirm-address"]["owner"] == "priya"
    assert {a: p["state"] for a, p in s["progress"].items()} == dict.fromkeys(
        ["switch-tariff", "confirm-address", "callback"], "agreed"
    )

    # a later proposal: v2 (credit and a new switch date)
    sc.agree_v2()
    s = b.state()
    assert s["terms"]["version"] == 2
    assert [a["version"] for a in s["agreements"]] == [1, 2]
    assert s["agreements"][1]["acceptances"] == {
        "northwind": ev["credit"].id,
        "priya": ev["accept_credit"].id,
    }
    assert s["terms"]["data"]["credit"]["value"] == money("10.00", per="once")
    assert s["terms"]["activities"]["switch-tariff"]["due"] == "2026-12-03T00:00:00Z"
    assert s["agreements"][0]["terms"]["data"]["term"]["value"] == TERM_1  # v1 kept as it was
    assert "credit" not in s["agreements"][0]["terms"]["data"]

    # one party satisfied is not enough; both: resolved
    sc.resolve()
    s = state_of(b.events[:-1])
    assert set(s["satisfied"]) == {"northwind"} and s["resolved"] is False
    s = b.state()
    assert set(s["satisfied"]) == {"northwind", "priya"} and s["resolved"] is True
    assert s["satisfied"]["priya"]["event"] == ev["satisfied_priya"].id

    # either party can reopen
    sc.reopen()
    s = b.state()
    assert s["resolved"] is False and s["satisfied"] == {} and s["reopened"] == 1

    # Fibrefix joins by a proposal both accept, with its own activity
    sc.add_fibrefix()
    s = b.state()
    assert s["terms"]["version"] == 3
    assert set(s["parties"]) == {"northwind", "priya", "fibrefix"}
    assert s["parties"]["fibrefix"]["node"] == FIBREFIX.public
    assert s["parties"]["fibrefix"]["since"] == 3
    assert s["agreements"][2]["terms"]["parties"] == ["fibrefix", "northwind", "priya"]
    assert s["agreements"][2]["acceptances"] == {
        "northwind": ev["invite_fibrefix"].id,
        "priya": ev["accept_fibrefix"].id,
    }
    assert s["progress"]["visit-cabinet"]["state"] == "agreed"

    # Fibrefix, on its own node, reports progress on its own activity: applied
    on_way = b.add(
        FIBREFIX,
        "activity.updated",
        {"activity": "visit-cabinet", "state": "in_progress", "note": "On my way"},
        member=ENGINEER,
    )
    s = assert_applied(b, on_way)
    assert s["progress"]["visit-cabinet"]["state"] == "in_progress"
    assert s["progress"]["visit-cabinet"]["note"] == "On my way"
    assert s["authors"][FIBREFIX.public] == {"seq": 1, "id": on_way.id}

    # Priya reporting progress on Northwind's activity: evidence, no effect
    wrong = b.add(
        NORTHWIND,
        "activity.updated",
        {"activity": "switch-tariff", "state": "done"},
        member=PRIYA,
        **portal(),
    )
    s = assert_evidence(b, wrong, "only the owner party of an activity reports its progress")
    assert s["progress"]["switch-tariff"]["event"] == ev["done_switch-tariff"].id

    done = b.add(
        FIBREFIX,
        "activity.updated",
        {"activity": "visit-cabinet", "state": "done"},
        member=ENGINEER,
    )
    late = b.add(
        FIBREFIX,
        "activity.updated",
        {"activity": "visit-cabinet", "state": "in_progress"},
        member=ENGINEER,
    )
    s = b.state()
    assert s["progress"]["visit-cabinet"]["state"] == "done"  # terminal: the late report stays
    assert s["progress"]["visit-cabinet"]["event"] == done.id
    assert evidence_of(s, late) is None
    assert [e["event"] for e in s["evidence"]] == [wrong.id]
    assert s["equivocations"] == []
    assert s["events"] == len(b.events)
    assert s["heads"] == [late.id]


def test_hosted_party_can_open_a_case_through_the_portal() -> None:
    b = CaseBuilder()
    b.open(
        NORTHWIND,
        member=PRIYA,
        title="My broadband price",
        parties=[
            NORTHWIND_PARTY,
            {"id": "priya", "name": PRIYA, "kind": "person", "hosted_by": NORTHWIND.public},
        ],
        **portal(),
    )
    s = b.state()
    assert s["opened"]["by"] == "priya" and s["evidence"] == []


def test_opening_by_a_node_that_is_no_party_is_evidence() -> None:
    b = CaseBuilder()
    opened = b.open(OUTSIDER, member="Mallory", title="Not mine", parties=[NORTHWIND_PARTY])
    s = b.state()
    assert s["evidence"] == [
        {
            "event": opened.id,
            "type": "case.opened",
            "author": OUTSIDER.public,
            "reason": "the opening node must be one of the case's parties",
        }
    ]
    assert s["parties"] == {} and s["title"] == ""


# -- rule breaks: kept as evidence, never applied --------------------------------------------------


def test_non_party_author() -> None:
    sc = Broadband().agree_v1()
    b = sc.b
    for key, member in ((OUTSIDER, "Mallory"), (FIBREFIX, ENGINEER)):  # Fibrefix not yet invited
        event = b.message(key, "Hello, I am in charge now", member=member)
        assert_evidence(b, event, "author is not a party of this case")
    grab = b.propose(OUTSIDER, 1, [data_put("new-price", money("0.01"))], member="Mallory")
    assert_evidence(b, grab, "author is not a party of this case")


def test_data_set_on_an_agreed_term() -> None:
    sc = Broadband().agree_v1()
    b = sc.b
    free = b.add(
        NORTHWIND,
        "data.set",
        {"key": "current-price", "value": money("40.00", per="month"), "label": "Current price"},
        member=TOM,
    )
    s = assert_applied(b, free)
    assert s["info"]["current-price"]["value"]["amount"] == "40.00"
    assert s["info"]["current-price"]["by"] == "northwind"
    sneaky = b.add(NORTHWIND, "data.set", {"key": "new-price", "value": money("25.00")}, member=TOM)
    s = assert_evidence(b, sneaky, "is part of the agreed terms")
    assert s["terms"]["data"]["new-price"]["value"]["amount"] == "20.00"
    assert "new-price" not in s["info"]


def test_accepting_a_stale_proposal() -> None:
    sc = Broadband().agree_v1()
    b = sc.b
    first = b.propose(NORTHWIND, 1, [data_put("credit", money("10.00"))], member=TOM)
    second = b.propose(NORTHWIND, 1, [data_put("credit", money("5.00"))], member=SARA)
    s = b.state()
    assert s["proposals"][first.id]["state"] == s["proposals"][second.id]["state"] == "pending"
    b.accept(NORTHWIND, first, member=PRIYA, **portal())
    s = b.state()
    assert s["terms"]["version"] == 2
    assert s["proposals"][second.id]["state"] == "stale"
    assert s["proposals"][second.id]["superseded_by"] == 2
    late = b.accept(NORTHWIND, second, member=PRIYA, **portal())
    s = assert_evidence(b, late, "stale")
    assert s["terms"]["data"]["credit"]["value"]["amount"] == "10.00"


def test_accepting_twice() -> None:
    sc = Broadband()
    b = sc.b
    plan = b.propose(NORTHWIND, 0, sc.plan(TERM_1), member=TOM)
    again = b.accept(NORTHWIND, plan, member=SARA)  # the proposer already accepted
    assert_evidence(b, again, "party 'northwind' has already accepted this proposal")

    sc = Broadband().agree_v1().agree_v2().add_fibrefix(base=2)
    b = sc.b
    visit = b.propose(
        NORTHWIND,
        3,
        [activity_put("revisit", "Second visit", "fibrefix", due="2026-12-05T10:00:00Z")],
        member=SARA,
    )
    b.accept(NORTHWIND, visit, member=PRIYA, **portal())
    twice = b.accept(NORTHWIND, visit, member=PRIYA, **portal())
    s = assert_evidence(b, twice, "party 'priya' has already accepted this proposal")
    assert s["proposals"][visit.id]["state"] == "pending"  # Fibrefix has not accepted yet
    b.accept(FIBREFIX, visit, member=ENGINEER)
    s = b.state()
    assert s["proposals"][visit.id]["state"] == "agreed" and s["terms"]["version"] == 4
    assert set(s["agreements"][-1]["acceptances"]) == {"northwind", "priya", "fibrefix"}


@pytest.mark.parametrize("base", [0, 2, 7])
def test_proposal_on_a_wrong_base(base: int) -> None:
    sc = Broadband().agree_v1()
    wrong = sc.b.propose(NORTHWIND, base, [data_put("credit", money("1.00"))], member=TOM)
    assert_evidence(sc.b, wrong, f"proposal is based on v{base} but v1 is the current agreement")


def test_hosted_party_acted_for_by_a_node_that_is_not_its_host() -> None:
    sc = Broadband().agree_v1().agree_v2().add_fibrefix(base=2)
    b = sc.b
    for key, member in ((FIBREFIX, ENGINEER), (OUTSIDER, "Mallory")):
        forged = b.satisfied(key, 3, member=member, **portal())
        assert_evidence(b, forged, "this node does not host party 'priya'")
    ghost = b.message(NORTHWIND, "hi", member="Ghost", **portal(party="ghost"))
    assert_evidence(b, ghost, "author acts for 'ghost', which is not a party of this case")


@pytest.mark.parametrize("via", [None, "email", "webchat"])
def test_acting_for_a_hosted_party_needs_the_portal(via: str | None) -> None:
    sc = Broadband().agree_v1()
    b = sc.b
    event = b.satisfied(
        NORTHWIND, 1, member=PRIYA, via=via, for_party="priya", session="portal-session-7f3a9c"
    )
    assert_evidence(b, event, "a hosting node acts for its hosted party only via the portal")


def test_more_rule_breaks() -> None:
    sc = Broadband().agree_v1()
    b = sc.b
    cases: list[tuple[Event, str]] = []
    cases.append(
        (
            b.add(
                NORTHWIND,
                "activity.updated",
                {"activity": "install-router", "state": "done"},
                member=TOM,
            ),
            "activity 'install-router' is not in the agreed terms",
        )
    )
    cases.append(
        (
            b.add(
                NORTHWIND,
                "activity.updated",
                {"activity": "confirm-address", "state": "done"},
                member=TOM,
            ),
            "only the owner party",
        )
    )
    cases.append((b.satisfied(NORTHWIND, 0, member=TOM), "satisfaction names v0 but v1"))
    cases.append(
        (
            b.propose(
                NORTHWIND,
                1,
                [data_put("x", money("1.00"))],
                member=TOM,
                counter_of=sc.ev["plan"].id,
            ),
            "cannot counter a proposal that is countered",
        )
    )
    cases.append(
        (
            b.propose(NORTHWIND, 1, [activity_put("visit", "Visit", "fibrefix")], member=TOM),
            "owner 'fibrefix' is not a party",
        )
    )
    cases.append(
        (
            b.propose(NORTHWIND, 1, [{"op": "data.remove", "key": "nope"}], member=TOM),
            "no data item 'nope' to remove",
        )
    )
    cases.append(
        (
            b.propose(
                NORTHWIND,
                1,
                [{"op": "party.add", "party": {**FIBREFIX_PARTY, "id": "priya"}}],
                member=TOM,
            ),
            "'priya' is already a party",
        )
    )
    cases.append(
        (
            b.propose(
                NORTHWIND,
                1,
                [{"op": "party.add", "party": FIBREFIX_PARTY | {"node": NORTHWIND.public}}],
                member=TOM,
            ),
            "that node already speaks for a party",
        )
    )
    cases.append(
        (
            b.accept(NORTHWIND, "sha256:" + "0" * 64, member=TOM),
            "unknown proposal",
        )
    )
    cases.append(
        (
            b.add(NORTHWIND, "proposal.rejected", {"proposal": sc.ev["counter"].id}, member=TOM),
            "proposal is agreed",
        )
    )
    s = b.state()
    assert [(e["event"], e["type"]) for e in s["evidence"]] == [(e.id, e.type) for e, _ in cases]
    for (event, reason), entry in zip(cases, s["evidence"], strict=True):
        assert reason in entry["reason"], (event.type, entry["reason"])
    assert without_bookkeeping(s) == without_bookkeeping(
        state_of(b.events[: len(b.events) - len(cases)])
    )


def test_rejection_and_removal() -> None:
    sc = Broadband().agree_v1()
    b = sc.b
    drop = b.propose(
        NORTHWIND,
        1,
        [{"op": "activity.remove", "activity": "callback"}, {"op": "data.remove", "key": "term"}],
        member=TOM,
    )
    b.add(
        NORTHWIND,
        "proposal.rejected",
        {"proposal": drop.id, "reason": "no"},
        member=PRIYA,
        **portal(),
    )
    s = assert_applied(b, b.events[-1])
    assert s["proposals"][drop.id]["state"] == "rejected"
    assert s["terms"]["version"] == 1
    again = b.propose(NORTHWIND, 1, drop.body["changes"], member=TOM)
    b.accept(NORTHWIND, again, member=PRIYA, **portal())
    s = b.state()
    assert "callback" not in s["terms"]["activities"] and "term" not in s["terms"]["data"]
    assert s["progress"]["callback"]["state"] == "cancelled"
    assert s["progress"]["callback"]["owner"] == "northwind"
    report = b.add(
        NORTHWIND, "activity.updated", {"activity": "callback", "state": "done"}, member=TOM
    )
    assert_evidence(b, report, "not in the agreed terms")


def test_judged_against_its_own_past_not_the_merged_present() -> None:
    """An event is judged by what its author knew: Northwind, not yet having seen Priya's
    acceptance of v2, declares itself satisfied with v1. That is no rule break (v1 is
    current in its past), yet it has no effect once v2 is agreed."""
    b = CaseBuilder()
    g = b.open(NORTHWIND, member=TOM, title="t", parties=[NORTHWIND_PARTY, PRIYA_OWN_NODE])
    p1 = b.propose(NORTHWIND, 0, [data_put("price", money("20.00"))], member=TOM)
    b.accept(PRIYA_NODE, p1, member=PRIYA)
    fork = list(b.heads)
    p2 = b.propose(NORTHWIND, 1, [data_put("price", money("18.00"))], member=TOM)
    acc2 = b.accept(PRIYA_NODE, p2, member=PRIYA)
    happy = b.satisfied(NORTHWIND, 1, member=SARA, parents=fork)
    assert p2.id in b.past_of(happy.parents)  # its own previous event (p2) is in its past
    assert acc2.id not in b.past_of(happy.parents)
    s = b.state()
    assert evidence_of(s, happy) is None  # valid against its own past (v1 current there)
    assert s["terms"]["version"] == 2
    assert s["satisfied"] == {}  # but v2 has since been agreed: no effect on the state
    assert g.id == s["case"]


# -- concurrency -----------------------------------------------------------------------------------


def race(deeper_b: bool = False) -> tuple[CaseBuilder, dict[str, Event]]:
    """Northwind and Priya (own node) each propose on v0 and each accept the other's
    proposal on separate branches."""
    b = CaseBuilder()
    g = b.open(NORTHWIND, member=TOM, title="Race", parties=[NORTHWIND_PARTY, PRIYA_OWN_NODE])
    pa = b.propose(
        NORTHWIND, 0, [data_put("new-price", money("20.00"))], member=TOM, parents=[g.id]
    )
    pb = b.propose(
        PRIYA_NODE, 0, [data_put("new-price", money("15.00"))], member=PRIYA, parents=[g.id]
    )
    assert pa.depth == pb.depth == 2
    both = sorted([pa.id, pb.id])
    acc_a = b.accept(PRIYA_NODE, pa, member=PRIYA, parents=both)
    if deeper_b:
        note = b.message(NORTHWIND, "Let me think", member=TOM, parents=both)
        acc_b = b.accept(NORTHWIND, pb, member=TOM, parents=[note.id])
        assert acc_b.depth == 4
    else:
        acc_b = b.accept(NORTHWIND, pb, member=TOM, parents=both)
        assert acc_b.depth == 3
    assert acc_a.depth == 3
    return b, {"pa": pa, "pb": pb, "acc_a": acc_a, "acc_b": acc_b}


@pytest.mark.parametrize("deeper_b", [False, True], ids=["same-depth", "b-deeper"])
def test_concurrent_acceptances_first_in_order_wins(deeper_b: bool) -> None:
    b, ev = race(deeper_b)
    pending = state_of(b.events[:3])
    assert {p["state"] for p in pending["proposals"].values()} == {"pending"}  # side by side
    first = min(ev["acc_a"], ev["acc_b"], key=lambda e: e.key)
    if deeper_b:
        assert first is ev["acc_a"]
    winner = first.body["proposal"]
    loser = ev["pb"].id if winner == ev["pa"].id else ev["pa"].id
    s = b.state()
    assert s["evidence"] == []  # each acceptance was valid against its own past
    assert s["proposals"][winner]["state"] == "agreed"
    assert s["proposals"][loser]["state"] == "stale"
    assert s["terms"]["version"] == 1 and len(s["agreements"]) == 1
    assert s["agreements"][0]["proposal"] == winner
    assert s["agreements"][0]["event"] == first.id
    expected = b.by_id[winner].body["changes"][0]["value"]
    assert s["terms"]["data"]["new-price"]["value"] == expected

    reference = canonical(s)
    for order in itertools.permutations(b.events):
        assert canonical(state_of(list(order))) == reference
        assert canonical(deliver(b.case, order).state) == reference

    # both parties carry on from v1
    b.satisfied(NORTHWIND, 1, member=TOM)
    b.satisfied(PRIYA_NODE, 1, member=PRIYA)
    assert b.state()["resolved"] is True


# -- structural errors raise -----------------------------------------------------------------------


def test_missing_parents() -> None:
    sc = Broadband().agree_v1()
    b, plan, counter = sc.b, sc.ev["plan"], sc.ev["counter"]
    rest = [e for e in b.events if e.id != plan.id]
    with pytest.raises(MissingParentsError) as info:
        fold_events(b.case, rest)
    assert info.value.event_id == counter.id
    assert set(info.value.missing) == {plan.id}
    assert plan.id in str(info.value)

    folder = CaseFold(b.case, MemoryGraph())
    folder.add(sc.ev["opened"])
    with pytest.raises(MissingParentsError) as info:
        folder.add(plan)
    assert set(info.value.missing) == {sc.ev["hello"].id}


def test_missing_parents_are_listed_once() -> None:
    sc = Broadband().agree_v1()
    plan, counter = sc.ev["plan"], sc.ev["counter"]
    assert counter.prev == plan.id and plan.id in counter.parents
    with pytest.raises(MissingParentsError) as info:
        fold_events(sc.case, [e for e in sc.b.events if e.id != plan.id])
    assert info.value.missing == [plan.id]


def test_wrong_depth() -> None:
    sc = Broadband()
    bad = sc.b.message(NORTHWIND, "too deep", member=TOM, depth=5)
    with pytest.raises(ChainError, match="depth 5 is not 1 \\+ its parents' depth"):
        fold_events(sc.case, sc.b.events)
    assert bad.depth == 5


def test_seq_gap() -> None:
    sc = Broadband()
    hello = sc.ev["hello"]
    sc.b.message(NORTHWIND, "skipped a seq", member=TOM, seq=hello.seq + 2, prev=hello.id)
    with pytest.raises(ChainError, match="seq 4 does not follow the author's latest event"):
        fold_events(sc.case, sc.b.events)


def test_restarting_a_chain() -> None:
    sc = Broadband()
    sc.b.add(NORTHWIND, "message.posted", {"text": "again"}, member=TOM, seq=1, prev=None)
    with pytest.raises(ChainError, match="seq 1, but the author has earlier events"):
        fold_events(sc.case, sc.b.events)


def test_prev_outside_the_causal_past() -> None:
    sc = Broadband()
    opened, hello = sc.ev["opened"], sc.ev["hello"]
    sc.b.message(NORTHWIND, "x", member=TOM, parents=[opened.id], prev=hello.id, link_prev=False)
    with pytest.raises(ChainError, match="does not follow"):
        fold_events(sc.case, sc.b.events)


def test_wrong_case() -> None:
    one, other = Broadband(), Broadband(nonce="nw-0002")
    assert one.case != other.case
    with pytest.raises(WrongCaseError):
        fold_events(one.case, [*one.b.events, other.ev["hello"]])
    folder = CaseFold(one.case, MemoryGraph())
    with pytest.raises(WrongCaseError):
        folder.add(other.ev["opened"])


def test_on_error_reports_and_skips() -> None:
    sc = Broadband().agree_v1()
    b = sc.b
    skipped = sc.ev["plan"]
    seen: list[tuple[str, type[AccordError]]] = []
    folder, _graph = fold_events(
        b.case,
        [e for e in b.events if e.id != skipped.id],
        on_error=lambda event, exc: seen.append((event.id, type(exc))),
    )
    after = b.events[b.events.index(skipped) + 1 :]
    assert seen == [(e.id, MissingParentsError) for e in after]
    assert folder.state["events"] == 2


def test_out_of_order_add_needs_a_refold() -> None:
    b, ev = race()
    first, second = sorted([ev["acc_a"], ev["acc_b"]], key=lambda e: e.key)
    folder = CaseFold(b.case, MemoryGraph())
    for event in sorted(b.events, key=lambda e: e.key):
        if event is not first:
            folder.add(event)
    assert not folder.fits(first)
    with pytest.raises(OutOfOrder):
        folder.add(first)
    with pytest.raises(OutOfOrder):  # a duplicate does not fit either
        folder.add(second)


# -- equivocation ----------------------------------------------------------------------------------


def equivocation() -> tuple[CaseBuilder, Event, Event, Event]:
    b = CaseBuilder()
    g = b.open(NORTHWIND, member=TOM, title="Fork", parties=[NORTHWIND_PARTY, PRIYA_OWN_NODE])
    fa = b.message(NORTHWIND, "Your new price is £20.00", member=TOM, parents=[g.id])
    fb = b.message(
        NORTHWIND, "Your new price is £30.00", member=TOM, parents=[g.id], seq=2, prev=g.id
    )
    assert (fa.seq, fa.prev) == (fb.seq, fb.prev) and fa.id != fb.id
    merge = b.message(PRIYA_NODE, "Which one is it?", member=PRIYA)
    assert sorted(merge.parents) == sorted([fa.id, fb.id])
    return b, fa, fb, merge


def test_equivocation_is_flagged_and_order_independent() -> None:
    b, fa, fb, merge = equivocation()
    first, later = sorted([fa, fb], key=lambda e: e.key)
    s = b.state()
    assert s["equivocations"] == [
        {"author": NORTHWIND.public, "seq": 2, "events": sorted([fa.id, fb.id])}
    ]
    entry = evidence_of(s, later)
    assert entry is not None and entry["reason"].startswith("equivocation")
    assert first.id in entry["reason"]
    assert evidence_of(s, first) is None and evidence_of(s, merge) is None
    assert s["messages"] == 2
    assert s["last_message"]["event"] == merge.id

    reference = canonical(s)
    for order in itertools.permutations(b.events):
        assert canonical(state_of(list(order))) == reference
        assert canonical(deliver(b.case, order).state) == reference


def test_continuing_an_equivocation() -> None:
    b, fa, fb, _merge = equivocation()
    first, later = sorted([fa, fb], key=lambda e: e.key)
    on_later = b.message(
        NORTHWIND, "as I said", member=TOM, parents=[later.id], seq=3, prev=later.id
    )
    s = b.state()
    entry = evidence_of(s, on_later)
    assert entry is not None
    assert entry["reason"] == "continues an equivocation by the same author"
    on_first = b.message(
        NORTHWIND, "to be clear", member=TOM, parents=[first.id], seq=3, prev=first.id
    )
    s = b.state()
    # two events at seq 3 as well: a second equivocation, on the later fork's line
    assert [e["seq"] for e in s["equivocations"]] == [2, 3]
    assert {on_first.id, on_later.id} == set(s["equivocations"][1]["events"])


def test_three_way_equivocation_is_one_entry() -> None:
    b = CaseBuilder()
    g = b.open(NORTHWIND, member=TOM, title="Fork", parties=[NORTHWIND_PARTY, PRIYA_OWN_NODE])
    forks = [
        b.message(NORTHWIND, f"version {i}", member=TOM, parents=[g.id], seq=2, prev=g.id)
        for i in range(3)
    ]
    s = b.state()
    assert s["equivocations"] == [
        {"author": NORTHWIND.public, "seq": 2, "events": sorted(f.id for f in forks)}
    ]
    assert len(s["evidence"]) == 2 and s["messages"] == 1


# -- incremental fold, resumption ------------------------------------------------------------------


def test_incremental_and_resumed_fold_equal_the_full_fold() -> None:
    sc = Broadband().full()
    b = sc.b
    b.add(
        FIBREFIX,
        "activity.updated",
        {"activity": "visit-cabinet", "state": "done"},
        member=ENGINEER,
    )
    full = b.state()
    ordered = sorted(b.events, key=lambda e: e.key)
    for cut in range(1, len(ordered)):
        graph = MemoryGraph()
        folder = CaseFold(b.case, graph)
        for event in ordered[:cut]:
            folder.add(event)
        # resume from the stored state and auth ids, with a cold cache
        resumed = CaseFold(
            b.case, graph, state=state_copy(folder.state), auth_ids=list(folder.auth_ids)
        )
        resumed.AUTH_CACHE = 1
        for event in ordered[cut:]:
            resumed.add(event)
        assert canonical(resumed.state) == canonical(full)
    assert state_hash(full) == state_hash(deliver(b.case, reversed(b.events)).state)


def state_copy(state: State) -> State:
    copied: State = orjson.loads(orjson.dumps(state))
    return copied


def test_delivery_in_random_orders() -> None:
    sc = Broadband().full()
    reference = canonical(sc.b.state())
    rng = random.Random(20261123)
    for _ in range(30):
        order = list(sc.b.events)
        rng.shuffle(order)
        assert canonical(deliver(sc.case, order).state) == reference


# -- a hosted party moves to its own node ----------------------------------------------------------


def test_hosted_party_moves_to_its_own_node() -> None:
    sc = Broadband().agree_v1()
    b = sc.b
    taken = b.propose(
        NORTHWIND,
        1,
        [{"op": "party.key", "party": "priya", "node": NORTHWIND.public}],
        member=PRIYA,
        **portal(),
    )
    assert_evidence(b, taken, "that node already speaks for a party")
    move = b.propose(
        NORTHWIND,
        1,
        [{"op": "party.key", "party": "priya", "node": PRIYA_NODE.public}],
        member=PRIYA,
        **portal(),
    )
    b.accept(NORTHWIND, move, member=TOM)
    s = b.state()
    assert s["terms"]["version"] == 2
    assert s["parties"]["priya"]["node"] == PRIYA_NODE.public
    assert s["parties"]["priya"]["hosted_by"] is None
    own = b.message(PRIYA_NODE, "Hello from my own node", member=PRIYA)
    s = assert_applied(b, own)
    assert s["last_message"] == {"event": own.id, "by": "priya", "time": own.time}
    # from now on only her node speaks for her
    old = b.satisfied(NORTHWIND, 2, member=PRIYA, **portal())
    assert_evidence(b, old, "this node does not host party 'priya'")


def test_one_key_cannot_speak_for_two_parties() -> None:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(NORTHWIND.public[-1])
    disguised = NodeKey(NORTHWIND.seed)
    disguised.public = NORTHWIND.public[:-1] + alphabet[last ^ 1]  # same 32 key bytes
    assert disguised.public != NORTHWIND.public
    sc = Broadband().agree_v1()
    b = sc.b
    # Another spelling of the same key bytes is not a public key at all: refused at the
    # envelope, before any rule could be fooled into seeing two different nodes.
    with pytest.raises(EventFormatError, match="not a public key"):
        b.propose(
            NORTHWIND,
            1,
            [{"op": "party.add", "party": {**FIBREFIX_PARTY, "node": disguised.public}}],
            member=SARA,
        )
