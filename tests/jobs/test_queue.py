"""JobQueue on SQLite and PostgreSQL: scheduling by key, cancelling, claiming due jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from accord.jobs.queue import JobError, JobQueue
from accord.store.database import Database
from accord.store.tables import jobs

from .conftest import START, Clock

LEASE = timedelta(minutes=1)


def test_schedule_and_read_back(queue: JobQueue) -> None:
    later = START + timedelta(hours=2)
    job_id = queue.schedule("reminder", later, {"case": "c1", "n": 1, "text": "£"})
    job = queue.get(job_id)
    assert job is not None
    assert (job.kind, job.key, job.payload, job.status, job.attempts) == (
        "reminder",
        None,
        {"case": "c1", "n": 1, "text": "£"},
        "pending",
        0,
    )
    assert job.run_at == later and job.run_at.tzinfo is not None
    assert job.lease_token is None and queue.get(job_id + 1000) is None


def test_times_are_stored_in_utc(queue: JobQueue) -> None:
    paris = timezone(timedelta(hours=1))
    job_id = queue.schedule("t", datetime(2026, 11, 23, 11, 0, tzinfo=paris), {})
    job = queue.get(job_id)
    assert job is not None and job.run_at == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert job.run_at.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="timezone-aware"):
        queue.schedule("t", datetime(2026, 11, 23, 11, 0), {})


def test_a_key_names_one_unfinished_job_which_scheduling_replaces(queue: JobQueue) -> None:
    first = queue.schedule("reminder", START + timedelta(hours=1), {"v": 1}, key="case:1")
    again = queue.schedule("reminder", START + timedelta(hours=3), {"v": 2}, key="case:1")
    other = queue.schedule("reminder", START + timedelta(hours=2), {"v": 9}, key="case:2")
    assert again == first != other
    [one, two] = queue.pending()
    assert (one.id, one.payload, one.run_at) == (other, {"v": 9}, START + timedelta(hours=2))
    assert (two.id, two.payload, two.run_at) == (first, {"v": 2}, START + timedelta(hours=3))

    assert queue.cancel("case:1") is True
    assert queue.cancel("case:1") is False and queue.cancel("nothing") is False
    cancelled = queue.get(first)
    assert cancelled is not None and cancelled.status == "cancelled"
    assert cancelled.finished_at == START
    fresh = queue.schedule("reminder", START + timedelta(hours=4), {"v": 3}, key="case:1")
    assert fresh != first  # a finished job keeps its key; a new one is made
    assert [job.id for job in queue.pending()] == [other, fresh]


def test_pending_filters_by_kind_and_key_prefix(queue: JobQueue) -> None:
    queue.schedule("reminder", START, {}, key="reminder:case_a:1")
    queue.schedule("reminder", START, {}, key="reminder:case_b:1")
    queue.schedule("escalation", START, {}, key="escalation:case_a:1")
    queue.schedule("reminder", START, {}, key="reminder:case%:1")
    queue.schedule("digest", START, {})
    assert len(queue.pending()) == 5
    assert {j.key for j in queue.pending(kind="reminder")} == {
        "reminder:case_a:1",
        "reminder:case_b:1",
        "reminder:case%:1",
    }
    assert [j.key for j in queue.pending(key_prefix="reminder:case_a")] == ["reminder:case_a:1"]
    # LIKE's wildcards in a prefix are literal characters
    assert [j.key for j in queue.pending(key_prefix="reminder:case%")] == ["reminder:case%:1"]
    assert queue.pending(kind="escalation", key_prefix="reminder:") == []


def test_scheduling_inside_a_callers_transaction(db: Database, queue: JobQueue) -> None:
    with pytest.raises(RuntimeError), db.write() as conn:
        queue.schedule("reminder", START, {}, key="k", conn=conn)
        raise RuntimeError("the caller's change failed")
    assert queue.pending() == []
    with db.write() as conn:
        job_id = queue.schedule("reminder", START, {}, key="k", conn=conn)
        assert queue.cancel("k", conn=conn) is True
    job = queue.get(job_id)
    assert job is not None and job.status == "cancelled"


def test_only_due_jobs_are_claimed(queue: JobQueue, clock: Clock) -> None:
    late = queue.schedule("t", START + timedelta(minutes=10), {})
    due = queue.schedule("t", START - timedelta(seconds=1), {})
    now = queue.schedule("t", START, {})
    claimed = queue.claim("w1", limit=10, lease=timedelta(hours=1))
    assert [job.id for job in claimed] == [due, now]  # run_at order
    assert all(job.status == "running" and job.attempts == 1 for job in claimed)
    assert all(job.locked_by == "w1" and len(job.lease_token or "") == 32 for job in claimed)
    assert queue.claim("w2", limit=10, lease=LEASE) == []  # leased: nobody else gets them

    clock.advance(minutes=10)
    assert [job.id for job in queue.claim("w2", limit=10, lease=LEASE)] == [late]


def test_claim_respects_the_limit(queue: JobQueue) -> None:
    ids = [queue.schedule("t", START - timedelta(seconds=i), {}) for i in range(5)]
    first = queue.claim("w", limit=2, lease=LEASE)
    second = queue.claim("w", limit=10, lease=LEASE)
    assert [j.id for j in first] == [ids[4], ids[3]]
    assert [j.id for j in second] == [ids[2], ids[1], ids[0]]
    assert first[0].lease_token != second[0].lease_token


def test_an_expired_lease_is_claimed_again(queue: JobQueue, clock: Clock) -> None:
    job_id = queue.schedule("t", START, {})
    [mine] = queue.claim("crashed", limit=1, lease=LEASE)
    clock.advance(seconds=59)
    assert queue.claim("other", limit=1, lease=LEASE) == []
    clock.advance(seconds=1)
    [again] = queue.claim("other", limit=1, lease=LEASE)
    assert again.id == mine.id == job_id
    assert again.attempts == 2 and again.locked_by == "other"
    assert again.lease_token != mine.lease_token


def test_scheduling_a_claimed_jobs_key_takes_it_back(db: Database, queue: JobQueue) -> None:
    job_id = queue.schedule("t", START, {"v": 1}, key="k")
    [claimed] = queue.claim("w", limit=1, lease=LEASE)
    assert queue.schedule("t", START + timedelta(hours=1), {"v": 2}, key="k") == job_id
    job = queue.get(job_id)
    assert job is not None
    assert (job.status, job.payload, job.attempts, job.lease_token) == (
        "pending",
        {"v": 2},
        0,
        None,
    )
    with db.write() as conn:  # the worker that claimed the old version is fenced out
        assert queue.hold(conn, claimed) is False


def test_retry_puts_a_failed_job_back(db: Database, queue: JobQueue, clock: Clock) -> None:
    job_id = queue.schedule("t", START, {}, key="k")
    with pytest.raises(JobError, match="only a failed job"):
        queue.retry(job_id)
    with pytest.raises(JobError, match="no job"):
        queue.retry(job_id + 1)
    [claimed] = queue.claim("w", limit=1, lease=LEASE)
    with db.write() as conn:
        assert queue.fail(conn, claimed, "Boom: broken", at=clock())
    clock.advance(hours=1)
    retried = queue.retry(job_id)
    assert (retried.status, retried.attempts, retried.run_at) == ("pending", 0, clock())
    assert retried.last_error == "Boom: broken"  # kept until it runs again

    [claimed] = queue.claim("w", limit=1, lease=LEASE)
    with db.write() as conn:
        assert queue.fail(conn, claimed, "again", at=clock())
    holder = queue.schedule("t", clock(), {}, key="k")  # the key is free, a new job takes it
    with pytest.raises(JobError, match=f"held by unfinished job {holder}"):
        queue.retry(job_id)


def test_find_counts_and_purge(db: Database, queue: JobQueue, clock: Clock) -> None:
    done = queue.schedule("t", START, {})
    cancelled = queue.schedule("t", START, {}, key="c")
    failed = queue.schedule("t", START + timedelta(seconds=1), {})
    queue.cancel("c")
    clock.advance(seconds=1)
    one, two = queue.claim("w", limit=2, lease=LEASE)
    with db.write() as conn:
        assert queue.complete(conn, one, at=clock())
        assert queue.fail(conn, two, "no", at=clock())
    assert (one.id, two.id) == (done, failed)
    assert [j.id for j in queue.find(status="done")] == [done]
    assert [j.id for j in queue.find()] == [done, cancelled, failed]
    assert queue.counts() == {"pending": 0, "running": 0, "done": 1, "failed": 1, "cancelled": 1}
    with pytest.raises(ValueError, match="unknown job status"):
        queue.find(status="lost")

    assert queue.purge(START) == 0  # nothing finished before the start
    assert queue.purge(clock() + timedelta(seconds=1)) == 2
    assert [j.id for j in queue.find()] == [failed]  # failed jobs stay for an operator


def test_the_table_refuses_an_unknown_status(db: Database, queue: JobQueue) -> None:
    job_id = queue.schedule("t", START, {})
    with pytest.raises(sa.exc.IntegrityError), db.write() as conn:
        conn.execute(jobs.update().where(jobs.c.id == job_id).values(status="lost"))


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_claiming_walks_the_index_whatever_the_history(db: Database, queue: JobQueue) -> None:
    """A claim reads its batch from (status, run_at, id): no scan or sort of every job."""
    moment = START - timedelta(days=1)
    rows = [
        {
            "kind": "t",
            "payload": b"{}",
            "run_at": moment,
            "status": "done" if i % 2 else "pending",
            "attempts": 0,
            "created_at": moment,
        }
        for i in range(10_000)
    ]
    with db.write() as conn:
        conn.execute(jobs.insert(), rows)
        conn.exec_driver_sql("ANALYZE jobs")
    for statement in (queue._sql.claim_due, queue._sql.claim_expired):
        compiled = statement.compile(dialect=db.writer.dialect)
        params = compiled.construct_params(
            {"p_now": START, "p_limit": 20, "p_worker": "w", "p_until": START, "p_token": "t"}
        )
        with db.write() as conn:
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {compiled}", params))
            conn.rollback()
        assert "Index Scan using ix_jobs_status_run_at" in plan, plan
        assert "Seq Scan on jobs" not in plan and "Sort" not in plan, plan
