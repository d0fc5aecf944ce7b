"""Test helpers: realistic, correctly chained and signed Accord cases.

``CaseBuilder`` keeps, for each node key, its latest ``(seq, id)`` in the case, the case
heads and every event's depth and causal past, so that ``add`` builds the next event
exactly as a well-behaved node would: ``parents`` = the current heads, ``depth`` = 1 +
the deepest parent, ``seq``/``prev`` continuing the author's own chain. Explicit
``parents`` make concurrent branches; ``seq``/``prev``/``depth`` overrides make broken
ones.

The names come from scenario 1 of SCENARIOS.md (the broadband contract): Northwind
Broadband (Tom Baker, Sara Lind), its customer Priya Shah and the engineering firm
Fibrefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from accord.core.crypto import NodeKey
from accord.core.events import Event, create_event
from accord.core.fold import CaseFold, MemoryGraph, fold_events
from accord.core.state import State


def _key(name: str) -> NodeKey:
    return NodeKey(name.encode("ascii").ljust(32, b"\0"))


NORTHWIND = _key("northwind-broadband")
FIBREFIX = _key("fibrefix-engineering")
PRIYA_NODE = _key("priya-shah-laptop")  # for cases where Priya runs her own node
OUTSIDER = _key("mallory-not-a-party")

TOM = "Tom Baker"
SARA = "Sara Lind"
PRIYA = "Priya Shah"
ENGINEER = "Ravi Kumar"
PORTAL_SESSION = "portal-session-7f3a9c"

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def org(party_id: str, name: str, key: NodeKey) -> dict[str, Any]:
    """A party with its own node."""
    return {"id": party_id, "name": name, "kind": "organisation", "node": key.public}


def person(party_id: str, name: str, key: NodeKey) -> dict[str, Any]:
    """A person running their own (personal) node."""
    return {"id": party_id, "name": name, "kind": "person", "node": key.public}


def hosted(party_id: str, name: str, host: NodeKey) -> dict[str, Any]:
    """A hosted person: acts through ``host``'s portal."""
    return {"id": party_id, "name": name, "kind": "person", "hosted_by": host.public}


NORTHWIND_PARTY = org("northwind", "Northwind Broadband", NORTHWIND)
FIBREFIX_PARTY = org("fibrefix", "Fibrefix", FIBREFIX)
PRIYA_HOSTED = hosted("priya", PRIYA, NORTHWIND)
PRIYA_OWN_NODE = person("priya", PRIYA, PRIYA_NODE)


class PortalAuthor(TypedDict):
    via: str
    for_party: str
    session: str


def portal(party: str = "priya", session: str = PORTAL_SESSION) -> PortalAuthor:
    """Author keywords for a hosted party acting through its host's portal."""
    return {"via": "portal", "for_party": party, "session": session}


def money(amount: str, currency: str = "GBP", per: str | None = None) -> dict[str, str]:
    value = {"type": "money", "amount": amount, "currency": currency}
    if per is not None:
        value["per"] = per
    return value


def data_put(key: str, value: dict[str, Any], label: str | None = None) -> dict[str, Any]:
    change: dict[str, Any] = {"op": "data.put", "key": key, "value": value}
    if label is not None:
        change["label"] = label
    return change


def activity_put(
    activity: str, title: str, owner: str, *, kind: str = "task", **extra: str
) -> dict[str, Any]:
    change: dict[str, Any] = {"op": "activity.put", "activity": activity, "title": title}
    change.update(owner=owner, kind=kind, **extra)
    return change


