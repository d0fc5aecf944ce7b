"""The case state and the effect of each (rule-abiding) event on it.

The state is plain JSON-shaped data so that it can be hashed canonically, stored as
a materialised view and compared byte for byte between nodes. ``apply`` assumes the
event already passed ``rules.judge`` against its own causal past; here, effects are
resolved against the state being folded, deterministically: an acceptance that
arrives after a competing proposal won makes nothing change, and the proposal shows
as stale.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NotRequired, TypedDict, cast

from accord.core.activities import activity_open
from accord.core.canonical import canonical
from accord.core.crypto import event_id
from accord.core.events import Event

# The shape of the state, exactly as ``empty_state`` and the effects below build it. These
# are TypedDicts, so at run time the state stays plain JSON-shaped dicts and lists (its
# canonical bytes and hash do not depend on them); times are the events' ISO strings and
# ``value`` is any JSON value an event body carried.


class Stamp(TypedDict):
    """Who did something, in which event, when (``opened``, ``last_message``)."""

    by: str
    event: str
    time: str


class Party(TypedDict):
    name: str
    kind: str
    node: str | None
    hosted_by: str | None
    url: str | None
    since: int  # the terms version from which the party takes part (0: from the opening)


class Topic(TypedDict):
    title: str
    state: str  # "open" or "closed"
    by: str
    event: str
    closed_by: NotRequired[str]


class Info(TypedDict):
    """A ``data.set`` fact (not part of the terms)."""

    value: Any
    by: str
    event: str
    time: str
    label: NotRequired[str]


class Datum(TypedDict):
    """A term's data item, put by an agreed ``data.put`` change."""

    value: Any
    label: NotRequired[str]


class Commitment(TypedDict):
    by: str
    event: str
    time: str


class Activity(TypedDict):
    """An agreed activity: the fields of its ``activity.put`` change (or commitment)."""

    title: str
    owner: str
    kind: str  # bodies.ACTIVITY_KINDS
    member: NotRequired[str]
    due: NotRequired[str]
    channel: NotRequired[str]
    topic: NotRequired[str]
    committed: NotRequired[Commitment]  # promised by its owner with activity.committed


class Terms(TypedDict):
    version: int
    data: dict[str, Datum]
    activities: dict[str, Activity]


class Progress(TypedDict):
    state: str  # "agreed", "in_progress", "done" or "cancelled"
    event: str
    time: str
    note: str | None
    title: NotRequired[str]  # kept from a removed (cancelled) activity
    owner: NotRequired[str]


class Withdrawal(TypedDict):
    event: str
    time: str
    reason: str | None


class Proposal(TypedDict):
    by: str
    base: int
    changes: list[dict[str, Any]]  # as checked by bodies.check_change
    note: str | None
    counter_of: str | None
    time: str
    state: str  # "pending", "agreed", "stale", "countered", "rejected" or "withdrawn"
    accepted_by: dict[str, str]  # party -> its acceptance that counts
    acceptances: dict[str, list[str]]  # party -> every acceptance it made
    withdrawn_by: dict[str, str]
    rejected_by: dict[str, str]
    version: int | None  # the terms version it made, once agreed
    rebase_of: NotRequired[str]
    reproposed_as: NotRequired[str]
    countered_by: NotRequired[str]
    crossed_with: NotRequired[int]
    superseded_by: NotRequired[int]
    withdrawn: NotRequired[Withdrawal]


class AgreedTerms(TypedDict):
    data: dict[str, Datum]
    activities: dict[str, Activity]
    parties: list[str]


class Agreement(TypedDict):
    version: int
    proposal: str
    acceptances: dict[str, str]
    event: str
    time: str
    terms: AgreedTerms


class OpenWork(TypedDict):
    activities: list[str]
    topics: list[str]


class Satisfaction(TypedDict):
    event: str
    version: int
    rating: int | None
    time: str
    reason: NotRequired[str]  # closed anyway, with the work that was open
    open: NotRequired[OpenWork]


class Status(TypedDict):
    label: str
    by: str
    event: str
    time: str


class Owner(TypedDict):
    name: str
    event: str
    time: str
    changes: int


class AuthorHead(TypedDict):
    seq: int
    id: str


class Evidence(TypedDict):
    """An event kept only as evidence, and why."""

    event: str
    type: str
    author: str
    reason: str


class Equivocation(TypedDict):
    author: str
    seq: int
    events: list[str]


class Superseded(TypedDict):
    """An agreement some node may have shown that did not stand here (fold.py)."""

    proposal: str
    version: int
    by: str | None
    state: str
    acceptances: dict[str, str]
    withdrawn_by: dict[str, str]
    learnt: str
    reason: str


