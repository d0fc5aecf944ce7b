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
from typing import Any

from accord.core.canonical import canonical
from accord.core.crypto import event_id
from accord.core.events import Event

State = dict[str, Any]
AUTH_TYPES = frozenset({"case.opened", "proposal.made", "proposal.accepted", "proposal.rejected"})
"""Event types that change who may do what; the rules look only at their fold."""


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


def _party(p: dict[str, Any], since: int) -> dict[str, Any]:
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
        topic.update(state="open", event=e.id)


def _topic_closed(s: State, e: Event, party: str) -> None:
    topic = s["topics"].get(e.body["topic"])
    if topic is not None and topic["state"] == "open":
        topic.update(state="closed", event=e.id, closed_by=party)


def _data_set(s: State, e: Event, party: str) -> None:
    item = {"value": e.body["value"], "by": party, "event": e.id, "time": e.time}
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
    progress.update(state=e.body["state"], event=e.id, time=e.time, note=e.body.get("note"))


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
        "rejected_by": {},
        "version": None,
    }
    countered = s["proposals"].get(b.get("counter_of") or "")
    if countered is not None and countered["state"] == "pending":
        countered["state"] = "countered"
        countered["countered_by"] = e.id
        countered["rejected_by"][party] = e.id
    _settle(s, e.id, e)


def _proposal_accepted(s: State, e: Event, party: str) -> None:
    pid = e.body["proposal"]
    proposal = s["proposals"].get(pid)
    if proposal is None or proposal["state"] != "pending":
        return
    proposal["accepted_by"][party] = e.id
    _settle(s, pid, e)


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
    s["satisfied"] = {}
    s["resolved"] = False


def _put_data(s: State, c: dict[str, Any], e: Event) -> None:
    item = {"value": c["value"]}
    if "label" in c:
        item["label"] = c["label"]
    s["terms"]["data"][c["key"]] = item


def _remove_data(s: State, c: dict[str, Any], e: Event) -> None:
    s["terms"]["data"].pop(c["key"], None)


def _put_activity(s: State, c: dict[str, Any], e: Event) -> None:
    aid = c["activity"]
    s["terms"]["activities"][aid] = {k: v for k, v in c.items() if k not in ("op", "activity")}
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
        party.update(node=c["node"], hosted_by=None)


def _satisfied(s: State, e: Event, party: str) -> None:
    if e.body["version"] != s["terms"]["version"]:
        return  # satisfied with terms that have since changed
    s["satisfied"][party] = {
        "event": e.id,
        "version": e.body["version"],
        "rating": e.body.get("rating"),
        "time": e.time,
    }
    s["resolved"] = set(s["parties"]) <= set(s["satisfied"])


def _reopened(s: State, e: Event, party: str) -> None:
    s["satisfied"] = {}
    s["resolved"] = False
    s["reopened"] += 1


def _status(s: State, e: Event, party: str) -> None:
    entry = {"label": e.body["label"], "by": party, "event": e.id, "time": e.time}
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
    "party.satisfied": _satisfied,
    "case.reopened": _reopened,
    "status.set": _status,
    "owner.named": _owner_named,
}
