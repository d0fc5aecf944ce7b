"""One worker process for the multi-process tests: ``python process_worker.py URL NAME
LEASE_SECONDS SLOW_EVERY``.

Its handler inserts ``(job_id, NAME)`` into ``fired`` in the job's transaction; jobs whose
id is a multiple of SLOW_EVERY (0: none) first announce themselves on stdout and spend
50 ms in ``pg_sleep``. Prints ``ready``, waits for a line on stdin, then runs until no job
is pending or running.
"""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.jobs.queue import Job, JobQueue
from accord.jobs.worker import Worker
from accord.store.database import Database


def main(url: str, name: str, lease_seconds: float, slow_every: int) -> None:
    db = Database(url)
    queue = JobQueue(db, now=lambda: datetime.now(UTC))

    def fire(job: Job, conn: Connection) -> None:
        if slow_every and job.id % slow_every == 0:
            print(f"slow {job.id}", flush=True)
            conn.execute(sa.text("SELECT pg_sleep(0.05)"))
        conn.execute(
            sa.text("INSERT INTO fired (job_id, worker) VALUES (:job, :worker)"),
            {"job": job.id, "worker": name},
        )

    worker = Worker(
        db,
        queue,
        {"fire": fire},
        worker_id=name,
        now=lambda: datetime.now(UTC),
        lease=timedelta(seconds=lease_seconds),
    )
    stop = threading.Event()

    def until_all_finished() -> None:
        while not stop.wait(0.05):
            counts = queue.counts()
            if counts["pending"] + counts["running"] == 0:
                stop.set()

    with db.read() as conn:
        conn.execute(sa.text("SELECT 1"))
    print("ready", flush=True)
    sys.stdin.readline()
    threading.Thread(target=until_all_finished, daemon=True).start()
    worker.run(stop, idle=0.05)
    db.dispose()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
