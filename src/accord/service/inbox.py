"""The members' inbox: which cases need whom, and what is due or breached.

Views (``VIEWS``): the member's own cases, their team's queue, every open case, what is
due today, what is breached (a response target missed since this party last replied, or
a promised activity overdue), what waits on another party, and resolved cases. Each can
be narrowed by owner, team, channel or a full-text search (``accord.store.search``).

The inbox reads one derived row per case (``case_inbox``) rather than every case's
state: a row that lags its case (fewer events than the case has) is recomputed first,
whichever process wrote the case, so the inbox is exact without any listener.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa

from accord.core.state import State
from accord.core.timefmt import parse_time
from accord.service import settings
from accord.service.ownership import SYSTEM_MEMBER
from accord.store.cases import CaseStore
from accord.store.changes import Unchanged, latest_change
from accord.store.search import Search
from accord.store.tables import (
    case_customers,
    case_inbox,
    case_owners,
    cases,
    channel_messages,
    customers,
    events,
    member_routing,
    members,
    notifications,
    teams,
)

VIEWS = {
    "mine": "My cases",
    "team": "My team's queue",
    "open": "All open",
    "due": "Due today",
    "breached": "Breached",
    "waiting": "Waiting on customer",
    "resolved": "Resolved",
}
OPEN_STATES = ("agreed", "in_progress")
LOCK_KEY = 0x1B0C5  # the advisory lock that serialises inbox refreshes on PostgreSQL
_STALE = sa.or_(case_inbox.c.event_count.is_(None), case_inbox.c.event_count != cases.c.event_count)
_JOINED = cases.outerjoin(case_inbox, case_inbox.c.case_id == cases.c.case_id)
_LAGGING = sa.select(cases.c.case_id).select_from(_JOINED).where(_STALE)
_LAGGING_ROWS = (
    sa.select(
        cases.c.case_id,
        cases.c.state,
        case_inbox.c.last_reply_at,
        case_inbox.c.case_id.is_not(None),
    )
    .select_from(_JOINED)
    .where(_STALE, cases.c.case_id.in_(sa.bindparam("ids", expanding=True)))
)
_UPDATE = (
    case_inbox.update()
    .where(case_inbox.c.case_id == sa.bindparam("b_case_id"))
    .values(
        event_count=sa.bindparam("event_count"),
        next_due=sa.bindparam("next_due"),
        waiting=sa.bindparam("waiting"),
        last_message_at=sa.bindparam("last_message_at"),
        last_reply_at=sa.bindparam("last_reply_at"),
    )
)
REFRESH_BATCH = 500


@dataclass(frozen=True)
class InboxRow:
    case_id: str
    title: str
    resolved: bool
    updated: datetime
    owner: str | None
    team: str | None
    customer: str | None
    next_due: str | None
    overdue: bool
    breached: bool
    waiting: bool
    channel: str | None
    snippet: str | None = None


def _derive(
    state: State, ours: str | None, previous_reply: str | None, last_by_person: bool
) -> dict[str, Any]:
    """The inbox columns of one case, from its state; ``last_by_person``: the last
    message is not one of Accord's own notices (an acknowledgement does not answer)."""
    due = [
        a["due"]
        for aid, a in state["terms"]["activities"].items()
        if a.get("due")
        and a["owner"] == ours
        and state["progress"].get(aid, {}).get("state") in OPEN_STATES
    ]
    last = state.get("last_message")
    ours_last = last is not None and last["by"] == ours and last_by_person
    last_reply = last["time"] if last and ours_last else previous_reply
    pending_ours = any(
        p["state"] == "pending" and p.get("by") == ours for p in state["proposals"].values()
    )
    waiting = not state["resolved"] and ((last is not None and last["by"] == ours) or pending_ours)
    return {
        "event_count": state["events"],
        "next_due": min(_stamp(parse_time(d)) for d in due) if due else None,
        "waiting": waiting,
        "last_message_at": last["time"] if last else None,
        "last_reply_at": last_reply,
    }


