"""The case's constitution: may this event take effect, judged against its causal past?

``judge`` sees only the *authority state* of the event's own causal past — the fold
of the proposal and party events the author knew about — never a merged present, so
two nodes that receive events in different orders judge every event identically.
A broken rule does not raise: the event is kept as signed evidence with the reason.
"""

from __future__ import annotations

from accord.core.events import Event
from accord.core.state import OpenWork, Party, Proposal, State, open_work

RELAY_CHANNELS = frozenset(
    {
        "email",
        "webchat",
        "whatsapp",
        "messenger",
        "instagram",
        "telegram",
        "sms",
        "x",
        "phone",
        "api",
        "import",
    }
)
"""Channels through which a hosting node relays a hosted party's *messages* (``api``: what
another system handed in for them, ``import``: what they wrote in a help desk the node
imported); everything else a hosted party does (accept, reject, propose, satisfied)
needs the portal."""

Verdict = tuple[str | None, str | None]
"""(acting party, reason it breaks a rule) — exactly one of the two is None."""


def acting_party(auth: State, event: Event) -> Verdict:
    """The party an event speaks for, or why its author may not speak in this case."""
    author = event.author
    parties: dict[str, Party] = auth["parties"]
    if author.for_party is not None:
        party = parties.get(author.for_party)
        if party is None:
            return None, f"author acts for {author.for_party!r}, which is not a party of this case"
        if party["hosted_by"] != author.node:
            return None, f"this node does not host party {author.for_party!r}"
        if author.via == "portal":
            return author.for_party, None
        if author.via in RELAY_CHANNELS and event.type == "message.posted":
            return author.for_party, None
        return None, (
            "a hosting node acts for its hosted party only via the portal, or relays its "
            "messages from a channel (email, chat, …)"
        )
    for pid, party in parties.items():
        if party["node"] == author.node:
            return pid, None
    return None, "author is not a party of this case"


def judge(auth: State, event: Event) -> Verdict:
    """Decide whether ``event`` may take effect, given the authority state of its past."""
    if event.is_genesis:
        return _judge_opening(event)
    party, reason = acting_party(auth, event)
    if party is None:
        return None, reason
    check = _CHECKS.get(event.type)
    reason = check(auth, event, party) if check else None
    return (None, reason) if reason else (party, None)


def _judge_opening(event: Event) -> Verdict:
    parties = {p["id"]: p for p in event.body["parties"]}
    author = event.author
    if author.for_party is not None:
        party = parties.get(author.for_party)
        if party is None or party.get("hosted_by") != author.node or author.via != "portal":
            return None, "a case opened for a hosted party must list it as hosted by this node"
        return author.for_party, None
    for pid, p in parties.items():
        if p.get("node") == author.node:
            return pid, None
    return None, "the opening node must be one of the case's parties"


def _data_set(auth: State, e: Event, party: str) -> str | None:
    if e.body["key"] in auth["terms"]["data"]:
        return (
            f"data item {e.body['key']!r} is part of the agreed terms; "
            "terms change only through an accepted proposal"
        )
    return None


def _activity_updated(auth: State, e: Event, party: str) -> str | None:
    activity = auth["terms"]["activities"].get(e.body["activity"])
    if activity is None:
        return f"activity {e.body['activity']!r} is not in the agreed terms"
    if activity["owner"] != party:
        return "only the owner party of an activity reports its progress"
    return None


