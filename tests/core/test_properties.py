"""Properties of the fold over random valid cases: order independence, incremental
folding, idempotence, bundles that verify, and tampering that never goes unnoticed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.core.bundle import verify_bundle, write_bundle
from accord.core.canonical import canonical
from accord.core.crypto import NodeKey
from accord.core.events import Event
from accord.core.fold import CaseFold, MemoryGraph, fold_events
from accord.core.state import State, state_hash
from tests.core.builders import (
    ENGINEER,
    FIBREFIX,
    FIBREFIX_PARTY,
    NORTHWIND,
    NORTHWIND_PARTY,
    OUTSIDER,
    PRIYA,
    PRIYA_HOSTED,
    PRIYA_NODE,
    PRIYA_OWN_NODE,
    TOM,
    CaseBuilder,
    PortalAuthor,
    activity_put,
    data_put,
    deliver,
    money,
    portal,
)

# ACCORD_SOAK_EXAMPLES=3000 runs a longer soak of every property.
SETTINGS = settings(max_examples=int(os.environ.get("ACCORD_SOAK_EXAMPLES", "100")), deadline=None)


@dataclass(frozen=True)
class Actor:
    key: NodeKey
    member: str
    party: str
    author: PortalAuthor | None = None


ACTIONS = (
    *["message"] * 2,
    "topic",
    *["close-topic"] * 2,
    "status",
    "data",
    *["propose"] * 3,
    *["accept"] * 6,
    "reject",
    *["satisfied"] * 2,
    "reopen",
    *["progress"] * 2,
    "outsider",
    "equivocate",
    "withdraw",
    "commit",
    "repropose",
    *["switch"] * 3,
)
TEXTS = ("Hello", "Engineer didn't come 😞", "café at 15:00?", "line\u2028break", "£20.00 ok")
STATUSES = ("waiting on customer", "in progress", "escalated")


@dataclass
class RandomCase:
    b: CaseBuilder
    steps: list[str]
    views: list[frozenset[str]] = field(default_factory=list)  # what each side of a partition held

    @property
    def case(self) -> str:
        return self.b.case

    @property
    def events(self) -> list[Event]:
        return self.b.events

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        return f"RandomCase({len(self.events)} events: {', '.join(self.steps)})"


def _view(b: CaseBuilder, parents: list[str]) -> State:
    """The state as the author knew it: the fold of the new event's causal past."""
    past = b.past_of(parents)
    folder, _graph = fold_events(b.case, [e for e in b.events if e.id in past])
    return folder.state


