"""The members' inbox: which cases need whom, and what is due or breached.

Views (``VIEWS``): the member's own cases, what needs a reply from us (the last word is a
customer's or another party's and no person here has answered it), their team's queue,
every open case, what is due today, what is breached (a response target missed since this
party last replied, or a promised activity overdue), what waits on another party,
resolved cases and all cases. Each can be narrowed by owner, team, channel or a full-text
search (``accord.store.search``), which the database filters by the view (no top-N is
taken first); each row says whether the member has read the case's latest message (a read
mark per member and case, ``case_reads``), shows one line of the last message and the
nearest thing due: a reply-by target (the response-target job), a callback or an activity.

The inbox reads one derived row per case (``case_inbox``) rather than every case's
state: a row that lags its case (fewer events than the case has) is recomputed first,
whichever process wrote the case, so the inbox is exact without any listener. That
recomputation reads and writes the primary; the lists and counts are then read where a
read replica may serve them (``Database.read_replica``): the member's own writes at once,
anyone else's within the replica's bound.

When many rows lag on PostgreSQL (the first inbox after an upgrade that derives every
row again, a restored database) they are recomputed in one transaction under the lock:
the lagging rows read in one scan (a server-side cursor), then in chunks of
``BULK_CHUNK`` cases each chunk's last messages and case numbers in one statement apiece
(the ids as one text parameter, not a bind parameter per case) and its new rows loaded
with ``COPY``. In batches of 500 it took 26 to 90 s for 100,000 cases, most of it round
trips, IN lists of 500 parameters and per-letter token draws. A process killed mid-way
leaves the rows as they were; the next inbox finds them lagging still.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import sqlalchemy as sa

from accord import faults
from accord.channels.refs import new_token
from accord.core.activities import activity_open
from accord.core.state import State
from accord.core.timefmt import parse_time
from accord.service import settings
from accord.service.errors import Invalid, NotFound
from accord.service.ownership import SYSTEM_MEMBER
from accord.store.cases import CaseStore
from accord.store.changes import Unchanged, latest_change
from accord.store.database import unbounded
from accord.store.search import Search
from accord.store.tables import (
    UNFINISHED_JOB,
    case_customers,
    case_inbox,
    case_owners,
    case_reads,
    case_refs,
    cases,
    channel_messages,
    customers,
    events,
    jobs,
    member_routing,
    members,
    notifications,
    saved_views,
    teams,
)

VIEWS = {
    "mine": "My cases",
    "needs": "Needs reply",
    "team": "My team's queue",
    "open": "All open",
    "due": "Due today",
    "breached": "Breached",
    "waiting": "Waiting on customer",
    "resolved": "Resolved",
    "all": "All cases",
}
SORTS = {
    "updated": "Updated",
    "due": "Next due",
    "customer": "Customer",
    "title": "Case",
    "owner": "Owner",
    "channel": "Channel",
}
PREVIEW_CHARS = 140
SLA_KIND = "sla.breach"  # accord.service.sla.BREACH: the reply-by target's job
IDLE_YEAR = 9999  # an SLA job parked there waits for nothing
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
        case_inbox.c.last_in_at,
        case_inbox.c.via,
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
        needs_reply=sa.bindparam("needs_reply"),
        messages=sa.bindparam("messages"),
        last_in_at=sa.bindparam("last_in_at"),
        preview=sa.bindparam("preview"),
        preview_ours=sa.bindparam("preview_ours"),
        party_name=sa.bindparam("party_name"),
        via=sa.bindparam("via"),
    )
)
REFRESH_BATCH = 500
BULK_MIN = 5_000  # lagging rows from which PostgreSQL recomputes them in one transaction
BULK_CHUNK = 5_000  # cases per round of statements inside it
_SEP = "\x1f"  # joins ids into one text parameter (psycopg's list dumping: 2 s a 100,000)
# every lagging row in one scan (read in chunks from a server-side cursor); a chunk's
# ids in an IN list made the server scan the cases table once per chunk
_LAGGING_ROWS_ALL = sa.select(*_LAGGING_ROWS.selected_columns).select_from(_JOINED).where(_STALE)
# PostgreSQL: each case's last message, by (case, event) pairs given as two arrays
_LAST_PG = sa.text(
    "SELECT e.case_id, e.event_id, e.raw, e.party FROM events e "
    f"JOIN unnest(string_to_array(:cases, '{_SEP}'), string_to_array(:events, '{_SEP}')) "
    "AS w(case_id, event_id) "
    "ON e.case_id = w.case_id AND e.event_id = w.event_id"
)
# PostgreSQL: numbers for the cases of a chunk that have none, in their order (the ids and
# fresh tokens as two arrays; the filter before the insert, so a known case uses no number)
_NUMBER_PG = sa.text(
    "INSERT INTO case_refs (case_id, token, created_at) "
    "SELECT f.case_id, f.token, :at FROM unnest(string_to_array(:cases, :sep), "
    "string_to_array(:tokens, :sep)) WITH ORDINALITY AS f(case_id, token, n) "
    "WHERE NOT EXISTS (SELECT 1 FROM case_refs r WHERE r.case_id = f.case_id) "
    "ORDER BY f.n ON CONFLICT DO NOTHING"
)
_COPY_COLUMNS = (
    "case_id",
    "event_count",
    "next_due",
    "waiting",
    "last_message_at",
    "last_reply_at",
    "needs_reply",
    "messages",
    "last_in_at",
    "preview",
    "preview_ours",
    "party_name",
    "via",
)


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
    number: int | None = None
    needs_reply: bool = False
    unread: bool = False
    preview: str | None = None
    preview_ours: bool = False
    reply_by: str | None = None
    due_kind: str | None = None  # "reply" or "activity": what next_due is
    undelivered: bool = False  # the last message we sent it failed or bounced

    @property
    def ref(self) -> str:
        """How the pages address the case: its short number, else its id."""
        return str(self.number) if self.number is not None else self.case_id


@dataclass(frozen=True)
class SavedView:
    id: int
    name: str
    query: str


@dataclass(frozen=True)
class LastWords:
    """What the inbox needs of a case's last message events (read from the log)."""

    by_other: bool  # another party's (not ours)
    by_person: bool  # not one of Accord's own notices
    time: str
    text: str
    via: str | None