class State(TypedDict):
    case: str
    title: str
    opened: Stamp | None
    template: str | None
    parties: dict[str, Party]
    topics: dict[str, Topic]
    info: dict[str, Info]
    terms: Terms
    agreements: list[Agreement]
    proposals: dict[str, Proposal]
    progress: dict[str, Progress]
    satisfied: dict[str, Satisfaction]
    resolved: bool
    reopened: int
    status: Status | None
    status_history: list[Status]
    owners: dict[str, Owner]
    messages: int
    last_message: Stamp | None
    events: int
    heads: list[str]
    authors: dict[str, AuthorHead]
    last: list[Any] | None  # [depth, id] of the last folded event
    evidence: list[Evidence]
    equivocations: list[Equivocation]
    superseded: list[Superseded]


AUTH_TYPES = frozenset(
    {
        "case.opened",
        "proposal.made",
        "proposal.accepted",
        "proposal.rejected",
        "proposal.withdrawn",
        "activity.committed",
        "activity.updated",
        "topic.opened",
        "topic.closed",
    }
)
"""Event types that change who may do what (parties, terms, proposals) or what the rules
read (the progress of agreed activities and the open topics, for satisfaction); the rules
look only at their fold."""
PROPOSAL_TYPES = frozenset(
    {"proposal.made", "proposal.accepted", "proposal.rejected", "proposal.withdrawn"}
)


def empty_state(case_id: str) -> State:
    return {
        "case": case_id,
        "title": "",
        "opened": None,
        "template": None,
        "parties": {},
        "topics": {},
        "info": {},
        "terms": {"version": 0, "data": {}, "activities": {}},
        "agreements": [],
        "proposals": {},
        "progress": {},
        "satisfied": {},
        "resolved": False,
        "reopened": 0,
        "status": None,
        "status_history": [],
        "owners": {},
        "messages": 0,
        "last_message": None,
        "events": 0,
        "heads": [],
        "authors": {},
        "last": None,
        "evidence": [],
        "equivocations": [],
        "superseded": [],
    }


def state_hash(state: State) -> str:
    """The hash every node holding the same events computes for this case."""
    return event_id(canonical(state))


def apply(state: State, event: Event, party: str) -> None:
    """Apply the effect of ``event``, written by or for ``party``."""
    _EFFECTS[event.type](state, event, party)


def _opened(s: State, e: Event, party: str) -> None:
    b = e.body
    s["title"] = b["title"]
    s["template"] = b.get("template")
    s["opened"] = {"by": party, "event": e.id, "time": e.time}
    for p in b["parties"]:
        s["parties"][p["id"]] = _party(p, 0)
    for t in b.get("topics", []):
        s["topics"][t["topic"]] = {"title": t["title"], "state": "open", "by": party, "event": e.id}


def _party(p: dict[str, Any], since: int) -> Party:
    return {
        "name": p["name"],
        "kind": p["kind"],
        "node": p.get("node"),
        "hosted_by": p.get("hosted_by"),
        "url": p.get("url"),
        "since": since,
    }


def _message(s: State, e: Event, party: str) -> None:
    s["messages"] += 1
    s["last_message"] = {"event": e.id, "by": party, "time": e.time}


def _topic_opened(s: State, e: Event, party: str) -> None:
    topic = s["topics"].get(e.body["topic"])
    if topic is None:
        s["topics"][e.body["topic"]] = {
            "title": e.body["title"],
            "state": "open",
            "by": party,
            "event": e.id,
        }
    elif topic["state"] == "closed":
        topic.update({"state": "open", "event": e.id})


def _topic_closed(s: State, e: Event, party: str) -> None:
    topic = s["topics"].get(e.body["topic"])
    if topic is not None and topic["state"] == "open":
        topic.update({"state": "closed", "event": e.id, "closed_by": party})


def _data_set(s: State, e: Event, party: str) -> None:
    item: Info = {"value": e.body["value"], "by": party, "event": e.id, "time": e.time}
    if "label" in e.body:
        item["label"] = e.body["label"]
    s["info"][e.body["key"]] = item


def _activity_updated(s: State, e: Event, party: str) -> None:
    aid = e.body["activity"]
    progress = s["progress"].get(aid)
    if aid not in s["terms"]["activities"] or progress is None:
        return
    if progress["state"] in ("done", "cancelled"):
        return  # terminal; a late report stays in the history only
    progress.update(
        {"state": e.body["state"], "event": e.id, "time": e.time, "note": e.body.get("note")}
    )


