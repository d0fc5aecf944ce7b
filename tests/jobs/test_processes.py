"""Real worker processes racing on PostgreSQL (SKIP LOCKED), and one killed mid-job.

Each process runs ``process_worker.py``: a Worker whose handler inserts ``(job_id,
worker)`` into ``fired`` in the job's own transaction, so a job that fired twice would
leave two rows and a lost one none. Processes keep the real clock, so the kill test uses
a short lease (2 s) rather than a clock it could move.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from accord.jobs.queue import JobQueue
from accord.store import migrate
from accord.store.database import Database
from accord.store.tables import jobs

SCRIPT = Path(__file__).with_name("process_worker.py")
JOBS = 1_000
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    with database.write() as conn:
        conn.execute(sa.text("CREATE TABLE fired (job_id bigint NOT NULL, worker text NOT NULL)"))
    queue = JobQueue(database, now=lambda: datetime.now(UTC))
    due = datetime.now(UTC) - timedelta(minutes=1)
    with database.write() as conn:  # due in id order, so every batch of 20 has one slow job
        for i in range(JOBS):
            queue.schedule("fire", due + timedelta(microseconds=i), {"n": i}, conn=conn)
    yield database
    database.dispose()


@contextmanager
def workers(
    url: str, names: list[str], *, lease: float, slow_every: int
) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Start the processes, wait until each is ready, then let them all go at once."""
    with ExitStack() as stack:
        procs = {
            name: stack.enter_context(
                subprocess.Popen(
                    [sys.executable, str(SCRIPT), url, name, str(lease), str(slow_every)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            for name in names
        }
        try:
            for proc in procs.values():
                assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
            for proc in procs.values():
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            yield procs
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()


def finish(proc: subprocess.Popen[str]) -> None:
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr


def fired(db: Database) -> tuple[int, int, dict[str, int]]:
    with db.read() as conn:
        total, distinct = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT job_id) FROM fired")
        ).one()
        per_worker = dict(
            conn.execute(sa.text("SELECT worker, count(*) FROM fired GROUP BY worker")).all()
        )
    return total, distinct, per_worker


def statuses(db: Database) -> dict[str, int]:
    with db.read() as conn:
        return dict(
            conn.execute(sa.select(jobs.c.status, sa.func.count()).group_by(jobs.c.status)).all()
        )


def test_four_processes_fire_each_of_1000_due_jobs_exactly_once(
    db: Database, database_url: str
) -> None:
    names = [f"worker-{n}" for n in range(4)]
    with workers(database_url, names, lease=60, slow_every=0) as procs:
        for proc in procs.values():
            finish(proc)
    assert statuses(db) == {"done": JOBS}
    total, distinct, per_worker = fired(db)
    assert total == distinct == JOBS  # each job's row exactly once: none lost, none twice
    assert len(per_worker) >= 2, per_worker  # SKIP LOCKED let them work side by side
    with db.read() as conn:
        attempts = conn.execute(sa.select(sa.func.max(jobs.c.attempts))).scalar_one()
    assert attempts == 1


def test_a_killed_worker_loses_no_job_and_doubles_none(db: Database, database_url: str) -> None:
    names = ["victim", "worker-1", "worker-2", "worker-3"]
    with workers(database_url, names, lease=2, slow_every=20) as procs:
        victim = procs["victim"]
        assert victim.stdout is not None
        assert victim.stdout.readline().startswith("slow ")  # inside a job, holding a batch
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        assert victim.returncode == -signal.SIGKILL
        for name in names[1:]:
            finish(procs[name])

    assert statuses(db) == {"done": JOBS}
    total, distinct, _ = fired(db)
    assert total == distinct == JOBS
    with db.read() as conn:
        reclaimed = conn.execute(
            sa.select(jobs.c.id, jobs.c.locked_by).where(jobs.c.attempts > 1)
        ).all()
        killed_effects = conn.execute(
            sa.text("SELECT job_id FROM fired WHERE worker = 'victim'")
        ).scalars()
        assert {job_id for job_id, _ in reclaimed}.isdisjoint(killed_effects)
    # the victim held claimed jobs when it died; the others took them over after the lease
    assert reclaimed and all(worker != "victim" for _, worker in reclaimed)
