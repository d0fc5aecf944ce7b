"""Worker on SQLite and PostgreSQL, on a clock the tests move: effects and completion
commit together, failures back off then fail, expired leases are reclaimed and the
stale worker is fenced out."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.jobs.queue import Job, JobQueue
from accord.jobs.worker import Deferred, Handler, Outcome, Worker, default_backoff
from accord.store.database import Database
from accord.store.tables import jobs

from .conftest import START, Clock

scratch = sa.MetaData()
effects = sa.Table(
    "job_effects",
    scratch,
    sa.Column("job_id", sa.BigInteger, nullable=False),
    sa.Column("worker", sa.Text, nullable=False),
)


@pytest.fixture(autouse=True)
def _effects_table(db: Database) -> None:
    scratch.create_all(db.writer)


def record(worker: str) -> Handler:
    def handle(job: Job, conn: Connection) -> None:
        conn.execute(effects.insert().values(job_id=job.id, worker=worker))

    return handle


def explode(job: Job, conn: Connection) -> None:
    conn.execute(effects.insert().values(job_id=job.id, worker="doomed"))
    raise RuntimeError(f"cannot reach the mail server for job {job.id}")


def rows(db: Database) -> list[tuple[int, str]]:
    with db.read() as conn:
        return [(r.job_id, r.worker) for r in conn.execute(sa.select(effects))]


def make_worker(
    db: Database, queue: JobQueue, clock: Clock, handlers: dict[str, Handler], **options: object
) -> Worker:
    return Worker(db, queue, handlers, worker_id="w1", now=clock, **options)


def test_a_due_job_runs_once_with_its_effect(db: Database, queue: JobQueue, clock: Clock) -> None:
    worker = make_worker(db, queue, clock, {"t": record("w1")})
    soon = queue.schedule("t", START + timedelta(minutes=5), {})
    now = queue.schedule("t", START, {})
    assert worker.run_once() == 1
    assert rows(db) == [(now, "w1")]
    assert worker.run_once() == 0
    clock.advance(minutes=5)
    assert worker.run_once() == 1 and worker.run_once() == 0
    assert rows(db) == [(now, "w1"), (soon, "w1")]
    job = queue.get(now)
    assert job is not None
    assert (job.status, job.attempts, job.locked_by, job.lease_token) == ("done", 1, "w1", None)
    assert job.finished_at == START


def test_a_failing_handler_leaves_no_effect_backs_off_then_fails(
    db: Database, queue: JobQueue, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    worker = make_worker(db, queue, clock, {"t": explode}, max_attempts=3)
    job_id = queue.schedule("t", START, {"secret": "do-not-log-me"})
    caplog.set_level(logging.INFO, logger="accord.jobs")

    assert worker.run_once() == 1
    job = queue.get(job_id)
    assert job is not None and rows(db) == []  # the handler's insert was rolled back
    assert (job.status, job.attempts, job.lease_token) == ("pending", 1, None)
    assert job.run_at == START + default_backoff(1) == START + timedelta(seconds=10)
    assert job.last_error == f"RuntimeError: cannot reach the mail server for job {job_id}"

    clock.advance(seconds=9)
    assert worker.run_once() == 0  # not before the backoff
    clock.advance(seconds=1)
    assert worker.run_once() == 1
    job = queue.get(job_id)
    assert job is not None and (job.status, job.attempts) == ("pending", 2)
    assert job.run_at == clock() + timedelta(seconds=20)

    clock.advance(seconds=20)
    assert worker.run_once() == 1
    job = queue.get(job_id)
    assert job is not None and (job.status, job.attempts) == ("failed", 3)
    assert job.finished_at == clock() and rows(db) == []
    clock.advance(days=1)
    assert worker.run_once() == 0

    outcomes = [getattr(r, "outcome", None) for r in caplog.records]
    assert outcomes == ["retry", "retry", "failed"]
    assert all(r.job_id == job_id and r.job_kind == "t" for r in caplog.records)
    assert "do-not-log-me" not in caplog.text


def test_a_database_error_is_recorded_without_its_sql(
    db: Database, queue: JobQueue, clock: Clock
) -> None:
    def bad_sql(job: Job, conn: Connection) -> None:
        conn.execute(sa.text("INSERT INTO no_such_table VALUES (:v)"), {"v": "card 4242"})

    worker = make_worker(db, queue, clock, {"t": bad_sql})
    job_id = queue.schedule("t", START, {})
    assert worker.run_once() == 1
    job = queue.get(job_id)
    assert job is not None and job.status == "pending" and job.last_error
    assert "no_such_table" in job.last_error
    assert "4242" not in job.last_error and "[SQL" not in job.last_error


def test_an_unknown_kind_fails_clearly(db: Database, queue: JobQueue, clock: Clock) -> None:
    worker = make_worker(db, queue, clock, {"t": record("w1"), "a": record("w1")})
    job_id = queue.schedule("nope", START, {})
    assert worker.run_once() == 1
    job = queue.get(job_id)
    assert job is not None and job.status == "failed" and job.attempts == 1
    assert job.last_error == "no handler for job kind 'nope' (this worker knows: a, t)"


def test_an_expired_lease_is_reclaimed_and_the_stale_worker_fenced_out(
    db: Database, queue: JobQueue, clock: Clock
) -> None:
    stale = make_worker(db, queue, clock, {"t": record("stale")}, lease=timedelta(minutes=1))
    fresh = Worker(db, queue, {"t": record("fresh")}, worker_id="w2", now=clock)
    job_id = queue.schedule("t", START, {})
    [held] = queue.claim("w1", limit=1, lease=stale.lease)  # w1 claims, then stalls

    clock.advance(seconds=61)
    assert fresh.run_once() == 1  # the lease expired: w2 takes the job over
    assert stale.process(held) is Outcome.FENCED  # w1 comes back late: runs nothing
    assert rows(db) == [(job_id, "fresh")]
    job = queue.get(job_id)
    assert job is not None and (job.status, job.attempts, job.locked_by) == ("done", 2, "w2")


def test_a_stale_worker_is_fenced_out_before_the_new_one_finishes(
    db: Database, queue: JobQueue, clock: Clock
) -> None:
    stale = make_worker(db, queue, clock, {"t": explode})
    fresh = make_worker(db, queue, clock, {"t": record("fresh")})
    queue.schedule("t", START, {})
    [old] = queue.claim("w1", limit=1, lease=timedelta(seconds=30))
    clock.advance(seconds=30)
    [new] = queue.claim("w2", limit=1, lease=timedelta(seconds=30))
    assert stale.process(old) is Outcome.FENCED  # its handler is never called
    assert fresh.process(new) is Outcome.DONE
    assert fresh.process(new) is Outcome.FENCED  # and a job is never done twice
    assert rows(db) == [(new.id, "fresh")]


def test_a_job_whose_workers_keep_dying_is_given_up(
    db: Database, queue: JobQueue, clock: Clock
) -> None:
    worker = make_worker(db, queue, clock, {"t": record("w1")}, max_attempts=2)
    job_id = queue.schedule("t", START, {})
    for _ in range(2):  # two workers claim it and die
        assert len(queue.claim("dies", limit=1, lease=timedelta(minutes=1))) == 1
        clock.advance(minutes=1)
    assert worker.run_once() == 1
    job = queue.get(job_id)
    assert job is not None and job.status == "failed" and job.attempts == 3
    assert "stopped without finishing it 2 times" in (job.last_error or "")
    assert rows(db) == []


def test_a_handler_can_re_arm_its_own_job(db: Database, queue: JobQueue, clock: Clock) -> None:
    def daily(job: Job, conn: Connection) -> None:
        conn.execute(effects.insert().values(job_id=job.id, worker=str(job.payload["day"])))
        next_run = job.run_at + timedelta(days=1)
        queue.schedule("daily", next_run, {"day": job.payload["day"] + 1}, key=job.key, conn=conn)

    worker = make_worker(db, queue, clock, {"daily": daily})
    job_id = queue.schedule("daily", START, {"day": 1}, key="digest")
    assert worker.process(queue.claim("w1", limit=1, lease=worker.lease)[0]) is Outcome.RESCHEDULED
    clock.advance(days=1)
    assert worker.run_once() == 1
    [job] = queue.pending()
    assert (job.id, job.payload, job.run_at) == (job_id, {"day": 3}, START + timedelta(days=2))
    assert rows(db) == [(job_id, "1"), (job_id, "2")]


def test_a_cancelled_claimed_job_does_not_run(db: Database, queue: JobQueue, clock: Clock) -> None:
    worker = make_worker(db, queue, clock, {"t": record("w1")})
    queue.schedule("t", START, {}, key="k")
    [claimed] = queue.claim("w1", limit=1, lease=worker.lease)
    assert queue.cancel("k") is True
    assert worker.process(claimed) is Outcome.FENCED and rows(db) == []


def test_run_loops_until_stopped_and_waits_only_when_idle(
    db: Database, queue: JobQueue, clock: Clock
) -> None:
    stop = StopAfter(idle_waits=2)
    ran: list[int] = []

    def handle(job: Job, conn: Connection) -> None:
        ran.append(job.id)

    worker = make_worker(db, queue, clock, {"t": handle}, batch=2)
    ids = [queue.schedule("t", START, {}) for _ in range(5)]
    worker.run(stop, idle=0.5)
    assert ran == ids  # three batches without waiting, then two idle waits
    assert stop.waits == [0.5, 0.5]


def test_run_survives_a_failing_pass(db: Database, queue: JobQueue, clock: Clock) -> None:
    def unreachable() -> datetime:
        raise OSError("the database is unreachable")

    broken = Worker(db, JobQueue(db, now=unreachable), {}, worker_id="w", now=unreachable)
    stop = StopAfter(idle_waits=1)
    queue.schedule("t", START, {})
    broken.run(stop, idle=0.1)  # the pass raises; run logs it, waits, and stops when told
    assert stop.waits == [0.1]
    assert make_worker(db, queue, clock, {}).run_once() == 1  # nothing was claimed


# -- handlers with a network call: prepare, call with no transaction open, record ------


def test_a_deferred_call_runs_with_no_transaction_open_then_records_with_completion(
    db: Database, queue: JobQueue, clock: Clock
) -> None:
    seen: list[tuple[str, datetime | None]] = []

    def call() -> str:
        # Another write touching the job's own row: under a transaction held across the
        # call it would wait for it (SQLite's write lock, PostgreSQL's row lock) and fail
        # after the busy or lock timeout.
        with db.write() as conn:
            conn.execute(effects.insert().values(job_id=job_id, worker="during the call"))
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(last_error="touched"))
        job = queue.get(job_id)
        assert job is not None
        with db.read() as conn:
            until = conn.execute(sa.select(jobs.c.locked_until).where(jobs.c.id == job_id)).scalar()
        seen.append((job.status, until))
        return "250 accepted"

    def send(job: Job, conn: Connection) -> Deferred[str]:
        def record_it(c: Connection, result: str) -> None:
            c.execute(effects.insert().values(job_id=job.id, worker=f"recorded {result}"))

        return Deferred(call, record_it)

    worker = make_worker(db, queue, clock, {"send": send}, lease=timedelta(minutes=1))
    job_id = queue.schedule("send", START, {})
    [claimed] = queue.claim("w1", limit=1, lease=worker.lease)
    clock.advance(seconds=50)  # the lease is renewed for the call: a minute from now
    assert worker.process(claimed) is Outcome.DONE
    assert rows(db) == [(job_id, "during the call"), (job_id, "recorded 250 accepted")]
    [(status, until)] = seen
    assert status == "running" and until is not None
    assert until.replace(tzinfo=None) == (START + timedelta(seconds=110)).replace(tzinfo=None)
    job = queue.get(job_id)
    assert job is not None and (job.status, job.attempts) == ("done", 1)


def test_a_worker_fenced_out_during_its_call_records_nothing(
    db: Database, queue: JobQueue, clock: Clock
) -> None:
    calls: list[int] = []
    fresh = Worker(db, queue, {"send": record("fresh")}, worker_id="w2", now=clock)

    def send(job: Job, conn: Connection) -> Deferred[None]:
        def call() -> None:
            calls.append(job.id)
            clock.advance(minutes=2)  # the relay is slow: the lease runs out
            assert fresh.run_once() == 1  # another worker takes the job over and runs it

        return Deferred(call, lambda c, _: record("stale")(job, c))

    stale = make_worker(db, queue, clock, {"send": send}, lease=timedelta(minutes=1))
    job_id = queue.schedule("send", START, {})
    assert stale.run_once() == 1
    assert calls == [job_id]  # the call was made (at least once) ...
    assert rows(db) == [(job_id, "fresh")]  # ... but only the holder's outcome is recorded
    job = queue.get(job_id)
    assert job is not None and (job.status, job.locked_by) == ("done", "w2")


def test_a_call_that_raises_is_retried_and_records_nothing(
    db: Database, queue: JobQueue, clock: Clock
) -> None:
    def send(job: Job, conn: Connection) -> Deferred[None]:
        def call() -> None:
            raise OSError("connection reset by the relay")

        return Deferred(call, lambda c, _: record("never")(job, c))

    worker = make_worker(db, queue, clock, {"send": send})
    job_id = queue.schedule("send", START, {})
    assert worker.process(queue.claim("w1", limit=1, lease=worker.lease)[0]) is Outcome.RETRY
    job = queue.get(job_id)
    assert job is not None and job.status == "pending"
    assert job.run_at == START + default_backoff(1)
    assert job.last_error == "OSError: connection reset by the relay"
    assert rows(db) == []


def test_a_handler_re_arming_its_job_before_its_call_is_refused(
    db: Database, queue: JobQueue, clock: Clock
) -> None:
    calls: list[int] = []

    def send(job: Job, conn: Connection) -> Deferred[None]:
        queue.schedule("send", START, {}, key=job.key, conn=conn)
        return Deferred(lambda: calls.append(job.id), lambda c, _: None)

    worker = make_worker(db, queue, clock, {"send": send})
    job_id = queue.schedule("send", START, {}, key="k")
    assert worker.process(queue.claim("w1", limit=1, lease=worker.lease)[0]) is Outcome.RETRY
    job = queue.get(job_id)
    assert job is not None and "re-arms its job when it records" in (job.last_error or "")
    assert calls == []


class StopAfter(threading.Event):
    """A stop event whose ``wait`` returns at once and sets it after a few waits."""

    def __init__(self, idle_waits: int) -> None:
        super().__init__()
        self.left = idle_waits
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        self.left -= 1
        if self.left <= 0:
            self.set()
        return self.is_set()


def test_worker_options_are_checked(db: Database, queue: JobQueue, clock: Clock) -> None:
    build: Callable[..., Worker] = lambda **o: make_worker(db, queue, clock, {}, **o)  # noqa: E731
    for bad in ({"batch": 0}, {"max_attempts": 0}, {"lease": timedelta(0)}):
        with pytest.raises(ValueError):
            build(**bad)