def _proposal_made(s: State, e: Event, party: str) -> None:
    b = e.body
    s["proposals"][e.id] = {
        "by": party,
        "base": b["base"],
        "changes": b["changes"],
        "note": b.get("note"),
        "counter_of": b.get("counter_of"),
        "time": e.time,
        "state": "pending",
        "accepted_by": {party: e.id},
        "acceptances": {party: [e.id]},
        "withdrawn_by": {},
        "rejected_by": {},
        "version": None,
    }
    if "rebase_of" in b:
        s["proposals"][e.id]["rebase_of"] = b["rebase_of"]
        rebased = s["proposals"].get(b["rebase_of"])
        if rebased is not None and "reproposed_as" not in rebased:
            rebased["reproposed_as"] = e.id
    countered = s["proposals"].get(b.get("counter_of") or "")
    if countered is not None and countered["state"] == "pending":
        countered["state"] = "countered"
        countered["countered_by"] = e.id
        countered["rejected_by"][party] = e.id
    _settle(s, e.id, e)


def _proposal_accepted(s: State, e: Event, party: str) -> None:
    pid = e.body["proposal"]
    proposal = s["proposals"].get(pid)
    if proposal is None:
        return
    proposal["acceptances"].setdefault(party, []).append(e.id)
    _withdraw_others(s, pid, proposal["base"], party, e)
    if proposal["state"] != "pending":
        return
    proposal["accepted_by"][party] = e.id
    _settle(s, pid, e)


def _withdraw_others(s: State, pid: str, base: int, party: str, e: Event) -> None:
    """A party's acceptance of ``pid`` withdraws its earlier acceptance (explicit, or by
    proposing) of every other open proposal on the same base. Its own chain orders its
    acceptances and the fold meets them in that order, so "earlier" is the same on every
    node. Making a proposal does not withdraw anything: a party may put several side by
    side, and the others choose by accepting one (docs/case-log.md proves that two
    proposals on one base can then never both hold every party's acceptance)."""
    for other_id, other in s["proposals"].items():
        if (
            other_id != pid
            and other["base"] == base
            and other["state"] == "pending"
            and party in other["accepted_by"]
        ):
            del other["accepted_by"][party]
            other["withdrawn_by"][party] = e.id


def _proposal_withdrawn(s: State, e: Event, party: str) -> None:
    proposal = s["proposals"].get(e.body["proposal"])
    if proposal is None or proposal["state"] not in ("pending", "stale"):
        return
    proposal["state"] = "withdrawn"
    proposal["withdrawn"] = {"event": e.id, "time": e.time, "reason": e.body.get("reason")}


def _proposal_rejected(s: State, e: Event, party: str) -> None:
    proposal = s["proposals"].get(e.body["proposal"])
    if proposal is None or proposal["state"] != "pending":
        return
    proposal["state"] = "rejected"
    proposal["rejected_by"][party] = e.id


def _settle(s: State, pid: str, e: Event) -> None:
    """Agree ``pid`` if every party accepted it on the current base (compare-and-swap)."""
    proposal = s["proposals"][pid]
    terms = s["terms"]
    if proposal["base"] != terms["version"]:
        proposal["state"] = "stale"
        if proposal["base"] < terms["version"]:
            proposal["crossed_with"] = proposal["base"] + 1
        return
    if not set(s["parties"]) <= set(proposal["accepted_by"]):
        return
    base = terms["version"]
    for change in proposal["changes"]:
        _CHANGES[change["op"]](s, change, e)
    terms["version"] = base + 1
    proposal["state"] = "agreed"
    proposal["version"] = base + 1
    s["agreements"].append(
        {
            "version": base + 1,
            "proposal": pid,
            "acceptances": dict(proposal["accepted_by"]),
            "event": e.id,
            "time": e.time,
            "terms": {
                "data": dict(terms["data"]),
                "activities": dict(terms["activities"]),
                "parties": sorted(s["parties"]),
            },
        }
    )
    for other_id, other in s["proposals"].items():
        if other_id != pid and other["state"] == "pending" and other["base"] == base:
            other["state"] = "stale"
            other["superseded_by"] = base + 1
            other["crossed_with"] = base + 1
    s["satisfied"] = {}
    s["resolved"] = False


def _put_data(s: State, c: dict[str, Any], e: Event) -> None:
    item: Datum = {"value": c["value"]}
    if "label" in c:
        item["label"] = c["label"]
    s["terms"]["data"][c["key"]] = item


def _activity(fields: dict[str, Any], drop: tuple[str, ...]) -> Activity:
    """The activity an ``activity.put`` change or an ``activity.committed`` body describes:
    its fields but ``drop``, as ``bodies.check_change`` let them through."""
    return cast(Activity, {k: v for k, v in fields.items() if k not in drop})


def _remove_data(s: State, c: dict[str, Any], e: Event) -> None:
    s["terms"]["data"].pop(c["key"], None)


