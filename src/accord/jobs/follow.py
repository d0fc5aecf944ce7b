"""Followers of the case log: whatever reacts to a change reads the log from its own mark.

The log is the ``events`` table in the order events were stored here (``events.pos``),
whoever wrote them: a member's page, the API, the CLI, a mail, a timer, an import or
another party's node. A *follower* is one consumer of that stream (webhooks, notices,
timers, notifications, …) with a row in ``follower_marks``. One pass of a follower:

1. open a write transaction and lock the follower's mark (``SKIP LOCKED`` on PostgreSQL:
   another process already running it is left alone);
2. read the next batch of events after the mark, grouped by case in log order;
3. let the follower write what they mean through the same connection (rows, jobs);
4. move the mark past the batch and commit.

Effects and mark commit together, so each event's effects happen exactly once however a
process dies; what a follower sends over the network it does not send here but queues as
a job with a stable id (sent at least once, with no transaction open). A follower that
raises is rolled back, its error and the time of its next try are recorded (backoff up to
an hour), and it blocks only itself: the write that produced the event was committed long
before. ``lag()`` says how far each one is behind, for ``accord jobs`` and ``/metrics``.

On PostgreSQL positions commit in order because appends take one advisory lock
(``Database.serialise_appends``); a rolled-back append leaves a gap, which is harmless.
Models: eventsourcing's process applications (tracking records), Synapse's pushers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.core.events import Event, load_trusted
from accord.core.state import State
from accord.jobs.worker import describe
from accord.store.database import Database
from accord.store.tables import cases, events, follower_marks

log = logging.getLogger("accord.followers")

Clock = Callable[[], datetime]
BATCH = 200
MIN_BATCH = 5
HOLD = 0.05  # seconds a batch should take at most (see _next_size)


class Follower(Protocol):
    """One consumer of the log. ``handle`` gets the new events of one case, in log order,
    the case's current state (read once per batch for every case in it; ``None`` for a
    case this node no longer holds) and the open write transaction; it writes its effects
    through ``conn`` only."""

    name: str

    def handle(
        self, conn: Connection, case_id: str, batch: Sequence[Event], state: State | None
    ) -> None: ...


@dataclass(frozen=True)
class Lag:
    """Where a follower stands."""

    name: str
    position: int
    end: int
    failures: int
    last_error: str | None
    retry_at: datetime | None
    updated_at: datetime | None

    @property
    def behind(self) -> int:
        """Positions between the mark and the end of the log (an upper bound on events:
        rolled-back appends leave gaps)."""
        return max(0, self.end - self.position)


def default_backoff(failures: int) -> timedelta:
    """5 s after the first failure, doubling, at most an hour."""
    return timedelta(seconds=min(3600, 5 * 2 ** max(0, failures - 1)))


def marks(conn: Connection) -> list[Lag]:
    """Where every follower of this node stands (for ``accord jobs`` and ``/metrics``)."""
    end = log_end(conn)
    rows = conn.execute(sa.select(follower_marks).order_by(follower_marks.c.name)).all()
    return [
        Lag(
            r.name,
            int(r.position),
            end,
            int(r.failures),
            r.last_error,
            _aware(r.retry_at) if r.retry_at else None,
            _aware(r.updated_at) if r.updated_at else None,
        )
        for r in rows
    ]


def skip_history(db: Database) -> int:
    """Start every follower at the end of the log as it stands, as migration 0023 does on
    an upgrade: for history written by a tool (the demo organisation) that nobody should be
    notified of now. Timers are rebuilt from the cases' state at worker start all the same.
    Returns the position."""
    with db.write() as conn:
        end = log_end(conn)
        conn.execute(follower_marks.update().values(position=end))
    return end


def log_end(conn: Connection) -> int:
    end = conn.execute(sa.select(sa.func.max(events.c.pos))).scalar()
    return int(end or 0)


class FollowerRunner:
    """Runs followers over one database; safe to run in several threads and processes."""

    def __init__(
        self,
        db: Database,
        followers: Iterable[Follower],
        *,
        now: Clock,
        batch: int = BATCH,
        backoff: Callable[[int], timedelta] = default_backoff,
    ) -> None:
        self.db = db
        self.followers = list(followers)
        names = [f.name for f in self.followers]
        if len(set(names)) != len(names):
            raise ValueError(f"two followers share a name: {names}")
        self.now = now
        self.batch = batch
        self.backoff = backoff
        self._known: set[str] = set()
        self._sizes: dict[str, int] = {}

    def run_once(self, follower: Follower) -> int:
        """One batch for ``follower``; returns how many events it took (0: nothing new,
        failing and waiting to retry, or another process holds it)."""
        try:
            self._ensure(follower.name)
            if not self._behind(follower.name):
                return 0
            size = self._sizes.get(follower.name, self.batch)
            started = time.perf_counter()
            with self.db.write() as conn:
                mark = self._hold(conn, follower.name)
                if mark is None:
                    return 0
                rows = conn.execute(
                    sa.select(
                        events.c.pos,
                        events.c.case_id,
                        events.c.raw,
                        events.c.sig,
                        events.c.event_id,
                        events.c.verdict,
                    )
                    .where(events.c.pos > mark)
                    .order_by(events.c.pos)
                    .limit(size)
                ).all()
                if not rows:
                    return 0
                by_case: dict[str, list[Event]] = {}
                for row in rows:
                    if row.verdict is not None:  # evidence: kept, but it changed nothing
                        continue
                    by_case.setdefault(row.case_id, []).append(
                        load_trusted(row.raw, row.sig, row.event_id)
                    )
                states = _states(conn, list(by_case))
                for case_id, batch in by_case.items():
                    follower.handle(conn, case_id, batch, states.get(case_id))
                conn.execute(
                    follower_marks.update()
                    .where(follower_marks.c.name == follower.name)
                    .values(
                        position=rows[-1].pos,
                        updated_at=self.now(),
                        failures=0,
                        last_error=None,
                        retry_at=None,
                    )
                )
            self._sizes[follower.name] = _next_size(size, time.perf_counter() - started, self.batch)
            return len(rows)
        except Exception as exc:
            self._failed(follower.name, exc)
            return 0

    def run_pass(self) -> int:
        """One batch for every follower; returns the events taken in all."""
        return sum(self.run_once(f) for f in self.followers)

    def catch_up(self, *, passes: int = 1000) -> int:
        """Run passes until no follower takes anything (or ``passes`` ran)."""
        total = 0
        for _ in range(passes):
            taken = self.run_pass()
            total += taken
            if not taken:
                break
        return total

    def lag(self) -> list[Lag]:
        with self.db.read() as conn:
            return marks(conn)

    # -- inside ------------------------------------------------------------------

    def _hold(self, conn: Connection, name: str) -> int | None:
        """Lock the follower's mark; None when it waits for a retry or another process
        runs it."""
        query = sa.select(follower_marks).where(follower_marks.c.name == name)
        if not self.db.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        row = conn.execute(query).first()
        if row is None:  # another process holds it (SKIP LOCKED)
            return None
        if row.retry_at is not None and _aware(row.retry_at) > self.now():
            return None
        return int(row.position)

    def _behind(self, name: str) -> bool:
        """Whether the log has events past the follower's mark: two index lookups on the
        read engine, so an idle pass takes no write lock."""
        with self.db.read() as conn:
            mark = conn.execute(
                sa.select(follower_marks.c.position).where(follower_marks.c.name == name)
            ).scalar()
            newer = conn.execute(
                sa.select(events.c.pos).where(events.c.pos > (mark or 0)).limit(1)
            ).first()
        return newer is not None

    def _ensure(self, name: str) -> None:
        """Give a follower without a row one at the beginning of the log, committed on its
        own (a failure of its first batch must still be recorded on it). A revision that
        adds a follower to an existing node inserts its row at the end instead."""
        if name in self._known:
            return
        with self.db.write() as conn:
            conn.execute(
                self.db.insert_or_ignore(follower_marks).values(name=name, position=0, failures=0)
            )
        self._known.add(name)

    def _failed(self, name: str, exc: Exception) -> None:
        error = describe(exc)
        try:
            with self.db.write() as conn:
                failures = (
                    conn.execute(
                        sa.select(follower_marks.c.failures).where(follower_marks.c.name == name)
                    ).scalar()
                    or 0
                ) + 1
                retry_at = self.now() + self.backoff(failures)
                conn.execute(
                    follower_marks.update()
                    .where(follower_marks.c.name == name)
                    .values(failures=failures, last_error=error, retry_at=retry_at)
                )
        except Exception as again:
            log.error(
                "follower %s failed (%s), and so did recording it: %s", name, error, describe(again)
            )
            return
        log.warning(
            "follower %s failed (%s); attempt %d, next at %s",
            name,
            error,
            failures,
            f"{retry_at:%Y-%m-%d %H:%M:%S}Z",
            extra={"follower": name},
            exc_info=log.isEnabledFor(logging.DEBUG),
        )


def _states(conn: Connection, case_ids: list[str]) -> dict[str, State]:
    """The current state of each case, in one query."""
    if not case_ids:
        return {}
    rows = conn.execute(
        sa.select(cases.c.case_id, cases.c.state).where(cases.c.case_id.in_(case_ids))
    )
    return {case_id: orjson.loads(raw) for case_id, raw in rows}


def _next_size(size: int, took: float, most: int) -> int:
    """The next batch size: a batch holds its transaction (on SQLite, the one write lock)
    for about ``HOLD`` seconds at most, so a follower catching up never keeps writers
    waiting for long; it grows back while batches are quick."""
    if took > HOLD and size > MIN_BATCH:
        return max(MIN_BATCH, size // 2)
    if took < HOLD / 4 and size < most:
        return min(most, size * 2)
    return size


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


__all__ = [
    "BATCH",
    "Follower",
    "FollowerRunner",
    "Lag",
    "default_backoff",
    "log_end",
    "marks",
    "skip_history",
]
