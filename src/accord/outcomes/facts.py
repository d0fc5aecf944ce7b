"""The outcome facts of one case, from its log and the node's private data.

Pure: no I/O and no clock reads; the caller hands in the events (in fold order, each
with the party it speaks for and whether it passed the rules), the folded state, the
node's private facts, the business calendar and "now". Definitions (``docs/outcomes.md``):

- **first response**: opening → the first message from our party written by a member
  (not by Accord itself, not relayed for a hosted customer);
- **agreement**: opening → agreement v1; **resolution**: opening → the satisfaction that
  resolved the case (the latest one, after any reopening); open cases have none;
- all durations are business time (`BusinessCalendar.between`), in whole seconds;
- **promises**: each agreed (activity, due time) pair is one promise. It is kept if the
  activity was reported done by its due time plus `GRACE`, missed if that moment passed
  first; a promise moved to a new time before it fell due counts as neither (the new
  time is the promise), and one not yet due is still pending;
- **rounds**: proposals and counter-proposals made; **reopenings**: times reopened;
- **rating**: a member's private rating mark if there is one, else the mean of the
  ratings other parties gave when marking satisfied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from accord.core.events import Event
from accord.core.timefmt import parse_time
from accord.service.calendar import BusinessCalendar
from accord.templates.spec import deviations

GRACE = timedelta(minutes=5)
"""Matches ``accord.service.callbacks.GRACE``: a promise is missed 5 minutes after due."""
SYSTEM_MEMBER = "Accord"
QUIET_CHANNELS = ("api", "cli", "web", "import")


@dataclass(frozen=True)
class Private:
    """What only this node knows about a case."""

    transfers: int = 0
    repeats: int = 0
    marks: int = 0
    rating: float | None = None
    template: str | None = None
    version: int | None = None
    expected: frozenset[str] | None = None  # the template version's items
    member_id: int | None = None
    team_id: int | None = None


@dataclass(frozen=True)
class Promise:
    activity: str
    kind: str
    due: datetime
    outcome: str  # kept, missed, moved, pending


@dataclass(frozen=True)
class CaseFacts:
    case_id: str
    event_count: int
    marks: int
    template: str | None
    template_version: int | None
    channel: str
    member_id: int | None
    team_id: int | None
    opened_at: datetime
    first_response_at: datetime | None
    first_agreement_at: datetime | None
    resolved_at: datetime | None
    first_response_s: int | None
    agreement_s: int | None
    resolution_s: int | None
    transfers: int
    repeats: int
    callbacks_promised: int
    callbacks_kept: int
    activities_promised: int
    activities_kept: int
    rounds: int
    reopenings: int
    rating: float | None
    deviations: int | None

    def row(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


Logged = tuple[Event, str | None, bool]
"""An event, the party it was written by or for, and whether it passed the rules."""


def case_facts(
    events: Sequence[Logged],
    state: dict[str, Any],
    *,
    us: str | None,
    calendar: BusinessCalendar,
    now: datetime,
    private: Private = Private(),
) -> CaseFacts:
    genesis = events[0][0]
    opened = parse_time(genesis.time)
    first_response = None
    rounds = 0
    done_at: dict[str, datetime] = {}
    for event, party, valid in events:
        if not valid:
            continue
        if (
            first_response is None
            and event.type == "message.posted"
            and party == us
            and event.author.member != SYSTEM_MEMBER
            and event.author.for_party is None
        ):
            first_response = parse_time(event.time)
        elif event.type == "proposal.made":
            rounds += 1
        elif event.type == "activity.updated" and event.body["state"] == "done":
            done_at.setdefault(event.body["activity"], parse_time(event.time))
    agreements = state["agreements"]
    first_agreement = parse_time(agreements[0]["time"]) if agreements else None
    resolved = None
    if state["resolved"] and state["satisfied"]:
        resolved = max(parse_time(s["time"]) for s in state["satisfied"].values())
    promises = judge_promises(agreements, done_at, now)

    def took(end: datetime | None) -> int | None:
        if end is None:
            return None
        return int(calendar.between(opened, max(end, opened)).total_seconds())

    ratings = [s["rating"] for p, s in state["satisfied"].items() if p != us and s.get("rating")]
    rating = private.rating
    if rating is None and ratings:
        rating = sum(ratings) / len(ratings)
    deviation = None
    if private.expected is not None:
        added, removed = deviations(private.expected, case_items(state))
        deviation = added + removed
    via = genesis.author.via
    return CaseFacts(
        case_id=state["case"],
        event_count=len(events),
        marks=private.marks,
        template=private.template or state.get("template"),
        template_version=private.version,
        channel=via if via and via not in QUIET_CHANNELS else "api",
        member_id=private.member_id,
        team_id=private.team_id,
        opened_at=opened,
        first_response_at=first_response,
        first_agreement_at=first_agreement,
        resolved_at=resolved,
        first_response_s=took(first_response),
        agreement_s=took(first_agreement),
        resolution_s=took(resolved),
        transfers=private.transfers,
        repeats=private.repeats,
        callbacks_promised=_count(promises, "callback"),
        callbacks_kept=_count(promises, "callback", kept=True),
        activities_promised=_count(promises, "task"),
        activities_kept=_count(promises, "task", kept=True),
        rounds=rounds,
        reopenings=state["reopened"],
        rating=rating,
        deviations=deviation,
    )


def judge_promises(
    agreements: Sequence[dict[str, Any]], done_at: dict[str, datetime], now: datetime
) -> list[Promise]:
    """Each agreed (activity, due) pair with its outcome (see the module docstring)."""
    open_: dict[str, tuple[str, datetime]] = {}  # activity -> (kind, due) currently promised
    ended: list[tuple[str, str, datetime, datetime | None]] = []
    for agreement in agreements:
        at = parse_time(agreement["time"])
        current = {
            aid: (a["kind"], parse_time(a["due"]))
            for aid, a in agreement["terms"]["activities"].items()
            if a.get("due")
        }
        for aid, (kind, due) in list(open_.items()):
            if current.get(aid, (None, None))[1] != due:
                ended.append((aid, kind, due, at))
                del open_[aid]
        for aid, promise in current.items():
            open_.setdefault(aid, promise)
    ended += [(aid, kind, due, None) for aid, (kind, due) in open_.items()]
    out = []
    for aid, kind, due, superseded in ended:
        deadline = due + GRACE
        done = done_at.get(aid)
        if done is not None and done <= deadline and (superseded is None or done <= superseded):
            outcome = "kept"
        elif superseded is not None and superseded < deadline:
            outcome = "moved"
        elif deadline <= now or superseded is not None:
            outcome = "missed"
        else:
            outcome = "pending"
        out.append(Promise(aid, kind, due, outcome))
    return out


def _count(promises: Sequence[Promise], kind: str, *, kept: bool = False) -> int:
    judged = ("kept",) if kept else ("kept", "missed")
    return sum(1 for p in promises if p.kind == kind and p.outcome in judged)


def case_items(state: dict[str, Any]) -> frozenset[str]:
    """What the case holds now, in template terms: data items shared or agreed, and
    activities agreed or still proposed."""
    data = set(state["info"]) | set(state["terms"]["data"])
    activities = set(state["terms"]["activities"])
    for proposal in state["proposals"].values():
        if proposal["state"] == "pending":
            for change in proposal["changes"]:
                if change["op"] == "activity.put":
                    activities.add(change["activity"])
                elif change["op"] == "data.put":
                    data.add(change["key"])
    return frozenset([f"data:{k}" for k in data] + [f"activity:{a}" for a in activities])
