"""How a member reads the case log: one vocabulary for the workspace and the signed copy.

The members' pages (``accord.web.render``) and the readable signed copy
(``accord.service.report``) both put events, proposed changes, activities, party names and
times into words; they share these so that a proposal reads the same on the case page as
in the copy a party downloads. The portal speaks to the customer in their own language and
person ("You call back by …"), so it has its own sentences in ``accord.web.plain``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from accord.core.timefmt import parse_time
from accord.service.summary import format_value

# What an event did, when nothing more particular can be said of it.
EVENT_WORDS: dict[str, str] = {
    "case.opened": "opened the case",
    "message.posted": "wrote",
    "topic.opened": "opened a topic",
    "topic.closed": "closed a topic",
    "data.set": "shared information",
    "proposal.made": "proposed a change",
    "proposal.accepted": "accepted a proposal",
    "proposal.rejected": "rejected a proposal",
    "proposal.withdrawn": "withdrew a proposal",
    "activity.committed": "promised",
    "activity.updated": "reported progress",
    "party.satisfied": "is satisfied",
    "case.reopened": "reopened the case",
    "status.set": "set the status",
    "owner.named": "named the owner",
}

LONG_TIME = "%a %d %b %Y, %H:%M"


def when(value: str | datetime | None, zone: ZoneInfo, fmt: str = LONG_TIME) -> str:
    """A log time (or datetime) in ``zone``, for people; a time that does not parse as it is."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            moment = parse_time(value)
        except ValueError:
            return value
    else:
        moment = value
    if moment.tzinfo is None:  # SQLite hands back stored UTC times without their zone
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone).strftime(fmt)


def party_name(parties: Mapping[str, Any], party: str | None) -> str:
    """A party's display name, or its id when the case does not know it."""
    if party is None:
        return ""
    return str(parties.get(party, {}).get("name", party))


def activity_words(a: Mapping[str, Any], parties: Mapping[str, Any], zone: ZoneInfo) -> str:
    """An activity as proposed or promised: what, whose (and which member), by when."""
    who = party_name(parties, a["owner"])
    if a.get("member"):
        who += f" ({a['member']})"
    text = ("Callback: " if a.get("kind") == "callback" else "") + f"{a['title']} — {who}"
    if a.get("due"):
        text += f", due {when(a['due'], zone)}"
    if a.get("committed"):
        text += f"; promised by {party_name(parties, a['committed']['by'])}"
    return text


def change_words(
    change: Mapping[str, Any],
    parties: Mapping[str, Any],
    zone: ZoneInfo,
    *,
    value: Callable[[dict[str, Any]], str] = format_value,
    titles: Mapping[str, str] | None = None,
) -> str:
    """One proposed change in words; ``value`` shows a typed value, ``titles`` names
    activities by their title rather than their id where the caller knows them."""
    op = change.get("op")
    if op == "activity.put":
        return activity_words(change, parties, zone)
    if op == "activity.remove":
        activity = str(change["activity"])
        return f"Cancel {(titles or {}).get(activity, activity)}"
    if op == "data.put":
        return f"{change.get('label') or change['key']}: {value(change['value'])}"
    if op == "data.remove":
        return f"Remove {change['key']}"
    if op == "party.add":
        return f"Add {change['party']['name']} as a party"
    if op == "party.key":
        return f"{party_name(parties, change['party'])} moves to its own key"
    return str(op)
