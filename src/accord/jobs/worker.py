"""A worker: claims due jobs and runs each in the transaction that marks it done.

``Handler = Callable[[Job, Connection], Deferred | None]``: a handler gets the job and
the open write transaction. Whatever it writes through that connection commits together
with the job's completion, or not at all — so a job's database effects happen exactly
once, even when a worker is killed halfway.

**No network call inside a transaction.** A handler that talks to the network (an SMTP
relay, a webhook receiver, a messaging platform) does not make the call itself: it reads
what it needs and returns a ``Deferred`` — the ``call`` to make and how to ``record`` its
result. The worker then runs the job in three steps:

1. *prepare*: a short write transaction checks the lease (below), runs the handler and
   renews the lease for the call; it commits without completing the job, so the handler
   writes nothing here that it would mind writing twice (it normally writes nothing);
2. *call*: ``deferred.call()`` with **no transaction open** — a relay that never answers
   holds no lock, and on SQLite no other write waits for it;
3. *record*: a second short write transaction checks the lease again — fencing: if the
   lease expired and another worker took the job, or the job was re-armed meanwhile,
   nothing is recorded (whoever holds the job now makes the call again) — then runs
   ``deferred.record(conn, result)`` and completes the job, together.

So database effects stay exactly once, and the call is made *at least* once: a worker
killed between the call and the record, or fenced out, means the call is made again,
which is why every call carries a stable id its receiver deduplicates by (a mail's
Message-ID, a webhook delivery's ``Accord-Webhook-Id``). A handler that returns ``None``
(every pure-database handler) completes in its one transaction, as before.

For each claimed job: open a write transaction, re-read the job's row (locked on
PostgreSQL) and check the lease token is still ours — if the lease expired and another
worker took the job, run nothing (*fencing*); run the handler; mark the job done;
commit. If the handler (or a deferred call or its record) raises, the transaction is
rolled back, then ``last_error`` is recorded and the job is rescheduled at ``now +
backoff(attempts)``, or failed after ``max_attempts``. A job of a kind this worker has
no handler for fails at once, as does a job whose workers died ``max_attempts`` times
while running it (its lease expired every time).

Logs go to the ``accord.jobs`` logger: job id, kind, attempt and outcome, in the message
and as ``extra`` fields (``job_id``, ``job_kind``, ``attempt``, ``outcome``,
``worker_id``); never a payload, and for a database error never its SQL or parameters.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.jobs.queue import Clock, Job, JobError, JobQueue, utc
from accord.store.database import Database

log = logging.getLogger("accord.jobs")

T = TypeVar("T")


@dataclass(frozen=True)
class Deferred(Generic[T]):
    """A network call a handler leaves to the worker, to make with no transaction open.

    ``call()`` makes it (and should return its outcome rather than raise for the
    receiver's sake: a raise is a failed attempt of the whole job, with the worker's
    backoff); ``record(conn, result)`` writes the outcome in a short write transaction
    that the worker opens only once it has checked the job's lease is still its own, and
    that marks the job done. ``record`` may re-arm the job (schedule its key again) to
    try later."""

    call: Callable[[], T]
    record: Callable[[Connection, T], None]


Handler = Callable[[Job, Connection], "Deferred[Any] | None"]
Backoff = Callable[[int], timedelta]
MAX_ERROR = 2000


def default_backoff(attempts: int) -> timedelta:
    """10 s after the first failure, doubling, at most an hour."""
    return timedelta(seconds=min(3600, 5 * 2**attempts))


class Outcome(StrEnum):
    DONE = "done"
    RESCHEDULED = "rescheduled"  # the handler scheduled the job's own key again
    RETRY = "retry"  # the handler raised; pending again after the backoff
    FAILED = "failed"
    FENCED = "fenced"  # the lease was no longer ours: someone else has the job


class Worker:
    def __init__(
        self,
        db: Database,
        queue: JobQueue,
        handlers: Mapping[str, Handler],
        *,
        worker_id: str,
        now: Clock,
        lease: timedelta = timedelta(minutes=5),
        batch: int = 20,
        max_attempts: int = 8,
        backoff: Backoff = default_backoff,
    ) -> None:
        if batch < 1 or max_attempts < 1 or lease <= timedelta(0):
            raise ValueError("batch and max_attempts must be at least 1, lease positive")
        self.db = db
        self.queue = queue
        self.handlers = dict(handlers)
        self.worker_id = worker_id
        self.now = now
        self.lease = lease
        self.batch = batch
        self.max_attempts = max_attempts
        self.backoff = backoff

    def run_once(self) -> int:
        """Claim one batch of due jobs and run them; returns how many were claimed."""
        claimed = self.queue.claim(self.worker_id, limit=self.batch, lease=self.lease)
        if claimed:
            log.debug("worker %s claimed %d jobs", self.worker_id, len(claimed))
        for job in claimed:
            self.process(job)
        return len(claimed)

    def run(self, stop: threading.Event, *, idle: float = 1.0) -> None:
        """Run batches until ``stop`` is set, waiting ``idle`` seconds only when none was due.

        A failing pass (the database is down, say) is logged and retried after ``idle``:
        the jobs it had claimed come back when their lease expires.
        """
        log.info("worker %s started", self.worker_id, extra={"worker_id": self.worker_id})
        while not stop.is_set():
            try:
                ran = self.run_once()
            except Exception as exc:
                log.error(
                    "worker %s: pass failed (%s); retrying in %.1f s",
                    self.worker_id,
                    describe(exc),
                    idle,
                    extra={"worker_id": self.worker_id},
                )
                ran = 0
            if not ran:
                stop.wait(idle)
        log.info("worker %s stopped", self.worker_id, extra={"worker_id": self.worker_id})

    def process(self, job: Job) -> Outcome:
        """Run one job this worker claimed, and record how it went."""
        handler = self.handlers.get(job.kind)
        if handler is None:
            known = ", ".join(sorted(self.handlers)) or "none"
            return self._give_up(
                job, f"no handler for job kind {job.kind!r} (this worker knows: {known})"
            )
        if job.attempts > self.max_attempts:
            return self._give_up(
                job,
                f"abandoned: its worker stopped without finishing it {job.attempts - 1} times "
                "(the lease expired each time)",
            )
        started = time.perf_counter()
        deferred: Deferred[Any] | None = None
        try:
            with self.db.write() as conn:
                if not self.queue.hold(conn, job):
                    outcome = Outcome.FENCED
                else:
                    deferred = handler(job, conn)
                    if deferred is None:
                        done = self.queue.complete(conn, job, at=self.now())
                        outcome = Outcome.DONE if done else Outcome.RESCHEDULED
                    elif not self.queue.renew(conn, job, until=utc(self.now()) + self.lease):
                        raise JobError(
                            "a handler that defers a call re-arms its job when it records "
                            "the outcome, not before the call"
                        )
            if deferred is not None:
                return self._call(job, deferred, started)
        except Exception as exc:
            return self._failed_attempt(job, exc)
        if outcome is Outcome.FENCED:
            detail = (
                "and skipped: its lease is no longer ours (expired and taken over, or cancelled)"
            )
        else:
            detail = f"in {(time.perf_counter() - started) * 1000:.1f} ms"
        self._log(logging.INFO, job, outcome, detail)
        return outcome

    def _call(self, job: Job, deferred: Deferred[Any], started: float) -> Outcome:
        """Make a handler's deferred call with no transaction open, then record its
        outcome and complete the job in one short transaction, if the job is still ours."""
        calling = time.perf_counter()
        result = deferred.call()
        called = time.perf_counter() - calling
        with self.db.write() as conn:
            if not self.queue.hold(conn, job):
                outcome = Outcome.FENCED
            else:
                deferred.record(conn, result)
                done = self.queue.complete(conn, job, at=self.now())
                outcome = Outcome.DONE if done else Outcome.RESCHEDULED
        if outcome is Outcome.FENCED:
            self._log(
                logging.WARNING,
                job,
                outcome,
                "after its call: the lease is no longer ours, so the outcome is not recorded "
                "(whoever holds the job now makes the call again, with the same id)",
            )
        else:
            self._log(
                logging.INFO,
                job,
                outcome,
                f"in {(time.perf_counter() - started) * 1000:.1f} ms "
                f"(the call {called * 1000:.1f} ms, with no transaction open)",
            )
        return outcome

    def _failed_attempt(self, job: Job, exc: Exception) -> Outcome:
        error = describe(exc)
        now = utc(self.now())
        final = job.attempts >= self.max_attempts
        retry_at = now + self.backoff(job.attempts)
        with self.db.write() as conn:
            if final:
                ours = self.queue.fail(conn, job, error, at=now)
            else:
                ours = self.queue.retry_later(conn, job, error, run_at=retry_at)
        if not ours:
            self._log(logging.WARNING, job, Outcome.FENCED, f"after it raised {error}")
            return Outcome.FENCED
        if final:
            self._log(logging.ERROR, job, Outcome.FAILED, f"after {job.attempts} attempts: {error}")
        else:
            self._log(
                logging.WARNING,
                job,
                Outcome.RETRY,
                f"of {self.max_attempts} raised {error}; next at {retry_at:%Y-%m-%d %H:%M:%S}Z",
            )
        frames = "".join(traceback.format_tb(exc.__traceback__))
        log.debug("job %d raised, traceback:\n%s%s", job.id, frames, error)
        return Outcome.FAILED if final else Outcome.RETRY

    def _give_up(self, job: Job, error: str) -> Outcome:
        with self.db.write() as conn:
            ours = self.queue.fail(conn, job, error, at=self.now())
        outcome = Outcome.FAILED if ours else Outcome.FENCED
        self._log(logging.ERROR, job, outcome, error)
        return outcome

    def _log(self, level: int, job: Job, outcome: Outcome, detail: str) -> None:
        if not log.isEnabledFor(level):
            return
        log.log(
            level,
            "job %d (%s) attempt %d %s %s",
            job.id,
            job.kind,
            job.attempts,
            outcome.value,
            detail,
            extra={
                "job_id": job.id,
                "job_kind": job.kind,
                "attempt": job.attempts,
                "outcome": outcome.value,
                "worker_id": self.worker_id,
            },
        )


def describe(exc: BaseException) -> str:
    """One line naming an error; for a database error its driver message, not SQL or values."""
    if isinstance(exc, sa.exc.StatementError) and exc.orig is not None:
        exc = exc.orig
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:MAX_ERROR]


__all__ = ["Deferred", "Handler", "Outcome", "Worker", "default_backoff", "describe"]
