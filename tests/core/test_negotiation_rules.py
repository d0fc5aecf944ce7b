"""Issue 19 in the core: withdrawn and crossed proposals, resolution only when the work
is done (or closed anyway, with a reason), promises without acceptance, and no agreement
silently reversed after a partition."""

from __future__ import annotations

from typing import Any

from accord.core.canonical import canonical
from accord.core.events import Event
from accord.core.fold import fold_events
from accord.core.state import State
from tests.core.builders import (
    ENGINEER,
    FIBREFIX,
    FIBREFIX_PARTY,
    NORTHWIND,
    NORTHWIND_PARTY,
    PRIYA,
    PRIYA_NODE,
    PRIYA_OWN_NODE,
    SARA,
    TOM,
    Broadband,
    CaseBuilder,
    activity_put,
    data_put,
    money,
    portal,
)


def evidence(state: State, event: Event) -> str | None:
    return next((e["reason"] for e in state["evidence"] if e["event"] == event.id), None)


def price(amount: str) -> list[dict[str, Any]]:
    return [data_put("new-price", money(amount, per="month"), "New price")]


# -- withdrawing a proposal -----------------------------------------------------------------------


def test_the_author_withdraws_an_open_proposal() -> None:
    sc = Broadband().agree_v1()
    b = sc.b
    offer = b.propose(NORTHWIND, 1, price("18.00"), member=TOM, note="a better price")
    # Priya may not withdraw Northwind's proposal
    theirs = b.add(
        NORTHWIND, "proposal.withdrawn", {"proposal": offer.id}, member=PRIYA, **portal()
    )
    assert evidence(b.state(), theirs) == "only the party that made a proposal withdraws it"
    gone = b.add(
        NORTHWIND, "proposal.withdrawn", {"proposal": offer.id, "reason": "wrong"}, member=SARA
    )
    s = b.state()
    assert evidence(s, gone) is None
    assert s["proposals"][offer.id]["state"] == "withdrawn"
    assert s["proposals"][offer.id]["withdrawn"]["reason"] == "wrong"
    # accepting or withdrawing it again is evidence, and changes nothing
    late = b.accept(NORTHWIND, offer, member=PRIYA, **portal())
    assert evidence(b.state(), late) == "proposal is withdrawn"
    again = b.add(NORTHWIND, "proposal.withdrawn", {"proposal": offer.id}, member=SARA)
    assert evidence(b.state(), again) == "proposal is withdrawn"
    assert b.state()["terms"]["version"] == 1


def test_a_crossed_proposal_names_the_version_and_is_proposed_again() -> None:
    sc = Broadband().agree_v1()
    b = sc.b
    credit = b.propose(NORTHWIND, 1, price("19.00"), member=TOM)
    counter = b.propose(
        NORTHWIND, 1, price("15.00"), member=PRIYA, counter_of=credit.id, note="£15?", **portal()
    )
    callback = b.propose(
        NORTHWIND,
        1,
        [
            activity_put(
                "call", "Call Priya", "northwind", kind="callback", due="2026-12-01T10:00:00Z"
            )
        ],
        member=SARA,
    )
    b.accept(NORTHWIND, callback, member=PRIYA, **portal())
    s = b.state()
    assert s["terms"]["version"] == 2
    crossed = s["proposals"][counter.id]
    assert crossed["state"] == "stale" and crossed["crossed_with"] == 2
    # only its author proposes it again; the new one links back and keeps the note
    wrong = b.add(
        NORTHWIND,
        "proposal.made",
        {"base": 2, "changes": price("15.00"), "rebase_of": counter.id},
        member=TOM,
    )
    assert "only the author" in (evidence(b.state(), wrong) or "")
    again = b.add(
        NORTHWIND,
        "proposal.made",
        {"base": 2, "changes": price("15.00"), "note": "£15?", "rebase_of": counter.id},
        member=PRIYA,
        **portal(),
    )
    s = b.state()
    assert evidence(s, again) is None
    assert s["proposals"][counter.id]["reproposed_as"] == again.id
    assert s["proposals"][again.id]["rebase_of"] == counter.id
    b.accept(NORTHWIND, again, member=TOM)
    assert b.state()["terms"]["data"]["new-price"]["value"]["amount"] == "15.00"