class CaseBuilder:
    """Builds one case's events, chained and signed like a well-behaved node would."""

    def __init__(self, start: datetime = START, step: timedelta = timedelta(minutes=1)) -> None:
        self.events: list[Event] = []
        self.by_id: dict[str, Event] = {}
        self.heads: list[str] = []
        self.case_id: str | None = None
        self.chains: dict[str, tuple[int, str]] = {}  # node public key -> (seq, id)
        self._past: dict[str, frozenset[str]] = {}  # id -> ids in its causal past (and itself)
        self._now = start
        self._step = step

    # -- building ---------------------------------------------------------------------------

    def open(
        self,
        key: NodeKey,
        *,
        member: str,
        title: str,
        parties: Sequence[dict[str, Any]],
        topics: Iterable[tuple[str, str]] = (),
        nonce: str = "n-0001",
        **author: Any,
    ) -> Event:
        """The genesis ``case.opened`` event; its id becomes the case id."""
        body: dict[str, Any] = {"title": title, "nonce": nonce, "parties": list(parties)}
        topic_list = [{"topic": t, "title": name} for t, name in topics]
        if topic_list:
            body["topics"] = topic_list
        return self.add(key, "case.opened", body, member=member, **author)

    def add(
        self,
        key: NodeKey,
        type: str,
        body: dict[str, Any],
        *,
        member: str,
        parents: Sequence[str] | None = None,
        via: str | None = None,
        for_party: str | None = None,
        session: str | None = None,
        seq: int | None = None,
        prev: str | None = None,
        depth: int | None = None,
        time: datetime | str | None = None,
        link_prev: bool = True,
        record: bool = True,
    ) -> Event:
        """Build (and by default record) the author's next event.

        ``parents`` defaults to the current heads. With explicit ``parents`` that do not
        reach the author's previous event, that event is added as a parent (a node always
        knows its own latest event) unless ``link_prev`` is false. ``seq``, ``prev`` and
        ``depth`` override the computed values, to build broken or equivocating events.
        """
        genesis = type == "case.opened"
        if not genesis and self.case_id is None:
            raise ValueError("open the case first")
        chain = self.chains.get(key.public)
        if seq is None:
            seq = 1 if chain is None else chain[0] + 1
            if prev is None and chain is not None:
                prev = chain[1]
        parent_list = list(self.heads if parents is None else parents)
        if genesis:
            parent_list = []
        elif (
            parents is not None
            and link_prev
            and prev is not None
            and prev in self.by_id
            and prev not in self.past_of(parent_list)
        ):
            parent_list.append(prev)
        if depth is None:
            depth = 1 + max(
                (self.by_id[p].depth for p in parent_list if p in self.by_id), default=0
            )
        if time is None:
            self._now += self._step
            time = self._now
        event = create_event(
            key,
            case=None if genesis else self.case_id,
            type=type,
            member=member,
            seq=seq,
            prev=prev,
            parents=sorted(set(parent_list)),
            depth=depth,
            time=time,
            body=body,
            via=via,
            for_party=for_party,
            session=session,
        )
        if record:
            self.record(event)
        return event

    def record(self, event: Event) -> None:
        """Remember an event built elsewhere (or with ``record=False``)."""
        if event.id in self.by_id:
            return
        if event.is_genesis and self.case_id is None:
            self.case_id = event.id
        self.events.append(event)
        self.by_id[event.id] = event
        self._past[event.id] = self.past_of(event.parents) | {event.id}
        heads = set(self.heads) - set(event.parents)
        heads.add(event.id)
        self.heads = sorted(heads)
        chain = self.chains.get(event.author.node)
        if chain is None or event.seq >= chain[0]:
            self.chains[event.author.node] = (event.seq, event.id)

    # -- shortcuts --------------------------------------------------------------------------

    def message(self, key: NodeKey, text: str, *, member: str, **kw: Any) -> Event:
        return self.add(key, "message.posted", {"text": text}, member=member, **kw)

    def propose(
        self,
        key: NodeKey,
        base: int,
        changes: list[dict[str, Any]],
        *,
        member: str,
        counter_of: str | None = None,
        note: str | None = None,
        **kw: Any,
    ) -> Event:
        body: dict[str, Any] = {"base": base, "changes": changes}
        if counter_of is not None:
            body["counter_of"] = counter_of
        if note is not None:
            body["note"] = note
        return self.add(key, "proposal.made", body, member=member, **kw)

    def accept(self, key: NodeKey, proposal: Event | str, *, member: str, **kw: Any) -> Event:
        pid = proposal if isinstance(proposal, str) else proposal.id
        return self.add(key, "proposal.accepted", {"proposal": pid}, member=member, **kw)

    def satisfied(self, key: NodeKey, version: int, *, member: str, **kw: Any) -> Event:
        return self.add(key, "party.satisfied", {"version": version}, member=member, **kw)

    # -- reading ----------------------------------------------------------------------------

    @property
    def case(self) -> str:
        if self.case_id is None:
            raise ValueError("the case is not open yet")
        return self.case_id

    def past_of(self, ids: Iterable[str]) -> frozenset[str]:
        """Every recorded event in the causal past of ``ids`` (including them)."""
        out: set[str] = set()
        for i in ids:
            out |= self._past.get(i, frozenset({i}))
        return frozenset(out)

    def fold(self, events: Iterable[Event] | None = None) -> CaseFold:
        folder, _graph = fold_events(self.case, self.events if events is None else events)
        return folder

    def state(self) -> State:
        return self.fold().state


# -- scenario 1: the broadband contract ---------------------------------------------------------

TERM_12 = {"type": "number", "value": 12, "unit": "months"}
TERM_1 = {"type": "number", "value": 1, "unit": "months"}


