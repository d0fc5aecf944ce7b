"""The deterministic fold of a case's event graph into its state.

Events are applied in ``(depth, id)`` order — a topological order, since depth is a
Lamport clock. For every event the fold keeps a little bookkeeping (``Meta``):

* ``clock``: each author's latest ``(seq, id)`` in the event's causal past, to check
  that ``seq``/``prev`` continue the author's own chain;
* ``auth``: a bitset of the rule-abiding *authority* events (opening, proposals,
  acceptances, rejections) in its causal past. The rules judge an event against the
  fold of exactly those events, cached per bitset, so each event is judged against
  its own past and never against a merged present.

``CaseFold`` is incremental: ``add`` folds one more event whose position is after
every event folded so far. An event that sorts earlier (a concurrent branch) needs
a full re-fold, which ``fold_events`` does; both paths give byte-identical state.
The graph storage is behind the small ``Graph`` protocol so that the same engine
runs over memory (verification, tests) and over the database.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice, product
from typing import Any, Protocol

import orjson

from accord.core.errors import AccordError, ChainError, MissingParentsError, WrongCaseError
from accord.core.events import Event
from accord.core.rules import judge
from accord.core.state import (
    AUTH_TYPES,
    PROPOSAL_TYPES,
    Proposal,
    State,
    Superseded,
    apply,
    empty_state,
)

VectorClock = dict[str, list[Any]]  # author node -> [seq, event id]
_FORKED = ("equivocation", "continues an equivocation")


@dataclass(slots=True)
class Meta:
    """What the fold derived about one event (local bookkeeping, not shared)."""

    depth: int
    clock: VectorClock
    auth: int
    party: str | None
    verdict: str | None  # None: applied; otherwise why it is only evidence

    @property
    def applied(self) -> bool:
        return self.verdict is None


class Graph(Protocol):
    """Where the fold reads earlier events and records what it derived."""

    def metas(self, ids: Sequence[str]) -> Mapping[str, Meta]: ...
    def events(self, ids: Sequence[str]) -> Mapping[str, Event]: ...
    def at_position(self, author: str, seq: int) -> Sequence[str]: ...
    def record(self, event: Event, meta: Meta) -> None: ...


@dataclass
class MemoryGraph:
    """A ``Graph`` held in dictionaries."""

    by_id: dict[str, Event] = field(default_factory=dict)
    meta: dict[str, Meta] = field(default_factory=dict)
    positions: dict[tuple[str, int], list[str]] = field(default_factory=dict)

    def metas(self, ids: Sequence[str]) -> Mapping[str, Meta]:
        return {i: self.meta[i] for i in ids if i in self.meta}

    def events(self, ids: Sequence[str]) -> Mapping[str, Event]:
        return {i: self.by_id[i] for i in ids if i in self.by_id}

    def at_position(self, author: str, seq: int) -> Sequence[str]:
        return self.positions.get((author, seq), ())

    def record(self, event: Event, meta: Meta) -> None:
        self.by_id[event.id] = event
        self.meta[event.id] = meta
        self.positions.setdefault((event.author.node, event.seq), []).append(event.id)


class OutOfOrder(Exception):
    """The event sorts before the last folded one; the case must be re-folded."""


class CaseFold:
    """Incremental fold of one case. ``auth_ids`` maps bit positions to event ids."""

    AUTH_CACHE = 256

    def __init__(
        self,
        case_id: str,
        graph: Graph,
        state: State | None = None,
        auth_ids: list[str] | None = None,
    ) -> None:
        self.case_id = case_id
        self.graph = graph
        self.state = state if state is not None else empty_state(case_id)
        self.auth_ids = auth_ids if auth_ids is not None else []
        self._auth: OrderedDict[int, State] = OrderedDict()

    @property
    def last_key(self) -> tuple[int, str] | None:
        last = self.state["last"]
        return (last[0], last[1]) if last else None

    def fits(self, event: Event) -> bool:
        """Whether ``event`` can be folded incrementally (it sorts after everything)."""
        last = self.last_key
        return last is None or event.key > last

    def add(self, event: Event) -> Meta:
        """Fold one event; raise for structural faults, record rule breaks as evidence."""
        if event.case != self.case_id:
            raise WrongCaseError(f"event {event.id} belongs to case {event.case}")
        if not self.fits(event):
            raise OutOfOrder(event.id)
        author = event.author.node
        wanted = list(event.parents)
        if event.prev and event.prev not in wanted:
            wanted.append(event.prev)
        known = self.graph.metas(wanted)
        if missing := [i for i in wanted if i not in known]:
            raise MissingParentsError(event.id, missing)
        parents = [known[p] for p in event.parents]
        if event.depth != 1 + max((p.depth for p in parents), default=0):
            raise ChainError(f"event {event.id}: depth {event.depth} is not 1 + its parents' depth")
        clock = _merge([p.clock for p in parents])
        past = clock.get(author)
        if event.seq == 1:
            if past is not None:
                raise ChainError(f"event {event.id}: seq 1, but the author has earlier events")
        elif past is None or past[0] != event.seq - 1 or past[1] != event.prev:
            raise ChainError(
                f"event {event.id}: seq {event.seq} does not follow the author's latest "
                f"event in its past ({'none' if past is None else f'seq {past[0]}'})"
            )
        clock[author] = [event.seq, event.id]
        bits = 0
        for p in parents:
            bits |= p.auth

        party: str | None = None
        head = self.state["authors"].get(author)
        rivals = (
            [i for i in self.graph.at_position(author, event.seq) if i != event.id]
            if head is not None and event.seq <= head["seq"]
            else []  # nobody holds a position beyond the author's highest folded seq
        )
        if rivals:
            verdict: str | None = (
                f"equivocation: the author also signed {rivals[0]} at seq {event.seq}"
            )
            self._flag_equivocation(author, event.seq, [*rivals, event.id])
        elif event.prev and (known[event.prev].verdict or "").startswith(_FORKED):
            verdict = "continues an equivocation by the same author"
        else:
            party, verdict = judge(self._authority(bits), event)
        meta = Meta(event.depth, clock, bits, party, verdict)
        if verdict is None:
            assert party is not None
            if event.type in AUTH_TYPES:
                new_bits = bits | (1 << len(self.auth_ids))
                if not self._knows_all(bits):  # a concurrent past: keep its own fold
                    derived = _copy(self.auth_state(bits))
                    apply(derived, event, party)
                    self._remember(new_bits, derived)
                self.auth_ids.append(event.id)
                meta.auth = new_bits
            version = self.state["terms"]["version"]
            apply(self.state, event, party)
        else:
            self.state["evidence"].append(
                {"event": event.id, "type": event.type, "author": author, "reason": verdict}
            )
        self._track_graph(event)
        self.graph.record(event, meta)
        if verdict is None and event.type in PROPOSAL_TYPES:
            self._check_superseded(event, meta, version)
        return meta

    MAX_COMBINATIONS = 64
    """Choices of one acceptance per party tried for one proposal (re-acceptances are rare)."""

    def _check_superseded(self, event: Event, meta: Meta, version_before: int) -> None:
        """Keep ``superseded`` listing each proposal that some node may have shown as
        agreed but this fold does not agree: one that held every party's acceptance in
        the joint causal past of those acceptances, yet lost here (a party's later
        acceptance withdrew one, its author withdrew it, or another was agreed first).

        Checked for the proposals on the base a proposal event touches (and on the base
        an agreement just crossed), in fold order — so every node holding the same
        events lists the same entries. A proposal that is agreed after all leaves the
        list: what was shown stands."""
        proposals = self.state["proposals"]
        target = proposals.get(
            event.id if event.type == "proposal.made" else event.body["proposal"]
        )
        bases = set() if target is None else {target["base"]}
        if self.state["terms"]["version"] != version_before:  # an agreement: its base crossed
            bases.add(version_before)
        entries = self.state["superseded"]
        if any(proposals[e["proposal"]]["state"] == "agreed" for e in entries):
            entries[:] = [e for e in entries if proposals[e["proposal"]]["state"] != "agreed"]
        known = {entry["proposal"] for entry in entries}
        for pid in sorted(proposals):
            proposal = proposals[pid]
            if proposal["base"] not in bases or pid in known or proposal["state"] == "agreed":
                continue
            if proposal["state"] == "pending" and not proposal["withdrawn_by"]:
                continue  # every acceptance still counts here: had it sufficed, it would now
            shown = self._agreed_in_some_past(pid, proposal, event, meta)
            if shown is not None:
                entries.append(_superseded(self.state, pid, shown, event))

    def _agreed_in_some_past(
        self, pid: str, proposal: Proposal, event: Event, meta: Meta
    ) -> dict[str, str] | None:
        """One acceptance per party whose joint causal past agrees ``pid``, if any."""
        acceptances: dict[str, list[str]] = proposal["acceptances"]
        parties = sorted(acceptances)
        ids = sorted({i for party in parties for i in acceptances[party]} - {event.id})
        metas = dict(self.graph.metas(ids))
        metas[event.id] = meta
        choices = product(*(acceptances[party] for party in parties))
        for choice in islice(choices, self.MAX_COMBINATIONS):
            bits = 0
            for eid in choice:
                bits |= metas[eid].auth
            if self._knows_all(bits):
                continue  # that past is this fold's own present, where pid is not agreed
            past = self.auth_state(bits)["proposals"].get(pid)
            if past is not None and past["state"] == "agreed":
                return dict(zip(parties, choice, strict=True))
        return None

    def _knows_all(self, bits: int) -> bool:
        return bits == (1 << len(self.auth_ids)) - 1

    def _authority(self, bits: int) -> State:
        """What the rules judge against. When the event's past holds every authority
        event folded so far (the common, non-concurrent case) that is the live state:
        only authority events write the parts the rules read (parties, terms,
        proposals), so no separate fold is needed."""
        return self.state if self._knows_all(bits) else self.auth_state(bits)

    def auth_state(self, bits: int) -> State:
        """The fold of the rule-abiding authority events in ``bits`` (cached)."""
        cached = self._auth.get(bits)
        if cached is not None:
            self._auth.move_to_end(bits)
            return cached
        ids = [self.auth_ids[i] for i in range(bits.bit_length()) if bits >> i & 1]
        events = self.graph.events(ids)
        metas = self.graph.metas(ids)
        state = empty_state(self.case_id)
        for eid in ids:  # bit order is fold order, i.e. (depth, id)
            party = metas[eid].party
            assert party is not None
            apply(state, events[eid], party)
        self._remember(bits, state)
        return state

    def _remember(self, bits: int, state: State) -> None:
        self._auth[bits] = state
        if len(self._auth) > self.AUTH_CACHE:
            self._auth.popitem(last=False)

    def _track_graph(self, event: Event) -> None:
        s = self.state
        s["events"] += 1
        heads = set(s["heads"])
        heads.difference_update(event.parents)
        heads.add(event.id)
        s["heads"] = sorted(heads)
        s["last"] = [event.depth, event.id]
        head = s["authors"].get(event.author.node)
        if head is None or event.seq > head["seq"]:
            s["authors"][event.author.node] = {"seq": event.seq, "id": event.id}

    def _flag_equivocation(self, author: str, seq: int, ids: list[str]) -> None:
        for entry in self.state["equivocations"]:
            if entry["author"] == author and entry["seq"] == seq:
                entry["events"] = sorted(set(entry["events"]) | set(ids))
                return
        self.state["equivocations"].append({"author": author, "seq": seq, "events": sorted(ids)})


def _superseded(state: State, pid: str, shown: dict[str, str], event: Event) -> Superseded:
    """The entry that tells every party an agreement some node showed did not stand."""
    proposal = state["proposals"][pid]
    version = proposal["base"] + 1
    winner = next((a["proposal"] for a in state["agreements"] if a["version"] == version), None)
    why = []
    for party, by in sorted(proposal["withdrawn_by"].items()):
        why.append(f"{party}'s later acceptance {by} withdrew its acceptance of this proposal")
    if proposal["state"] == "withdrawn":
        why.append(f"its author withdrew it ({proposal['withdrawn']['event']})")
    elif proposal["state"] == "countered":
        why.append(f"it was countered ({proposal['countered_by']})")
    elif proposal["state"] == "rejected":
        why.append("it was rejected")
    if winner is not None:
        why.append(f"v{version} is proposal {winner} here")
    return {
        "proposal": pid,
        "version": version,
        "by": winner,
        "state": proposal["state"],
        "acceptances": shown,
        "withdrawn_by": dict(proposal["withdrawn_by"]),
        "learnt": event.id,
        "reason": "; ".join(why) or "another proposal was agreed on the same base first",
    }


def _merge(clocks: list[VectorClock]) -> VectorClock:
    if len(clocks) == 1:
        return dict(clocks[0])
    merged: VectorClock = {}
    for clock in clocks:
        for author, (seq, eid) in clock.items():
            have = merged.get(author)
            if have is None or seq > have[0] or (seq == have[0] and eid < have[1]):
                merged[author] = [seq, eid]
    return merged


def _copy(state: State) -> State:
    copied: State = orjson.loads(orjson.dumps(state))
    return copied


def fold_events(
    case_id: str,
    events: Iterable[Event],
    *,
    on_error: Callable[[Event, AccordError], None] | None = None,
) -> tuple[CaseFold, MemoryGraph]:
    """Fold a whole set of events from scratch, in (depth, id) order; duplicates ignored.

    A structural fault raises, unless ``on_error`` is given: then the event is
    reported to it and left out (its descendants then fail for a missing parent).
    """
    unique = {e.id: e for e in events}
    graph = MemoryGraph()
    folder = CaseFold(case_id, graph)
    for event in sorted(unique.values(), key=lambda e: e.key):
        try:
            folder.add(event)
        except AccordError as exc:
            if on_error is None:
                raise
            on_error(event, exc)
    return folder, graph