# -- a later acceptance withdraws an earlier one ---------------------------------------------------


def test_a_later_acceptance_withdraws_the_earlier_one_on_the_same_base() -> None:
    b = CaseBuilder()
    b.open(
        NORTHWIND, member=TOM, title="t", parties=[NORTHWIND_PARTY, PRIYA_OWN_NODE, FIBREFIX_PARTY]
    )
    thirty = b.propose(NORTHWIND, 0, price("30.00"), member=TOM)
    thirty_one = b.propose(NORTHWIND, 0, price("31.00"), member=SARA)  # proposing withdraws nothing
    s = b.state()
    assert set(s["proposals"][thirty.id]["accepted_by"]) == {"northwind"}
    b.accept(PRIYA_NODE, thirty, member=PRIYA)
    switch = b.accept(PRIYA_NODE, thirty_one, member=PRIYA)
    s = b.state()
    assert s["proposals"][thirty.id]["accepted_by"] == {"northwind": thirty.id}
    assert s["proposals"][thirty.id]["withdrawn_by"] == {"priya": switch.id}
    b.accept(FIBREFIX, thirty, member=ENGINEER)  # not enough: Priya moved on
    assert b.state()["terms"]["version"] == 0
    b.accept(FIBREFIX, thirty_one, member=ENGINEER)
    s = b.state()
    assert s["terms"]["version"] == 1 and s["agreements"][0]["proposal"] == thirty_one.id
    assert s["superseded"] == []  # nobody ever held £30 as agreed


def three_parties() -> tuple[CaseBuilder, Event, Event]:
    b = CaseBuilder()
    parties = [NORTHWIND_PARTY, PRIYA_OWN_NODE, FIBREFIX_PARTY]
    b.open(NORTHWIND, member=TOM, title="Fibre install", parties=parties)
    thirty = b.propose(NORTHWIND, 0, price("30.00"), member=TOM)
    thirty_one = b.propose(FIBREFIX, 0, price("31.00"), member=ENGINEER)
    return b, thirty, thirty_one


def shown(b: CaseBuilder, *heads: Event) -> State:
    view = b.past_of([h.id for h in heads])
    return fold_events(b.case, [e for e in b.events if e.id in view])[0].state


def test_the_partition_in_the_issue_can_no_longer_reverse_an_agreement() -> None:
    """The issue's story: £30 and £31 on one base, Priya accepted both (£31 last), and
    each already holds the others' acceptance; Fibrefix is cut off and accepts £30 while
    Northwind accepts £31. Priya's later acceptance withdrew her earlier one, so Fibrefix
    cannot complete £30: only £31 is ever shown, and it stands after the heal."""
    b, thirty, thirty_one = three_parties()
    b.accept(PRIYA_NODE, thirty, member=PRIYA)
    b.accept(PRIYA_NODE, thirty_one, member=PRIYA)
    cut = list(b.heads)
    ff = b.accept(FIBREFIX, thirty, member=ENGINEER, parents=cut)
    nw = b.accept(NORTHWIND, thirty_one, member=TOM, parents=cut)
    assert shown(b, ff)["terms"]["version"] == 0  # Fibrefix shows nothing agreed
    assert shown(b, nw)["agreements"][0]["proposal"] == thirty_one.id
    s = b.state()
    assert s["agreements"][0]["proposal"] == thirty_one.id and s["superseded"] == []