def _proposal_made(auth: State, e: Event, party: str) -> str | None:
    b = e.body
    version = auth["terms"]["version"]
    if b["base"] != version:
        return f"proposal is based on v{b['base']} but v{version} is the current agreement (stale)"
    counter = b.get("counter_of")
    if counter is not None:
        countered = auth["proposals"].get(counter)
        if countered is None:
            return f"counter_of names unknown proposal {counter}"
        if countered["state"] != "pending":
            return f"cannot counter a proposal that is {countered['state']}"
    rebased_id = b.get("rebase_of")
    if rebased_id is not None:
        rebased = auth["proposals"].get(rebased_id)
        if rebased is None:
            return f"rebase_of names unknown proposal {rebased_id}"
        if rebased["by"] != party:
            return "only the author of a proposal proposes it again on a newer version"
        if rebased["state"] == "agreed":
            return "an agreed proposal is not proposed again"
    parties = set(auth["parties"])
    nodes = {p["node"] for p in auth["parties"].values() if p["node"]}
    data = set(auth["terms"]["data"])
    activities = set(auth["terms"]["activities"])
    for i, change in enumerate(b["changes"]):
        where = f"changes[{i}]"
        op = change["op"]
        if op == "data.put":
            data.add(change["key"])
        elif op == "data.remove":
            if change["key"] not in data:
                return f"{where}: no data item {change['key']!r} to remove"
            data.discard(change["key"])
        elif op == "activity.put":
            if change["owner"] not in parties:
                return f"{where}: owner {change['owner']!r} is not a party"
            activities.add(change["activity"])
        elif op == "activity.remove":
            if change["activity"] not in activities:
                return f"{where}: no activity {change['activity']!r} to remove"
            activities.discard(change["activity"])
        elif op == "party.add":
            new = change["party"]
            if new["id"] in parties:
                return f"{where}: {new['id']!r} is already a party"
            if new.get("node") and new["node"] in nodes:
                return f"{where}: that node already speaks for a party"
            parties.add(new["id"])
            if new.get("node"):
                nodes.add(new["node"])
        elif op == "party.key":
            if change["party"] not in parties:
                return f"{where}: {change['party']!r} is not a party"
            if change["node"] in nodes:
                return f"{where}: that node already speaks for a party"
            nodes.add(change["node"])
    return None


def _pending(auth: State, pid: str) -> tuple[Proposal | None, str | None]:
    proposal = auth["proposals"].get(pid)
    if proposal is None:
        return None, f"unknown proposal {pid}"
    if proposal["state"] != "pending":
        return None, f"proposal is {proposal['state']}"
    if proposal["base"] != auth["terms"]["version"]:
        return None, "proposal is stale: another proposal was agreed on its base"
    return proposal, None


def _proposal_accepted(auth: State, e: Event, party: str) -> str | None:
    proposal, reason = _pending(auth, e.body["proposal"])
    if proposal is None:
        return reason
    if party in proposal["accepted_by"]:
        return f"party {party!r} has already accepted this proposal"
    return None


def _proposal_rejected(auth: State, e: Event, party: str) -> str | None:
    proposal, reason = _pending(auth, e.body["proposal"])
    if proposal is None:
        return reason
    if party in proposal["accepted_by"]:
        return f"party {party!r} has accepted this proposal; counter it instead"
    return None


def _proposal_withdrawn(auth: State, e: Event, party: str) -> str | None:
    proposal = auth["proposals"].get(e.body["proposal"])
    if proposal is None:
        return f"unknown proposal {e.body['proposal']}"
    if proposal["by"] != party:
        return "only the party that made a proposal withdraws it"
    if proposal["state"] not in ("pending", "stale"):
        return f"proposal is {proposal['state']}"
    return None


def _activity_committed(auth: State, e: Event, party: str) -> str | None:
    if e.body["owner"] != party:
        return "a party commits at once only to an activity it owns; others need a proposal"
    if e.body["activity"] in auth["terms"]["activities"]:
        return f"activity {e.body['activity']!r} is already agreed; change it by a proposal"
    return None


def _satisfied(auth: State, e: Event, party: str) -> str | None:
    version = auth["terms"]["version"]
    if e.body["version"] != version:
        return f"satisfaction names v{e.body['version']} but v{version} is the current agreement"
    if "reason" not in e.body:
        work = open_work(auth)
        if work["activities"] or work["topics"]:
            return (
                "work is still open (" + describe_open_work(work) + "); close anyway with a reason"
            )
    return None


def describe_open_work(work: OpenWork) -> str:
    parts = []
    if work["activities"]:
        parts.append("activities: " + ", ".join(work["activities"]))
    if work["topics"]:
        parts.append("topics: " + ", ".join(work["topics"]))
    return "; ".join(parts)


_CHECKS = {
    "data.set": _data_set,
    "activity.updated": _activity_updated,
    "proposal.made": _proposal_made,
    "proposal.accepted": _proposal_accepted,
    "proposal.rejected": _proposal_rejected,
    "proposal.withdrawn": _proposal_withdrawn,
    "activity.committed": _activity_committed,
    "party.satisfied": _satisfied,
}
