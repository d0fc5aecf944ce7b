"""The job table's operations: schedule, replace and cancel by key, claim with a lease.

A job is one row of ``jobs`` (``accord.store.tables``). Its life::

    pending ──claim──▶ running ──handler commits──▶ done
       ▲                  │ handler raised: pending again at now + backoff,
       └──────────────────┘ or failed after the last attempt
    pending/running ──cancel──▶ cancelled          failed ──retry──▶ pending

**Claiming.** ``claim`` turns due jobs (pending with ``run_at <= now``) and jobs whose
lease expired (running with ``locked_until <= now``: their worker died) into running
jobs leased to one worker until ``now + lease``, with a fresh ``lease_token``, each kind
with an ``UPDATE … WHERE id IN (SELECT id … ORDER BY run_at, id LIMIT n) RETURNING …``
(expired leases first, in the same transaction). Both walk the ``(status, run_at, id)``
index and stop after the batch, whatever the table's history. On PostgreSQL the inner
SELECT is ``FOR UPDATE SKIP LOCKED``, so any number of workers claim disjoint batches
without waiting on each other; on SQLite the same statements run under the ``BEGIN
IMMEDIATE`` write lock, which already serialises claimers.

**Fencing.** The worker runs a job in a write transaction that first re-reads the row
(``FOR UPDATE`` on PostgreSQL) and checks the lease token is still its own, then marks
the job done in that same transaction. A worker whose lease expired and whose job was
claimed again finds another token and runs nothing; while a worker holds the row, no
one can claim it (SKIP LOCKED passes over it, SQLite's writer lock keeps others out).
A job with a network call (``accord.jobs.worker.Deferred``) is checked this way twice:
before the call (which ``renew``s the lease) and when its outcome is recorded.

**Keys.** A key names at most one unfinished (pending or running) job — a partial
unique index. ``schedule`` with a key is an upsert: it replaces that job's kind,
payload and run time (and takes it back from a worker that claimed it but has not
started it), or inserts. A handler may re-arm its own job by scheduling its key again
with its connection: the job then goes back to pending instead of done.

**Why not a queue library.** procrastinate, pgqueuer, Celery, RQ or dramatiq would bring
a broker or a PostgreSQL-only schema and their own connections. Accord's jobs need one
table, the *same transaction* as the job's effects — the only way a timer's effect
and its completion commit together, so a crash neither loses nor repeats it — and
must run on the embedded SQLite default too. Neither is what those libraries offer, and
SQLAlchemy Core does it in a few statements.

Everything that differs between SQLite and PostgreSQL is in ``_Sql``. Times are stored in
UTC and returned as aware UTC datetimes; a naive datetime is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from accord.store.database import Database
from accord.store.tables import JOB_STATUSES, UNFINISHED_JOB, jobs

Clock = Callable[[], datetime]
STATUSES = JOB_STATUSES
UNFINISHED = ("pending", "running")


class JobError(Exception):
    """A job operation that cannot be done; the message says why."""


@dataclass(frozen=True)
class Job:
    """One job as read from the table. ``lease_token`` is set while it is claimed."""

    id: int
    kind: str
    key: str | None
    payload: dict[str, Any]
    run_at: datetime
    attempts: int
    lease_token: str | None
    status: str = "pending"
    locked_by: str | None = None
    last_error: str | None = None
    finished_at: datetime | None = None


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is a programming error, never guessed at."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("job times must be timezone-aware")
    return moment.astimezone(UTC)


def aware(stored: datetime) -> datetime:
    """A time read back from the table as aware UTC (SQLite keeps UTC text, no offset)."""
    return stored.replace(tzinfo=UTC) if stored.tzinfo is None else stored.astimezone(UTC)


def _param(name: str, column: sa.Column[Any]) -> sa.BindParameter[Any]:
    return sa.bindparam(name, type_=column.type)


_RELEASED: dict[str, Any] = {"locked_by": None, "locked_until": None, "lease_token": None}
_OURS = sa.and_(  # the claimed job, while it is still claimed with this lease
    jobs.c.id == _param("p_id", jobs.c.id),
    jobs.c.status == "running",
    jobs.c.lease_token == _param("p_token", jobs.c.lease_token),
)
_KEEP_WORKER = {"locked_until": None, "lease_token": None}  # done and failed: who ran it last
# The hot path's statements are built once: building one costs more than running it.
_FINISH = {
    "done": jobs.update()
    .where(_OURS)
    .values(status="done", finished_at=_param("p_at", jobs.c.finished_at), **_KEEP_WORKER)
    .returning(jobs.c.id),
    "failed": jobs.update()
    .where(_OURS)
    .values(
        status="failed",
        finished_at=_param("p_at", jobs.c.finished_at),
        last_error=_param("p_error", jobs.c.last_error),
        **_KEEP_WORKER,
    )
    .returning(jobs.c.id),
    "pending": jobs.update()
    .where(_OURS)
    .values(
        status="pending",
        run_at=_param("p_run_at", jobs.c.run_at),
        last_error=_param("p_error", jobs.c.last_error),
        **_RELEASED,
    )
    .returning(jobs.c.id),
}
_RENEW = (
    jobs.update()
    .where(_OURS)
    .values(locked_until=_param("p_until", jobs.c.locked_until))
    .returning(jobs.c.id)
)


class _Sql:
    """The statements whose SQL differs between SQLite and PostgreSQL, built once per queue."""

    def __init__(self, db: Database) -> None:
        self.sqlite = db.is_sqlite
        self.hold = self.lock(
            sa.select(jobs.c.lease_token, jobs.c.status).where(
                jobs.c.id == _param("p_id", jobs.c.id)
            )
        )
        now = _param("p_now", jobs.c.run_at)
        # Two statements, not one with OR: each walks the (status, run_at) index and stops
        # after the batch, where an OR made PostgreSQL scan and sort every job each time.
        self.claim_due = self._claim(sa.and_(jobs.c.status == "pending", jobs.c.run_at <= now))
        self.insert = jobs.insert().returning(jobs.c.id)
        self.upsert_by_key = self._upsert_by_key()
        self.claim_expired = self._claim(
            sa.and_(jobs.c.status == "running", jobs.c.locked_until <= now)
        )

    def _claim(self, due: sa.ColumnElement[bool]) -> sa.Update:
        pick = self.lock(
            sa.select(jobs.c.id)
            .where(due)
            .order_by(jobs.c.run_at, jobs.c.id)
            .limit(sa.bindparam("p_limit", type_=sa.Integer)),
            skip_locked=True,
        )
        return (
            jobs.update()
            .where(jobs.c.id.in_(pick.scalar_subquery()))
            .values(
                status="running",
                attempts=jobs.c.attempts + 1,
                locked_by=_param("p_worker", jobs.c.locked_by),
                locked_until=_param("p_until", jobs.c.locked_until),
                lease_token=_param("p_token", jobs.c.lease_token),
            )
            .returning(*jobs.c)
        )

    def lock(self, query: sa.Select[Any], *, skip_locked: bool = False) -> sa.Select[Any]:
        """``FOR UPDATE [SKIP LOCKED]`` on PostgreSQL; SQLite's BEGIN IMMEDIATE holds all."""
        return query if self.sqlite else query.with_for_update(skip_locked=skip_locked)

    def _upsert_by_key(self) -> sa.Insert:
        """Insert a row (the parameters), or replace the unfinished job with its key;
        returns the id."""
        stmt = sqlite.insert(jobs) if self.sqlite else postgresql.insert(jobs)
        return stmt.on_conflict_do_update(
            index_elements=[jobs.c.key],
            index_where=sa.text(UNFINISHED_JOB),  # the partial index's own predicate
            set_={
                "kind": stmt.excluded.kind,
                "payload": stmt.excluded.payload,
                "run_at": stmt.excluded.run_at,
                **_RELEASED,
                "status": "pending",
                "attempts": 0,
                "last_error": None,
            },
        ).returning(jobs.c.id)