class Inbox:
    """The inbox of one node; ``party_key`` is the node's public key (its own party)."""

    def __init__(self, store: CaseStore, party_key: str, *, now: Callable[[], datetime]) -> None:
        self.store, self.db, self.party_key, self.now = store, store.db, party_key, now
        self.search_index = Search(store.db)
        self.unchanged = Unchanged(store.db)

    def refresh(self) -> int:
        """Recompute every lagging row; returns how many. Skipped while no case has
        changed since this process last looked (the latest ``updated_at``, an index
        lookup), except at most ``FULL_CHECK_SECONDS`` apart."""
        skip, mark, clock = self.unchanged.check()
        if skip:
            return 0
        total = self._refresh()
        self.unchanged.checked(mark, clock)
        return total

    def _refresh(self) -> int:
        """Find the lagging cases in one scan, then recompute them in chunks, each under
        a lock (SQLite's writer lock, a PostgreSQL advisory lock) and checked again there,
        so two processes never write the same row twice."""
        with self.db.read() as conn:
            ids = [r[0] for r in conn.execute(_LAGGING)]
        for start in range(0, len(ids), REFRESH_BATCH):
            with self.db.write() as conn:
                if not self.db.is_sqlite:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
                lagging = conn.execute(
                    _LAGGING_ROWS, {"ids": ids[start : start + REFRESH_BATCH]}
                ).all()
                states = [(r[0], orjson.loads(r[1]), r[2], r[3]) for r in lagging]
                ours = {case_id: self._ours(state) for case_id, state, _, _ in states}
                # whose was our party's last message: a person's, or Accord's own notice?
                wanted = [
                    (case_id, state["last_message"]["event"])
                    for case_id, state, _, _ in states
                    if state.get("last_message") and state["last_message"]["by"] == ours[case_id]
                ]
                authors = (
                    {
                        event_id: orjson.loads(raw)["author"]["member"]
                        for event_id, raw in conn.execute(
                            sa.select(events.c.event_id, events.c.raw).where(
                                events.c.case_id.in_([c for c, _ in wanted]),
                                events.c.event_id.in_([e for _, e in wanted]),
                            )
                        )
                    }
                    if wanted
                    else {}
                )
                updates: list[dict[str, Any]] = []
                inserts: list[dict[str, Any]] = []
                for case_id, state, previous, known in states:
                    last = state.get("last_message")
                    by_person = (
                        last is not None
                        and authors.get(last["event"], SYSTEM_MEMBER) != SYSTEM_MEMBER
                    )
                    row = {
                        "b_case_id": case_id,
                        **_derive(state, ours[case_id], previous, by_person),
                    }
                    (updates if known else inserts).append(row)
                if updates:
                    conn.execute(_UPDATE, updates)
                if inserts:
                    conn.execute(
                        case_inbox.insert(),
                        [{"case_id": r.pop("b_case_id"), **r} for r in inserts],
                    )
        return len(ids)

    def _ours(self, state: State) -> str | None:
        for pid, party in state["parties"].items():
            if party.get("node") == self.party_key:
                return str(pid)
        return None

    def _select(
        self,
        view: str,
        member_id: int,
        owner: str,
        team: str,
        channel: str,
    ) -> sa.Select[Any]:
        """The view's query, most urgent first."""
        if view not in VIEWS:
            raise ValueError(f"unknown inbox view {view!r}; one of {', '.join(VIEWS)}")
        conditions, overdue, breached = self._conditions(member_id)
        owner_m = members.alias("owner_m")
        last_channel = (
            sa.select(channel_messages.c.channel)
            .where(
                channel_messages.c.case_id == cases.c.case_id,
                channel_messages.c.direction == "in",
            )
            .order_by(channel_messages.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        customer_name = (
            sa.select(customers.c.name)
            .select_from(
                case_customers.join(customers, customers.c.id == case_customers.c.customer_id)
            )
            .where(case_customers.c.case_id == cases.c.case_id)
            .limit(1)
            .scalar_subquery()
        )
        columns: list[Any] = [
            cases.c.case_id,
            cases.c.title,
            cases.c.resolved,
            cases.c.updated_at,
            owner_m.c.display_name,
            teams.c.name,
            customer_name.label("customer"),
            case_inbox.c.next_due,
            overdue.label("overdue"),
            breached.label("breached"),
            case_inbox.c.waiting,
            last_channel.label("channel"),
        ]
        q = sa.select(*columns).select_from(
            cases.join(case_inbox, case_inbox.c.case_id == cases.c.case_id)
            .outerjoin(case_owners, case_owners.c.case_id == cases.c.case_id)
            .outerjoin(owner_m, owner_m.c.id == case_owners.c.member_id)
            .outerjoin(member_routing, member_routing.c.member_id == owner_m.c.id)
            .outerjoin(teams, teams.c.id == member_routing.c.team_id)
        )
        q = q.where(conditions[view])
        if owner:
            q = q.where(owner_m.c.username == owner)
        if team:
            q = q.where(teams.c.name == team)
        if channel:
            q = q.where(last_channel == channel)
        if view in ("due", "breached"):
            return q.order_by(
                case_inbox.c.next_due.is_(None), case_inbox.c.next_due, cases.c.updated_at.desc()
            )
        return q.order_by(cases.c.updated_at.desc())

    def _conditions(
        self, member_id: int
    ) -> tuple[dict[str, sa.ColumnElement[bool]], sa.ColumnElement[bool], sa.ColumnElement[bool]]:
        """Which cases each view holds, as conditions over the inbox's joins, with the
        ``overdue`` and ``breached`` conditions the rows also show."""
        now = self.now()
        end_of_day = now.astimezone(settings.zone(self.db)).replace(
            hour=23, minute=59, second=59, microsecond=0
        )
        sla_missed = (
            sa.select(notifications.c.id)
            .where(notifications.c.case_id == cases.c.case_id, notifications.c.kind == "sla")
            .exists()
        )
        open_only = cases.c.resolved.is_(False)
        overdue = sa.and_(case_inbox.c.next_due.is_not(None), case_inbox.c.next_due < _stamp(now))
        breached = sa.and_(
            open_only, sa.or_(overdue, sa.and_(sla_missed, sa.not_(case_inbox.c.waiting)))
        )
        my_team = (
            sa.select(member_routing.c.team_id)
            .where(member_routing.c.member_id == member_id)
            .scalar_subquery()
        )
        views = {
            "mine": sa.and_(open_only, case_owners.c.member_id == member_id),
            "team": sa.and_(open_only, member_routing.c.team_id == my_team),
            "open": open_only,
            "due": sa.and_(open_only, case_inbox.c.next_due <= _stamp(end_of_day)),
            "breached": breached,
            "waiting": sa.and_(open_only, case_inbox.c.waiting.is_(True)),
            "resolved": cases.c.resolved.is_(True),
        }
        return views, overdue, breached

    def list(
        self,
        view: str,
        *,
        member_id: int,
        query: str = "",
        owner: str = "",
        team: str = "",
        channel: str = "",
        limit: int = 100,
    ) -> list[InboxRow]:
        """The cases of ``view`` as ``member_id`` sees it, most urgent first; with a
        ``query``, only the cases that match it, best match first, with a snippet."""
        self.refresh()
        q = self._select(view, member_id, owner, team, channel)
        snippets: dict[str, str] = {}
        if query.strip():
            snippets = {h.case_id: h.snippet for h in self.search_index.search(query, limit=500)}
            q = q.where(cases.c.case_id.in_(list(snippets)))
        with self.db.read() as conn:
            rows = conn.execute(q.limit(limit)).all()
        found = [
            InboxRow(
                case_id=r[0],
                title=r[1],
                resolved=bool(r[2]),
                updated=r[3],
                owner=r[4],
                team=r[5],
                customer=r[6],
                next_due=r[7],
                overdue=bool(r[8]),
                breached=bool(r[9]),
                waiting=bool(r[10]),
                channel=r[11],
                snippet=snippets.get(r[0]),
            )
            for r in rows
        ]
        if snippets:  # best match first, as the index ranked them
            order = {case_id: i for i, case_id in enumerate(snippets)}
            found.sort(key=lambda row: order[row.case_id])
        return found

    def counts(self, member_id: int) -> dict[str, int | None]:
        """How many open cases each view holds (the inbox's tabs), in one scan of the
        open cases; ``resolved`` is not counted (it only grows), so it is ``None``."""
        self.refresh()
        conditions, _, _ = self._conditions(member_id)
        del conditions["resolved"]
        query = (
            sa.select(
                *(sa.func.sum(sa.case((c, 1), else_=0)).label(v) for v, c in conditions.items())
            )
            .select_from(
                cases.join(case_inbox, case_inbox.c.case_id == cases.c.case_id)
                .outerjoin(case_owners, case_owners.c.case_id == cases.c.case_id)
                .outerjoin(member_routing, member_routing.c.member_id == case_owners.c.member_id)
            )
            .where(cases.c.resolved.is_(False))
        )
        with self.db.read() as conn:
            row = conn.execute(query).one()
        counted: dict[str, int | None] = {v: int(row[i] or 0) for i, v in enumerate(conditions)}
        return {**counted, "resolved": None}

    def changed_since(self) -> str:
        """A token that changes whenever any case changes or a note is added (for live
        updates): two index lookups, cheap enough to poll."""
        updated, last_note = latest_change(self.db)
        return f"{updated.isoformat() if updated else '-'}:{last_note or 0}"


def _stamp(moment: datetime) -> str:
    """A time as the case log writes it (UTC, seconds, ``Z``), which sorts as text."""
    return moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