def _derive(
    state: State,
    ours: str | None,
    previous: dict[str, Any],
    last: LastWords | None,
    answered: LastWords | None,
) -> dict[str, Any]:
    """The inbox columns of one case, from its state; ``last``: its last message as the
    log has it; ``answered``: when that is one of Accord's own notices (an
    acknowledgement answers nobody), the last message a person or another party wrote."""
    due = [
        a["due"]
        for aid, a in state["terms"]["activities"].items()
        if a.get("due") and a["owner"] == ours and activity_open(state, aid)
    ]
    message = state.get("last_message")
    ours_last = message is not None and message["by"] == ours
    pending_ours = any(
        p["state"] == "pending" and p.get("by") == ours for p in state["proposals"].values()
    )
    waiting = not state["resolved"] and (ours_last or pending_ours)
    spoke = answered if last is not None and not last.by_person and not last.by_other else last
    last_reply, last_in, via = previous["last_reply_at"], previous["last_in_at"], previous["via"]
    if spoke is not None and spoke.by_other:
        last_in, via = spoke.time, spoke.via or via
    elif spoke is not None:
        last_reply = spoke.time
        via = via or spoke.via
    others = [p["name"] for pid, p in state["parties"].items() if pid != ours]
    return {
        "event_count": state["events"],
        "next_due": min(_stamp(parse_time(d)) for d in due) if due else None,
        "waiting": waiting,
        "last_message_at": message["time"] if message else None,
        "last_reply_at": last_reply,
        "needs_reply": bool(not state["resolved"] and spoke is not None and spoke.by_other),
        "messages": int(state.get("messages") or 0),
        "last_in_at": last_in,
        "preview": _one_line(spoke.text) if spoke is not None else None,
        "preview_ours": spoke is not None and not spoke.by_other,
        "party_name": others[0] if others else None,
        "via": via,
    }


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def _words(raw: bytes, party: str | None, ours: str | None) -> LastWords:
    event = orjson.loads(raw)
    author = event.get("author") or {}
    body = event.get("body") or {}
    return LastWords(
        by_other=party != ours,
        by_person=author.get("member") != SYSTEM_MEMBER,
        time=str(event.get("time") or ""),
        text=str(body.get("text") or ""),
        via=author.get("via"),
    )


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
        if not self.db.is_sqlite and len(ids) >= BULK_MIN:
            # one transaction; a refresh that waits for it waits without the lock timeout
            with self.db.write() as conn, unbounded(conn):
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
                found = conn.execute(_LAGGING_ROWS_ALL, execution_options={"yield_per": BULK_CHUNK})
                done = 0
                for chunk in found.partitions():
                    self._recompute(conn, chunk, bulk=True)
                    done += len(chunk)
                faults.point("inbox.bulk-refresh.written")
            return done
        for start in range(0, len(ids), REFRESH_BATCH):
            with self.db.write() as conn:
                if not self.db.is_sqlite:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
                lagging = conn.execute(_LAGGING_ROWS, {"ids": ids[start : start + REFRESH_BATCH]})
                self._recompute(conn, lagging.all(), bulk=False)
        return len(ids)

    def _recompute(self, conn: Any, lagging: Sequence[Any], *, bulk: bool) -> None:
        """Recompute these lagging rows (read under the lock); ``bulk``: PostgreSQL,
        ``COPY`` for the new rows."""
        states = [(r[0], orjson.loads(r[1]), r[2], r[3], r[4], r[5]) for r in lagging]
        ours = {s[0]: self._ours(s[1]) for s in states}
        lasts = self._last_words(conn, states, ours)
        # a notice of ours last (an acknowledgement): who spoke before it?
        noticed = [c for c, w in lasts.items() if not w.by_person and not w.by_other]
        answered = self._spoken(conn, noticed, ours)
        updates: list[dict[str, Any]] = []
        inserts: list[dict[str, Any]] = []
        for case_id, state, previous, known, last_in, via in states:
            before = {"last_reply_at": previous, "last_in_at": last_in, "via": via}
            row = {
                "b_case_id": case_id,
                **_derive(state, ours[case_id], before, lasts.get(case_id), answered.get(case_id)),
            }
            (updates if known else inserts).append(row)
        self._number(conn, [r["b_case_id"] for r in inserts])
        if updates:
            conn.execute(_UPDATE, updates)
        if inserts and bulk:
            raw: Any = conn.connection.dbapi_connection
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY case_inbox ({', '.join(_COPY_COLUMNS)}) FROM STDIN") as copy,
            ):
                for r in inserts:
                    r["case_id"] = r["b_case_id"]
                    copy.write_row([r[c] for c in _COPY_COLUMNS])
        elif inserts:
            conn.execute(
                case_inbox.insert(), [{"case_id": r.pop("b_case_id"), **r} for r in inserts]
            )

    def _last_words(
        self, conn: Any, states: list[tuple[Any, ...]], ours: dict[str, str | None]
    ) -> dict[str, LastWords]:
        """The last message of each case, as the log has it (one query)."""
        wanted = {s[1]["last_message"]["event"]: s[0] for s in states if s[1].get("last_message")}
        if not wanted:
            return {}
        if not self.db.is_sqlite:  # the pairs as two arrays: no bind parameter per case
            rows = conn.execute(
                _LAST_PG, {"cases": _joined(wanted.values()), "events": _joined(wanted)}
            ).all()  # fetched at once: row by row cost a call a row
            return {
                case_id: _words(raw, party, ours[case_id])
                for case_id, event_id, raw, party in rows
                if wanted.get(event_id) == case_id
            }
        rows = conn.execute(
            sa.select(events.c.case_id, events.c.event_id, events.c.raw, events.c.party).where(
                events.c.case_id.in_(set(wanted.values())),
                events.c.event_id.in_(list(wanted)),
            )
        )
        return {
            case_id: _words(raw, party, ours[case_id])
            for case_id, event_id, raw, party in rows
            if wanted.get(event_id) == case_id
        }

    def _spoken(
        self, conn: Any, case_ids: list[str], ours: dict[str, str | None]
    ) -> dict[str, LastWords]:
        """For cases whose last message is one of Accord's own notices: the last message
        before it that a person or another party wrote."""
        found: dict[str, LastWords] = {}
        if not case_ids:
            return found
        among = (
            events.c.case_id.in_(case_ids)
            if self.db.is_sqlite
            else events.c.case_id == sa.any_(sa.func.string_to_array(_joined(case_ids), _SEP))
        )
        rows = conn.execute(
            sa.select(events.c.case_id, events.c.raw, events.c.party)
            .where(among, events.c.type == "message.posted")
            .order_by(events.c.case_id, events.c.depth.desc(), events.c.event_id.desc())
        )
        for case_id, raw, party in rows:
            if case_id in found:
                continue
            words = _words(raw, party, ours[case_id])
            if words.by_person or words.by_other:
                found[case_id] = words
        return found

    def _number(self, conn: Any, case_ids: list[str]) -> None:
        """Give each new case its short number (``case_refs``, the ``[Accord #12]`` of
        mail subjects), so the pages can address it as ``/cases/12``."""
        if not case_ids:
            return
        at = self.now()
        if not self.db.is_sqlite:  # one statement; a known case takes no number
            conn.execute(
                _NUMBER_PG,
                {
                    "cases": _joined(case_ids),
                    "tokens": _joined(new_token() for _ in case_ids),
                    "at": at,
                    "sep": _SEP,
                },
            )
            return
        known = set(
            conn.execute(
                sa.select(case_refs.c.case_id).where(case_refs.c.case_id.in_(case_ids))
            ).scalars()
        )
        fresh = [c for c in case_ids if c not in known]
        if fresh:
            conn.execute(
                self.db.insert_or_ignore(case_refs),
                [{"case_id": c, "token": new_token(), "created_at": at} for c in fresh],
            )

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
        sort: str = "",
        *,
        full: bool = True,
    ) -> sa.Select[Any]:
        """The view's query, most urgent first (or in the order ``sort`` names: a key of
        ``SORTS``, ``-`` before it for the other way); ``full=False``: only the case ids,
        without the joins that only decorate a row (its number, the member's read mark):
        the list is chosen first, then its rows are decorated, so a view over many cases
        pays for the decoration of the rows it shows only."""
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
        customer = sa.func.coalesce(customer_name, case_inbox.c.party_name)
        shown_channel = sa.func.coalesce(last_channel, case_inbox.c.via)
        read = case_reads.alias("my_read")
        unread = case_inbox.c.messages > sa.func.coalesce(read.c.messages, 0)
        columns: list[Any] = [
            cases.c.case_id,
            cases.c.title,
            cases.c.resolved,
            cases.c.updated_at,
            owner_m.c.display_name,
            teams.c.name,
            customer.label("customer"),
            case_inbox.c.next_due,
            overdue.label("overdue"),
            breached.label("breached"),
            case_inbox.c.waiting,
            shown_channel.label("channel"),
            case_refs.c.number,
            case_inbox.c.needs_reply,
            unread.label("unread"),
            case_inbox.c.preview,
            case_inbox.c.preview_ours,
        ]
        joined = (
            cases.join(case_inbox, case_inbox.c.case_id == cases.c.case_id)
            .outerjoin(case_owners, case_owners.c.case_id == cases.c.case_id)
            .outerjoin(owner_m, owner_m.c.id == case_owners.c.member_id)
            .outerjoin(member_routing, member_routing.c.member_id == owner_m.c.id)
            .outerjoin(teams, teams.c.id == member_routing.c.team_id)
        )
        if full:
            joined = joined.outerjoin(case_refs, case_refs.c.case_id == cases.c.case_id).outerjoin(
                read, sa.and_(read.c.case_id == cases.c.case_id, read.c.member_id == member_id)
            )
        q = sa.select(*(columns if full else [cases.c.case_id])).select_from(joined)
        q = q.where(conditions[view])
        if owner:
            q = q.where(owner_m.c.username == owner)
        if team:
            q = q.where(teams.c.name == team)
        if channel:
            q = q.where(shown_channel == channel)
        key, descending = sort.lstrip("-"), sort.startswith("-")
        if key in SORTS and key != "updated":
            column = {
                "due": case_inbox.c.next_due,
                "customer": customer,
                "title": cases.c.title,
                "owner": owner_m.c.display_name,
                "channel": shown_channel,
            }[key]
            return q.order_by(
                column.is_(None), column.desc() if descending else column, cases.c.updated_at.desc()
            )
        if key == "updated":
            return q.order_by(cases.c.updated_at if descending else cases.c.updated_at.desc())
        if view in ("due", "breached"):
            return q.order_by(
                case_inbox.c.next_due.is_(None), case_inbox.c.next_due, cases.c.updated_at.desc()
            )
        if view == "needs":  # the longest waiting first
            return q.order_by(case_inbox.c.last_in_at, cases.c.updated_at)
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
            "needs": sa.and_(open_only, case_inbox.c.needs_reply.is_(True)),
            "team": sa.and_(open_only, member_routing.c.team_id == my_team),
            "open": open_only,
            "due": sa.and_(open_only, case_inbox.c.next_due <= _stamp(end_of_day)),
            "breached": breached,
            "waiting": sa.and_(open_only, case_inbox.c.waiting.is_(True)),
            "resolved": cases.c.resolved.is_(True),
            "all": sa.true(),
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
        sort: str = "",
        limit: int = 100,
    ) -> list[InboxRow]:
        """The cases of ``view`` as ``member_id`` sees it, most urgent first (or by
        ``sort``); with a ``query``, only the cases that match it — every match the view
        holds, filtered in the database — each with its best passage."""
        self.refresh()
        q = self._select(view, member_id, owner, team, channel, sort, full=False)
        if query.strip():
            hits = self.search_index.matching(query)
            if hits is None:
                return []
            q = q.where(cases.c.case_id.in_(hits))
        with self.db.read_replica() as conn:  # after the refresh: its writes are the member's
            ids = list(conn.execute(q.limit(limit)).scalars())
            decorated = self._select("all", member_id, "", "", "").where(cases.c.case_id.in_(ids))
            by_id = {r[0]: r for r in conn.execute(decorated)} if ids else {}
            rows = [by_id[i] for i in ids if i in by_id]
            reply_by = self._reply_by(conn, ids)
            undelivered = self._undelivered(conn, ids)
        snippets = self.search_index.snippets(query, [r[0] for r in rows]) if query.strip() else {}
        found = []
        for r in rows:
            target = reply_by.get(r[0]) if r[13] else None  # a target only while one is awaited
            due, kind = r[7], "activity" if r[7] else None
            if target is not None and (due is None or target < due):
                due, kind = target, "reply"
            found.append(
                InboxRow(
                    case_id=r[0],
                    title=r[1],
                    resolved=bool(r[2]),
                    updated=r[3],
                    owner=r[4],
                    team=r[5],
                    customer=r[6],
                    next_due=due,
                    overdue=bool(r[8])
                    or (kind == "reply" and due is not None and due < _stamp(self.now())),
                    breached=bool(r[9]),
                    waiting=bool(r[10]),
                    channel=r[11],
                    snippet=snippets.get(r[0]),
                    number=r[12],
                    needs_reply=bool(r[13]),
                    unread=bool(r[14]),
                    preview=r[15],
                    preview_ours=bool(r[16]),
                    reply_by=target,
                    due_kind=kind,
                    undelivered=r[0] in undelivered,
                )
            )
        return found

    def _undelivered(self, conn: Any, case_ids: Sequence[str]) -> set[str]:
        """The cases (of those shown) whose last outgoing message failed or bounced: the
        owner sees it in the inbox, not only in a notification."""
        if not case_ids:
            return set()
        c = channel_messages.c
        latest = (
            sa.select(sa.func.max(c.id))
            .where(c.case_id.in_(list(case_ids)), c.direction == "out")
            .group_by(c.case_id)
        )
        rows = conn.execute(
            sa.select(c.case_id).where(c.id.in_(latest), c.status.in_(("failed", "bounced")))
        )
        return {str(r[0]) for r in rows}

    def _reply_by(self, conn: Any, case_ids: Sequence[str]) -> dict[str, str]:
        """When each case's response target falls due (its ``sla.breach`` job), while a
        reply is awaited."""
        if not case_ids:
            return {}
        keys = {f"sla:{c}": c for c in case_ids}
        rows = conn.execute(
            sa.select(jobs.c.key, jobs.c.run_at).where(
                jobs.c.key.in_(list(keys)), jobs.c.kind == SLA_KIND, sa.text(UNFINISHED_JOB)
            )
        )
        out: dict[str, str] = {}
        for key, run_at in rows:
            if run_at.year >= IDLE_YEAR:
                continue
            moment = run_at if run_at.tzinfo else run_at.replace(tzinfo=ZoneInfo("UTC"))
            out[keys[key]] = _stamp(moment)
        return out

    def counts(self, member_id: int) -> dict[str, int | None]:
        """How many open cases each view holds (the inbox's tabs), in one scan of the
        open cases; ``resolved`` and ``all`` are not counted (they only grow), so they are
        ``None``. (Unread is shown on each row, not counted: counting it would probe
        every open case's read mark.)"""
        self.refresh()
        conditions, _, _ = self._conditions(member_id)
        del conditions["resolved"], conditions["all"]
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
        with self.db.read_replica() as conn:
            row = conn.execute(query).one()
        counted: dict[str, int | None] = {v: int(row[i] or 0) for i, v in enumerate(conditions)}
        return {**counted, "resolved": None, "all": None}

    # -- read marks and saved views ----------------------------------------------------

    def mark_read(self, member_id: int, case_id: str, messages: int) -> None:
        """``member_id`` has seen the case's first ``messages`` messages."""
        with self.db.write() as conn:
            done = conn.execute(
                case_reads.update()
                .where(case_reads.c.member_id == member_id, case_reads.c.case_id == case_id)
                .values(messages=messages)
            )
            if not done.rowcount:
                conn.execute(
                    self.db.insert_or_ignore(case_reads),
                    {"member_id": member_id, "case_id": case_id, "messages": messages},
                )

    def mark_unread(self, member_id: int, case_ids: Sequence[str]) -> None:
        with self.db.write() as conn:
            conn.execute(
                case_reads.delete().where(
                    case_reads.c.member_id == member_id, case_reads.c.case_id.in_(list(case_ids))
                )
            )

    def views_of(self, member_id: int) -> Sequence[SavedView]:
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(saved_views.c.id, saved_views.c.name, saved_views.c.query)
                .where(saved_views.c.member_id == member_id)
                .order_by(saved_views.c.name)
            )
            return [SavedView(int(r[0]), r[1], r[2]) for r in rows]

    def save_view(self, member_id: int, name: str, query: str) -> SavedView:
        """Save (or replace) the member's view ``name``: the inbox's query string."""
        name = " ".join(name.split())
        if not name:
            raise Invalid("a saved view needs a name", field="name")
        if len(name) > 80 or len(query) > 1000:
            raise Invalid("the name or the query is too long", field="name")
        with self.db.write() as conn:
            done = conn.execute(
                saved_views.update()
                .where(saved_views.c.member_id == member_id, saved_views.c.name == name)
                .values(query=query)
            )
            if not done.rowcount:
                conn.execute(
                    saved_views.insert(), {"member_id": member_id, "name": name, "query": query}
                )
            row = conn.execute(
                sa.select(saved_views.c.id).where(
                    saved_views.c.member_id == member_id, saved_views.c.name == name
                )
            ).scalar_one()
        return SavedView(int(row), name, query)

    def delete_view(self, member_id: int, view_id: int) -> None:
        with self.db.write() as conn:
            done = conn.execute(
                saved_views.delete().where(
                    saved_views.c.id == view_id, saved_views.c.member_id == member_id
                )
            )
        if not done.rowcount:
            raise NotFound("no such saved view of yours")

    def changed_since(self) -> str:
        """A token that changes whenever any case changes or a note is added (for live
        updates): two index lookups, cheap enough to poll."""
        updated, last_note = latest_change(self.db)
        return f"{updated.isoformat() if updated else '-'}:{last_note or 0}"


def _joined(ids: Iterable[str]) -> str:
    """Ids as one text parameter for ``string_to_array(…, _SEP)`` (PostgreSQL)."""
    listed = list(ids)
    if any(_SEP in i for i in listed):
        raise ValueError("an id holds the separator")
    return _SEP.join(listed)


def _stamp(moment: datetime) -> str:
    """A time as the case log writes it (UTC, seconds, ``Z``), which sorts as text."""
    return moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