def _put_activity(s: State, c: dict[str, Any], e: Event) -> None:
    aid = c["activity"]
    s["terms"]["activities"][aid] = _activity(c, ("op", "activity"))
    progress = s["progress"].get(aid)
    if progress is None or progress["state"] == "cancelled":
        s["progress"][aid] = {"state": "agreed", "event": e.id, "time": e.time, "note": None}


def _remove_activity(s: State, c: dict[str, Any], e: Event) -> None:
    removed = s["terms"]["activities"].pop(c["activity"], None)
    if removed is not None:
        s["progress"][c["activity"]] = {
            "state": "cancelled",
            "event": e.id,
            "time": e.time,
            "note": None,
            "title": removed["title"],
            "owner": removed["owner"],
        }


def _add_party(s: State, c: dict[str, Any], e: Event) -> None:
    p = c["party"]
    s["parties"][p["id"]] = _party(p, s["terms"]["version"] + 1)


def _move_key(s: State, c: dict[str, Any], e: Event) -> None:
    party = s["parties"].get(c["party"])
    if party is not None:
        party.update({"node": c["node"], "hosted_by": None})


def open_work(s: State) -> OpenWork:
    """Agreed activities not done or cancelled, and open topics: what satisfaction waits for."""
    activities = sorted(aid for aid in s["terms"]["activities"] if activity_open(s, aid))
    topics = sorted(t for t, topic in s["topics"].items() if topic["state"] == "open")
    return {"activities": activities, "topics": topics}


def _satisfied(s: State, e: Event, party: str) -> None:
    if e.body["version"] != s["terms"]["version"]:
        return  # satisfied with terms that have since changed
    work = open_work(s)
    reason = e.body.get("reason")
    if reason is None and (work["activities"] or work["topics"]):
        return  # work promised concurrently is still open: no effect
    entry: Satisfaction = {
        "event": e.id,
        "version": e.body["version"],
        "rating": e.body.get("rating"),
        "time": e.time,
    }
    if reason is not None:  # closed anyway, with the work that was open
        entry["reason"] = reason
        entry["open"] = work
    s["satisfied"][party] = entry
    s["resolved"] = set(s["parties"]) <= set(s["satisfied"])


def _committed(s: State, e: Event, party: str) -> None:
    """The owner party promises an activity of its own at once (no acceptance needed)."""
    b = e.body
    aid = b["activity"]
    if aid in s["terms"]["activities"]:
        return  # a concurrent agreement or promise put it first
    activity = _activity(b, ("activity", "note"))
    activity["committed"] = {"by": party, "event": e.id, "time": e.time}
    s["terms"]["activities"][aid] = activity
    progress = s["progress"].get(aid)
    if progress is None or progress["state"] == "cancelled":
        s["progress"][aid] = {"state": "agreed", "event": e.id, "time": e.time, "note": None}
    s["satisfied"] = {}
    s["resolved"] = False


def _reopened(s: State, e: Event, party: str) -> None:
    s["satisfied"] = {}
    s["resolved"] = False
    s["reopened"] += 1


def _status(s: State, e: Event, party: str) -> None:
    entry: Status = {"label": e.body["label"], "by": party, "event": e.id, "time": e.time}
    s["status"] = entry
    s["status_history"].append(entry)


def _owner_named(s: State, e: Event, party: str) -> None:
    """A party names the one person accountable for its side of the case."""
    previous = s["owners"].get(party)
    if previous is not None and previous["name"] == e.body["name"]:
        return
    s["owners"][party] = {
        "name": e.body["name"],
        "event": e.id,
        "time": e.time,
        "changes": 0 if previous is None else previous["changes"] + 1,
    }


_CHANGES: dict[str, Callable[[State, dict[str, Any], Event], None]] = {
    "data.put": _put_data,
    "data.remove": _remove_data,
    "activity.put": _put_activity,
    "activity.remove": _remove_activity,
    "party.add": _add_party,
    "party.key": _move_key,
}

_EFFECTS: dict[str, Callable[[State, Event, str], None]] = {
    "case.opened": _opened,
    "message.posted": _message,
    "topic.opened": _topic_opened,
    "topic.closed": _topic_closed,
    "data.set": _data_set,
    "activity.updated": _activity_updated,
    "proposal.made": _proposal_made,
    "proposal.accepted": _proposal_accepted,
    "proposal.rejected": _proposal_rejected,
    "proposal.withdrawn": _proposal_withdrawn,
    "activity.committed": _committed,
    "party.satisfied": _satisfied,
    "case.reopened": _reopened,
    "status.set": _status,
    "owner.named": _owner_named,
}