def _step(
    b: CaseBuilder,
    actor: Actor,
    action: str,
    mask: int,
    pick: int,
    heads: list[str] | None = None,
) -> str:
    kw: dict[str, Any] = {"member": actor.member, **(actor.author or {})}
    heads = b.heads if heads is None else heads
    unseen = heads[pick % len(heads)]
    if mask % 4 == 1 and unseen != b.case:
        # the author has not seen one of the heads yet: a concurrent branch starts here
        parents = sorted({*heads, *b.by_id[unseen].parents} - {unseen})
    elif mask % 4 == 2 and len(heads) > 1:
        parents = [h for i, h in enumerate(heads) if mask >> (i + 2) & 1] or [unseen]
    else:
        parents = list(heads)
    chain = b.chains.get(actor.key.public)
    if chain is not None and chain[1] not in b.past_of(parents):
        parents.append(chain[1])  # a node always knows its own latest event
    kw["parents"] = parents
    view = _view(b, parents)
    version = view["terms"]["version"]
    proposals = sorted(view["proposals"])
    pending = [p for p in proposals if view["proposals"][p]["state"] == "pending"]
    mine = [p for p in pending if actor.party not in view["proposals"][p]["accepted_by"]]
    key = actor.key

    backed = {
        view["proposals"][p]["base"]
        for p in pending
        if actor.party in view["proposals"][p]["accepted_by"]
    }
    switch = [p for p in mine if view["proposals"][p]["base"] in backed]
    if action == "switch" and switch:  # move this party's acceptance to another proposal
        b.accept(key, switch[pick % len(switch)], **kw)
    elif action == "accept" and (mine or (proposals and pick % 7 == 0)):
        # mostly a pending proposal this party has not accepted; sometimes any (evidence)
        if mine:  # usually the oldest one, so that proposals get agreed
            mine.sort(key=lambda p: view["proposals"][p]["time"])
            target = mine[0] if pick % 3 else mine[pick % len(mine)]
        else:
            target = proposals[pick % len(proposals)]
        b.accept(key, target, **kw)
    elif action == "reject" and pending:
        b.add(key, "proposal.rejected", {"proposal": pending[pick % len(pending)]}, **kw)
    elif action == "withdraw" and (
        own := [p for p in pending if view["proposals"][p]["by"] == actor.party]
    ):
        b.add(key, "proposal.withdrawn", {"proposal": own[pick % len(own)]}, **kw)
    elif action == "repropose" and (
        crossed := [
            p
            for p in proposals
            if view["proposals"][p]["state"] == "stale"
            and view["proposals"][p]["by"] == actor.party
        ]
    ):
        old = view["proposals"][crossed[pick % len(crossed)]]
        changes = [c for c in old["changes"] if c["op"] != "activity.remove"] or [
            data_put("new-price", money("25.00", per="month"), "New price")
        ]
        body = {"base": version, "changes": changes, "rebase_of": crossed[pick % len(crossed)]}
        b.add(key, "proposal.made", body, **kw)
    elif action == "commit":
        body = {"activity": f"promise-{pick % 3}", "title": "Call back", "owner": actor.party}
        body.update(kind="callback", due="2026-12-01T10:00:00Z")
        if pick % 5 == 0:
            body["owner"] = sorted(view["parties"])[pick % len(view["parties"])]  # maybe not ours
        b.add(key, "activity.committed", body, **kw)
    elif action in ("propose", "accept", "reject", "switch"):
        changes = [data_put("new-price", money(f"{10 + pick % 30}.00", per="month"), "New price")]
        owner = sorted(view["parties"])[pick % len(view["parties"])]
        if pick % 2:
            changes.append(activity_put(f"task-{pick % 3}", "Do the thing", owner))
        if pick % 5 == 0:
            changes.append({"op": "data.remove", "key": "new-price"})
        base = version + 1 if pick % 11 == 0 else version  # sometimes a wrong base
        counter = pending[pick % len(pending)] if pending and pick % 4 == 0 else None
        b.propose(key, base, changes, counter_of=counter, **kw)
        action = "propose"
    elif action == "topic":
        b.add(key, "topic.opened", {"topic": f"topic-{pick % 3}", "title": "A topic"}, **kw)
    elif action == "close-topic":
        topics = sorted(t for t, v in view["topics"].items() if v["state"] == "open")
        topic = topics[pick % len(topics)] if topics and pick % 4 else f"topic-{pick % 3}"
        b.add(key, "topic.closed", {"topic": topic}, **kw)
    elif action == "status":
        b.add(key, "status.set", {"label": STATUSES[pick % len(STATUSES)]}, **kw)
    elif action == "data":
        data_key = ("current-price", "new-price", "account-ref")[pick % 3]
        b.add(key, "data.set", {"key": data_key, "value": money(f"{pick % 50}.00")}, **kw)
    elif action == "satisfied":
        if pick % 3 == 0:  # close anyway, with the work still open
            b.add(key, "party.satisfied", {"version": version, "reason": "enough"}, **kw)
        else:
            b.satisfied(key, version, **kw)
    elif action == "reopen":
        b.add(key, "case.reopened", {"reason": "not fixed"}, **kw)
    elif action == "progress" and view["terms"]["activities"]:
        activities = sorted(view["terms"]["activities"])
        body = {"activity": activities[pick % len(activities)], "state": "in_progress"}
        if pick % 2:
            body["state"] = "done"
        b.add(key, "activity.updated", body, **kw)
    elif action == "outsider":
        b.message(OUTSIDER, "Let me in", member="Mallory", parents=heads)
    elif action == "equivocate" and chain is not None and chain[1] != b.case:
        latest = b.by_id[chain[1]]
        kw["parents"] = list(latest.parents)
        fork = b.message(
            key,
            TEXTS[pick % len(TEXTS)],
            **kw,
            seq=latest.seq,
            prev=latest.prev,
            link_prev=False,
        )
        # continue from the fork that the merged past of both will name (the lower id)
        b.chains[key.public] = (latest.seq, min(latest.id, fork.id))
    else:
        b.message(key, TEXTS[pick % len(TEXTS)], **kw)
        action = "message"
    return f"{actor.party}:{action}"