def test_parties_switching_across_a_partition_leave_superseded_entries() -> None:
    """Worse than the issue: every party switches during the cut. Fibrefix moves to £30
    and sees it agreed; Priya and Northwind move to £31 and see that agreed. No node
    forked, and no set of events holds every acceptance of both — but each side showed
    v1. After the heal, whatever the fold keeps, each agreement a side showed either
    stands or is listed as superseded, with the acceptances that were withdrawn."""
    b, thirty, thirty_one = three_parties()
    b.accept(PRIYA_NODE, thirty, member=PRIYA)
    cut = list(b.heads)
    ff = b.accept(FIBREFIX, thirty, member=ENGINEER, parents=cut)
    p = b.accept(PRIYA_NODE, thirty_one, member=PRIYA, parents=cut)
    nw = b.accept(NORTHWIND, thirty_one, member=TOM, parents=[p.id])
    assert shown(b, ff)["agreements"][0]["proposal"] == thirty.id
    assert shown(b, nw)["agreements"][0]["proposal"] == thirty_one.id

    s = b.state()
    standing = {a["proposal"] for a in s["agreements"]}
    listed = {e["proposal"]: e for e in s["superseded"]}
    assert {thirty.id, thirty_one.id} <= standing | set(listed)
    for entry in listed.values():
        assert entry["version"] == 1 and entry["withdrawn_by"] and "withdrew" in entry["reason"]
    # every delivery order gives the same state
    for order in (b.events, list(reversed(b.events))):
        assert canonical(fold_events(b.case, order)[0].state) == canonical(s)


# -- resolution means the work is done -------------------------------------------------------------


def test_satisfaction_waits_for_open_work_or_a_reason() -> None:
    sc = Broadband().agree_v1().agree_v2()
    b = sc.b
    early = b.satisfied(NORTHWIND, 2, member=SARA)
    reason = evidence(b.state(), early) or ""
    assert reason.startswith("work is still open (activities: callback, confirm-address,")
    assert "topics: contract-term, new-price" in reason
    anyway = b.add(
        NORTHWIND,
        "party.satisfied",
        {"version": 2, "reason": "Priya moved house; nothing left to do"},
        member=SARA,
    )
    s = b.state()
    assert evidence(s, anyway) is None
    assert s["satisfied"]["northwind"]["reason"] == "Priya moved house; nothing left to do"
    assert s["satisfied"]["northwind"]["open"]["topics"] == ["contract-term", "new-price"]
    sc.resolve()  # does the work first: then plain satisfaction counts
    s = b.state()
    assert s["resolved"] is True and "reason" not in s["satisfied"]["priya"]


# -- promises without acceptance -------------------------------------------------------------------


def test_a_party_commits_to_its_own_activity_at_once() -> None:
    sc = Broadband().agree_v1()
    b = sc.b
    body = {
        "activity": "call-back",
        "title": "Call Priya about the router",
        "owner": "northwind",
        "kind": "callback",
        "due": "2026-11-25T10:00:00Z",
        "note": "promised on the phone",
    }
    promise = b.add(NORTHWIND, "activity.committed", body, member=TOM, via="phone")
    s = b.state()
    assert evidence(s, promise) is None
    assert s["terms"]["version"] == 1  # a promise is not an agreement version
    activity = s["terms"]["activities"]["call-back"]
    assert activity["committed"] == {"by": "northwind", "event": promise.id, "time": promise.time}
    assert activity["due"] == "2026-11-25T10:00:00Z" and "note" not in activity
    assert s["progress"]["call-back"]["state"] == "agreed"
    # not for someone else's activity, and not twice
    other = b.add(
        NORTHWIND, "activity.committed", {**body, "activity": "x", "owner": "priya"}, member=TOM
    )
    assert "only to an activity it owns" in (evidence(b.state(), other) or "")
    twice = b.add(NORTHWIND, "activity.committed", body, member=TOM)
    assert "already agreed" in (evidence(b.state(), twice) or "")
    # changing it later is a proposal like any other
    b.propose(NORTHWIND, 1, [{"op": "activity.remove", "activity": "call-back"}], member=TOM)
    b.accept(NORTHWIND, b.events[-1], member=PRIYA, **portal())
    s = b.state()
    assert "call-back" not in s["terms"]["activities"]
    assert s["progress"]["call-back"]["state"] == "cancelled"