class JobQueue:
    """Schedule, inspect and claim jobs. ``now`` returns an aware datetime (injectable)."""

    def __init__(self, db: Database, *, now: Clock) -> None:
        self.db = db
        self.now = now
        self._sql = _Sql(db)

    # -- scheduling ------------------------------------------------------------------

    def schedule(
        self,
        kind: str,
        run_at: datetime,
        payload: dict[str, Any],
        *,
        key: str | None = None,
        conn: Connection | None = None,
    ) -> int:
        """Run a ``kind`` job at or after ``run_at``; returns its id.

        With ``key``, the unfinished job holding that key is replaced (same id, new kind,
        payload and time, attempts reset) or a new one inserted. Pass ``conn`` to
        schedule inside your own write transaction: the job exists only if it commits.
        """
        if not kind:
            raise ValueError("a job needs a kind")
        if not isinstance(payload, dict):
            raise TypeError("a job's payload is a dict")
        row = {
            "kind": kind,
            "key": key,
            "payload": orjson.dumps(payload),
            "run_at": utc(run_at),
            "status": "pending",
            "attempts": 0,
            "created_at": utc(self.now()),
        }
        with self._write(conn) as c:
            if key is None:
                return int(c.execute(self._sql.insert, row).scalar_one())
            return int(c.execute(self._sql.upsert_by_key, row).scalar_one())

    def cancel(self, key: str, *, conn: Connection | None = None) -> bool:
        """Cancel the unfinished job with ``key``; False if there is none.

        A job a worker is running right now (PostgreSQL: its row is locked) is waited
        for; it has then finished, and False is returned.
        """
        with self._write(conn) as c:
            done = c.execute(
                jobs.update()
                .where(jobs.c.key == key, jobs.c.status.in_(UNFINISHED))
                .values(status="cancelled", finished_at=utc(self.now()), **_RELEASED)
                .returning(jobs.c.id)
            ).first()
        return done is not None

    def retry(self, job_id: int) -> Job:
        """Put a failed job back to pending, due now, with its attempts reset."""
        with self.db.write() as conn:
            row = conn.execute(self._sql.lock(sa.select(jobs).where(jobs.c.id == job_id))).first()
            if row is None:
                raise JobError(f"there is no job {job_id}")
            if row.status != "failed":
                raise JobError(f"job {job_id} is {row.status}; only a failed job can be retried")
            if row.key is not None:
                holder = conn.execute(
                    sa.select(jobs.c.id).where(jobs.c.key == row.key, jobs.c.status.in_(UNFINISHED))
                ).scalar()
                if holder is not None:
                    raise JobError(
                        f"job {job_id}'s key {row.key!r} is held by unfinished job {holder}"
                    )
            new = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(status="pending", run_at=utc(self.now()), attempts=0, finished_at=None)
                .returning(*jobs.c)
            ).one()
        return _job(new)

    def purge(self, finished_before: datetime) -> int:
        """Delete done and cancelled jobs that finished before the given time."""
        with self.db.write() as conn:
            gone = conn.execute(
                jobs.delete()
                .where(
                    jobs.c.status.in_(("done", "cancelled")),
                    jobs.c.finished_at < utc(finished_before),
                )
                .returning(jobs.c.id)
            ).all()
        return len(gone)

    # -- reading ---------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        return None if row is None else _job(row)

    def unfinished(
        self, key: str, *, conn: Connection | None = None, lock: bool = False
    ) -> Job | None:
        """The pending or running job holding ``key``, if any (through the key's unique
        index). With ``lock`` (PostgreSQL: ``FOR UPDATE``) and ``conn``, its row stays
        locked until ``conn`` commits: decide on it, then ``schedule`` the key, unraced."""
        query = sa.select(jobs).where(jobs.c.key == key, sa.text(UNFINISHED_JOB))
        if lock:
            query = self._sql.lock(query)
        if conn is not None:
            row = conn.execute(query).first()
        else:
            with self.db.read() as own:
                row = own.execute(query).first()
        return None if row is None else _job(row)

    def pending(
        self,
        kind: str | None = None,
        key_prefix: str | None = None,
        *,
        conn: Connection | None = None,
    ) -> list[Job]:
        """Pending jobs (optionally of one kind, or whose key starts so), soonest first;
        with ``conn``, as the caller's transaction sees them."""
        return self.find(status="pending", kind=kind, key_prefix=key_prefix, limit=None, conn=conn)

    def find(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        key_prefix: str | None = None,
        limit: int | None = 100,
        conn: Connection | None = None,
    ) -> list[Job]:
        """Jobs by status, kind and key prefix, ordered by run time then id."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown job status {status!r}")
        query = sa.select(jobs).order_by(jobs.c.run_at, jobs.c.id).limit(limit)
        if status is not None:
            query = query.where(jobs.c.status == status)
        if kind is not None:
            query = query.where(jobs.c.kind == kind)
        if key_prefix is not None:
            query = query.where(jobs.c.key.startswith(key_prefix, autoescape=True))
        if conn is not None:
            return [_job(row) for row in conn.execute(query)]
        with self.db.read() as own:
            return [_job(row) for row in own.execute(query)]

    def reap(self, is_dead: Callable[[str], bool]) -> int:
        """Expire the leases of running jobs whose worker ``is_dead`` says is gone, so they
        are claimed again now rather than when the lease runs out; returns how many."""
        with self._write(None) as conn:
            holders = conn.execute(
                sa.select(jobs.c.locked_by).where(jobs.c.status == "running").distinct()
            ).scalars()
            dead = [h for h in holders if h and is_dead(h)]
            if not dead:
                return 0
            result = conn.execute(
                jobs.update()
                .where(jobs.c.status == "running", jobs.c.locked_by.in_(dead))
                .values(locked_until=utc(self.now()))
            )
            return int(result.rowcount or 0)

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status."""
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)
            ).all()
        return {status: 0 for status in STATUSES} | {row[0]: int(row[1]) for row in rows}

    # -- claiming and finishing (used by accord.jobs.worker) -------------------------

    def claim(self, worker_id: str, *, limit: int, lease: timedelta) -> list[Job]:
        """Lease up to ``limit`` due jobs to ``worker_id`` until ``now + lease``.

        Due: pending with ``run_at <= now``, or running with an expired lease (a worker
        that died). Each claim counts as an attempt. Returned in run_at order.
        """
        now = utc(self.now())
        params = {
            "p_now": now,
            "p_limit": limit,
            "p_worker": worker_id,
            "p_until": now + lease,
            "p_token": uuid.uuid4().hex,
        }
        with self.db.write() as conn:
            rows = list(conn.execute(self._sql.claim_expired, params))
            if len(rows) < limit:
                params["p_limit"] = limit - len(rows)
                rows += conn.execute(self._sql.claim_due, params).all()
        return sorted((_job(row) for row in rows), key=lambda job: (job.run_at, job.id))

    def hold(self, conn: Connection, job: Job) -> bool:
        """Lock ``job``'s row in ``conn``'s transaction; False if the lease is no longer ours."""
        row = conn.execute(self._sql.hold, {"p_id": job.id}).first()
        return row is not None and row.status == "running" and row.lease_token == job.lease_token

    def renew(self, conn: Connection, job: Job, *, until: datetime) -> bool:
        """Extend a held job's lease to ``until`` (before a network call the worker makes
        with no transaction open); False if the lease is no longer ours."""
        params = {"p_id": job.id, "p_token": job.lease_token, "p_until": utc(until)}
        return conn.execute(_RENEW, params).first() is not None

    def complete(self, conn: Connection, job: Job, *, at: datetime) -> bool:
        """Mark a held job done. False if its handler re-armed it (scheduled its key again)."""
        return self._finish(conn, job, "done", p_at=utc(at))

    def fail(self, conn: Connection, job: Job, error: str, *, at: datetime) -> bool:
        """Give up on a claimed job; False if the lease is no longer ours (nothing changed)."""
        return self._finish(conn, job, "failed", p_at=utc(at), p_error=error)

    def retry_later(self, conn: Connection, job: Job, error: str, *, run_at: datetime) -> bool:
        """Put a claimed job back to pending at ``run_at``; False if the lease is gone."""
        return self._finish(conn, job, "pending", p_run_at=utc(run_at), p_error=error)

    def _finish(self, conn: Connection, job: Job, status: str, **params: Any) -> bool:
        params |= {"p_id": job.id, "p_token": job.lease_token}
        return conn.execute(_FINISH[status], params).first() is not None

    @contextmanager
    def _write(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.db.write() as own:
                yield own


def _job(row: Any) -> Job:
    return Job(
        id=int(row.id),
        kind=row.kind,
        key=row.key,
        payload=orjson.loads(row.payload),
        run_at=aware(row.run_at),
        attempts=row.attempts,
        lease_token=row.lease_token,
        status=row.status,
        locked_by=row.locked_by,
        last_error=row.last_error,
        finished_at=None if row.finished_at is None else aware(row.finished_at),
    )