@st.composite
def random_cases(
    draw: st.DrawFn, max_steps: int = 22, actions: tuple[str, ...] = ACTIONS, split: bool = False
) -> RandomCase:
    # 2 or 3 parties; Priya hosted by Northwind (acting via the portal) or on her own node
    setup = draw(st.sampled_from(["nw+priya-node", "nw+ff+priya-hosted", "nw+ff+priya-node"]))
    own_node = setup.endswith("priya-node")
    priya = (
        Actor(PRIYA_NODE, PRIYA, "priya")
        if own_node
        else Actor(NORTHWIND, PRIYA, "priya", portal())
    )
    actors = [Actor(NORTHWIND, TOM, "northwind"), priya]
    parties = [NORTHWIND_PARTY, PRIYA_OWN_NODE if own_node else PRIYA_HOSTED]
    if "+ff+" in setup:
        actors.append(Actor(FIBREFIX, ENGINEER, "fibrefix"))
        parties.append(FIBREFIX_PARTY)
    b = CaseBuilder()
    b.open(
        NORTHWIND,
        member=TOM,
        title="Broadband contract",
        parties=parties,
        topics=[("new-price", "New price")],
    )
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from(actors),
                st.sampled_from(actions),
                st.integers(0, 2**12),
                st.integers(0, 2**12),
            ),
            min_size=min(6, max_steps),
            max_size=max_steps,
        )
    )
    # a partition between the nodes from step `cut` to step `heal` (maybe never healed)
    nodes = sorted({a.key.public for a in actors} - {NORTHWIND.public})
    far = {n for i, n in enumerate(nodes) if draw(st.booleans()) or i == 0}
    cut = draw(st.integers(0, len(steps) // 2 if split else len(steps)), label="partition from")
    heal = draw(st.integers(cut + 3 if split else cut, len(steps)), label="healed at")
    names: list[str] = []
    views: list[frozenset[str]] = []
    common: list[str] = []
    sides: dict[bool, list[str]] = {False: [], True: []}
    for i, (actor, action, mask, pick) in enumerate(steps):
        if i == cut:
            common = list(b.heads)
        if i == heal and cut < heal:
            views += [b.past_of(_side_heads(b, common, ids)) for ids in sides.values()]
        if cut <= i < heal:
            side = actor.key.public in far
            heads = _side_heads(b, common, sides[side])
            before = len(b.events)
            names.append(_step(b, actor, action, mask, pick, heads) + f"@{int(side)}")
            sides[side] += [e.id for e in b.events[before:]]
        else:
            names.append(_step(b, actor, action, mask, pick))
    if cut < heal == len(steps):
        views += [b.past_of(_side_heads(b, common, ids)) for ids in sides.values()]
    return RandomCase(b, names, views)


def _side_heads(b: CaseBuilder, common: list[str], side: list[str]) -> list[str]:
    """The heads one side of a partition knows: the common heads and its own events."""
    candidates = [*common, *side]
    return sorted(
        c for c in candidates if not any(c in b.past_of([o]) - {o} for o in candidates if o != c)
    )


def reference(rc: RandomCase) -> bytes:
    folder, _graph = fold_events(rc.case, rc.events)
    return canonical(folder.state)


# -- (a) any delivery order gives the same state ---------------------------------------------------


@SETTINGS
@given(random_cases(), st.data())
def test_any_delivery_order_gives_the_same_state(rc: RandomCase, data: st.DataObject) -> None:
    expected = reference(rc)
    state = fold_events(rc.case, rc.events)[0].state
    assert state["events"] == len(rc.events)
    for _ in range(3):
        order = data.draw(st.permutations(rc.events), label="delivery order")
        folder, _graph = fold_events(rc.case, order)
        assert canonical(folder.state) == expected
        assert state_hash(folder.state) == state_hash(state)
        assert canonical(deliver(rc.case, order).state) == expected


# -- (b) incremental folding equals the full fold --------------------------------------------------


@SETTINGS
@given(random_cases(), st.data())
def test_incremental_fold_equals_full_fold(rc: RandomCase, data: st.DataObject) -> None:
    expected = reference(rc)
    ordered = sorted(rc.events, key=lambda e: e.key)
    graph = MemoryGraph()
    folder = CaseFold(rc.case, graph)
    for event in ordered:
        assert folder.fits(event)
        folder.add(event)
    assert canonical(folder.state) == expected

    # resume from a stored state and auth ids at any point, with a cold cache
    cut = data.draw(st.integers(1, len(ordered)), label="cut")
    graph = MemoryGraph()
    first = CaseFold(rc.case, graph)
    for event in ordered[:cut]:
        first.add(event)
    stored = orjson_copy(first.state)
    resumed = CaseFold(rc.case, graph, state=stored, auth_ids=list(first.auth_ids))
    resumed.AUTH_CACHE = 1
    for event in ordered[cut:]:
        resumed.add(event)
    assert canonical(resumed.state) == expected


def orjson_copy(state: State) -> State:
    copied: State = orjson.loads(orjson.dumps(state))
    return copied


# -- (c) duplicates change nothing -----------------------------------------------------------------


@SETTINGS
@given(random_cases(), st.randoms(use_true_random=False))
def test_duplicates_change_nothing(rc: RandomCase, rng: Any) -> None:
    expected = reference(rc)
    twice = rc.events * 2
    folder, _graph = fold_events(rc.case, twice)
    assert canonical(folder.state) == expected
    rng.shuffle(twice)
    assert canonical(deliver(rc.case, twice).state) == expected


# -- (d) bundles verify ----------------------------------------------------------------------------


@SETTINGS
@given(random_cases())
def test_bundle_round_trip_verifies(rc: RandomCase) -> None:
    state = fold_events(rc.case, rc.events)[0].state
    data = write_bundle(rc.case, reversed(rc.events), state, exported_by="northwind")
    report = verify_bundle(data)
    assert report.problems == []
    assert report.case == rc.case
    assert report.events == len(rc.events)
    assert report.state_hash == state_hash(state)
    assert report.state is not None and canonical(report.state) == canonical(state)
    assert report.ok == (not state["evidence"] and not state["equivocations"])
    assert report.evidence == state["evidence"]


# -- (e) any single-byte change in an event line is noticed ----------------------------------------


@SETTINGS
@given(random_cases(max_steps=10), st.data())
def test_tampered_event_line_is_noticed(rc: RandomCase, data: st.DataObject) -> None:
    state = fold_events(rc.case, rc.events)[0].state
    lines = write_bundle(rc.case, rc.events, state).split(b"\n")
    number = data.draw(st.integers(1, len(rc.events)), label="line")
    line = bytearray(lines[number])
    position = data.draw(st.integers(0, len(line) - 1), label="position")
    line[position] ^= data.draw(st.integers(1, 255), label="flip")
    lines[number] = bytes(line)
    report = verify_bundle(b"\n".join(lines))
    assert not report.ok
    assert report.problems


# -- (f) no agreement any node showed is replaced without a trace ---------------------------------


def _views(rc: RandomCase, data: st.DataObject) -> list[frozenset[str]]:
    """Causally closed sets of events some node may have held: the past of every event,
    what each side of a partition held when it healed, and unions of two pasts."""
    b = rc.b
    views = [b.past_of([e.id]) for e in rc.events]
    views += rc.views
    # what held every acceptance of a proposal: each party's first one, or its last one
    acceptances: dict[str, dict[str, list[str]]] = {}
    for e in rc.events:
        pid = e.id if e.type == "proposal.made" else e.body.get("proposal")
        if e.type in ("proposal.made", "proposal.accepted") and isinstance(pid, str):
            by = acceptances.setdefault(pid, {})
            by.setdefault(f"{e.author.node}/{e.author.for_party}", []).append(e.id)
    for by in acceptances.values():
        views.append(b.past_of([ids[0] for ids in by.values()]))
        views.append(b.past_of([ids[-1] for ids in by.values()]))
    for _ in range(3):
        one, two = data.draw(st.permutations(rc.events), label="union")[:2]
        views.append(b.past_of([one.id, two.id]))
    return views


NEGOTIATING = ("propose", "accept", "accept", "switch", "switch", "withdraw", "message")


@SETTINGS
@given(
    st.one_of(
        random_cases(max_steps=26),
        random_cases(max_steps=16, actions=NEGOTIATING, split=True),  # switching across a cut
    ),
    st.data(),
)
def test_no_agreement_is_replaced_silently(rc: RandomCase, data: st.DataObject) -> None:
    """Whatever a node held, every agreement it showed either stands in the fold of
    everything, or that fold lists it under ``superseded`` — unless a node forked its
    chain, which the fold lists under ``equivocations``."""
    final = fold_events(rc.case, rc.events)[0].state
    if final["equivocations"]:
        return
    standing = {(a["version"], a["proposal"]) for a in final["agreements"]}
    superseded = {(s["version"], s["proposal"]) for s in final["superseded"]}
    for view in _views(rc, data):
        shown = fold_events(rc.case, [e for e in rc.events if e.id in view])[0].state
        for agreement in shown["agreements"]:
            key = (agreement["version"], agreement["proposal"])
            assert key in standing or key in superseded, (key, rc.steps)
    for entry in final["superseded"]:  # and each entry says why, naming the other side
        assert final["proposals"][entry["proposal"]]["state"] != "agreed"
        assert entry["reason"]


# -- (g) one party, one proposal per base: two proposals never both hold every acceptance ---------


def _supported(view_events: list[Event], state: State, graph: Any) -> dict[int, set[str]]:
    """For each base, the proposals every party supports in this set of events: a party
    supports what it proposed, until its next acceptance, which it supports alone."""
    support: dict[tuple[str, int], set[str]] = {}
    for e in sorted(view_events, key=lambda e: e.key):
        meta = graph.meta[e.id]
        if not meta.applied:
            continue
        if e.type == "proposal.made":
            support.setdefault((meta.party, e.body["base"]), set()).add(e.id)
        elif e.type == "proposal.accepted":
            proposal = state["proposals"][e.body["proposal"]]
            support[(meta.party, proposal["base"])] = {e.body["proposal"]}
    full: dict[int, set[str]] = {}
    for pid, proposal in state["proposals"].items():
        base = proposal["base"]
        parties = [p for p, info in state["parties"].items() if info["since"] <= base]
        if all(pid in support.get((p, base), set()) for p in parties):
            full.setdefault(base, set()).add(pid)
    return full


@SETTINGS
@given(
    st.one_of(
        random_cases(max_steps=26),
        random_cases(max_steps=16, actions=NEGOTIATING, split=True),
    ),
    st.data(),
)
def test_two_proposals_never_both_hold_every_acceptance(
    rc: RandomCase, data: st.DataObject
) -> None:
    for view in _views(rc, data):
        events = [e for e in rc.events if e.id in view]
        folder, graph = fold_events(rc.case, events)
        if folder.state["equivocations"]:
            continue
        for base, pids in _supported(events, folder.state, graph).items():
            assert len(pids) <= 1, (base, pids, rc.steps)