class Broadband:
    """Scenario 1 step by step; ``ev`` names every event built so far.

    Northwind (own node) and Priya (hosted by Northwind, acting through the portal)
    negotiate; Fibrefix (own node) joins later by an accepted ``party.add`` proposal.
    """

    def __init__(self, nonce: str = "nw-0001") -> None:
        self.b = CaseBuilder()
        self.ev: dict[str, Event] = {}
        self.ev["opened"] = self.b.open(
            NORTHWIND,
            member=TOM,
            title="Business broadband: new price and contract term",
            parties=[NORTHWIND_PARTY, PRIYA_HOSTED],
            topics=[("new-price", "New price"), ("contract-term", "Contract term")],
            nonce=nonce,
        )
        self.ev["hello"] = self.b.message(
            NORTHWIND,
            "Hello Priya, I'm Tom Baker and I own your case. Reply here any time.",
            member=TOM,
            via="email",
        )

    @property
    def case(self) -> str:
        return self.b.case

    def plan(self, term: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            data_put("new-price", money("20.00", per="month"), "New price"),
            data_put("term", term, "Contract term"),
            activity_put(
                "switch-tariff",
                "Switch tariff",
                "northwind",
                member=TOM,
                due="2026-12-01T00:00:00Z",
            ),
            activity_put("confirm-address", "Confirm the installation address", "priya"),
            activity_put(
                "callback",
                "Call Priya to confirm the switch",
                "northwind",
                kind="callback",
                member=TOM,
                due="2026-11-24T15:00:00Z",
                channel="phone",
            ),
        ]

    def agree_v1(self) -> Broadband:
        """Tom proposes; Priya counters from the portal (1-month term); Tom accepts: v1."""
        b = self.b
        self.ev["plan"] = b.propose(NORTHWIND, 0, self.plan(TERM_12), member=TOM)
        self.ev["counter"] = b.propose(
            NORTHWIND,
            0,
            self.plan(TERM_1),
            member=PRIYA,
            counter_of=self.ev["plan"].id,
            note="I want a 1-month rolling term",
            **portal(),
        )
        self.ev["accept_counter"] = b.accept(NORTHWIND, self.ev["counter"], member=TOM)
        return self

    def agree_v2(self) -> Broadband:
        """Sara proposes a £10 credit and a new switch date; Priya accepts: v2."""
        b = self.b
        self.ev["credit"] = b.propose(
            NORTHWIND,
            1,
            [
                data_put("credit", money("10.00", per="once"), "Goodwill credit"),
                activity_put(
                    "switch-tariff",
                    "Switch tariff",
                    "northwind",
                    member=SARA,
                    due="2026-12-03T00:00:00Z",
                ),
            ],
            member=SARA,
        )
        self.ev["accept_credit"] = b.accept(NORTHWIND, self.ev["credit"], member=PRIYA, **portal())
        return self

    def finish_work(self) -> Broadband:
        """Do the agreed activities and close both topics: what satisfaction waits for."""
        b = self.b
        for aid in ("switch-tariff", "callback"):
            body = {"activity": aid, "state": "done"}
            self.ev[f"done_{aid}"] = b.add(NORTHWIND, "activity.updated", body, member=SARA)
        body = {"activity": "confirm-address", "state": "done"}
        self.ev["done_confirm-address"] = b.add(
            NORTHWIND, "activity.updated", body, member=PRIYA, **portal()
        )
        for topic in ("new-price", "contract-term"):
            self.ev[f"closed_{topic}"] = b.add(
                NORTHWIND, "topic.closed", {"topic": topic}, member=SARA
            )
        return self

    def resolve(self, version: int = 2) -> Broadband:
        self.finish_work()
        self.ev["satisfied_northwind"] = self.b.satisfied(NORTHWIND, version, member=SARA)
        self.ev["satisfied_priya"] = self.b.satisfied(NORTHWIND, version, member=PRIYA, **portal())
        return self

    def reopen(self) -> Broadband:
        self.ev["reopened"] = self.b.add(
            NORTHWIND,
            "case.reopened",
            {"reason": "The engineer didn't come"},
            member=PRIYA,
            **portal(),
        )
        return self

    def add_fibrefix(self, base: int = 2) -> Broadband:
        """Sara proposes Fibrefix as a party with its own activity; Priya accepts."""
        b = self.b
        self.ev["invite_fibrefix"] = b.propose(
            NORTHWIND,
            base,
            [
                {"op": "party.add", "party": FIBREFIX_PARTY},
                activity_put(
                    "visit-cabinet",
                    "Visit the cabinet",
                    "fibrefix",
                    member=ENGINEER,
                    due="2026-12-03T10:00:00Z",
                ),
            ],
            member=SARA,
        )
        self.ev["accept_fibrefix"] = b.accept(
            NORTHWIND, self.ev["invite_fibrefix"], member=PRIYA, **portal()
        )
        return self

    def full(self) -> Broadband:
        return self.agree_v1().agree_v2().resolve().reopen().add_fibrefix()


# -- delivery as a node sees it -------------------------------------------------------------------


def deliver(case_id: str, arrivals: Iterable[Event]) -> CaseFold:
    """Fold events the way a node receiving them in ``arrivals`` order would.

    An event waits until its parents and its author's previous event are held (sync
    fetches them); it is then folded incrementally when it sorts after everything folded
    so far, and otherwise the case is re-folded from scratch. Duplicates are ignored, as
    a content-addressed store ignores them.
    """
    folder = CaseFold(case_id, MemoryGraph())
    held: dict[str, Event] = {}
    waiting: dict[str, Event] = {}
    for arrival in arrivals:
        if arrival.id in held:
            continue
        waiting[arrival.id] = arrival
        ready = True
        while ready:
            ready = False
            for event in sorted(waiting.values(), key=lambda e: e.key):
                needs = [*event.parents, *([event.prev] if event.prev else [])]
                if all(n in held for n in needs):
                    del waiting[event.id]
                    held[event.id] = event
                    if folder.fits(event):
                        folder.add(event)
                    else:
                        folder, _graph = fold_events(case_id, held.values())
                    ready = True
                    break
    return folder
