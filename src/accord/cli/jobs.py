"""``accord worker`` and ``accord jobs``: run durable jobs and timers, and look at them.

Uses ``accord.cli.common``; registered by ``accord.cli.root``. The
worker is the node's ``accord.wiring.Services.worker()`` (its job kinds are listed in
``Services.handlers``); what a worker does and how many to run is in docs/operations.md.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from accord.cli import common
from accord.cli.common import DatabaseReadUrl, DatabaseUrl, DataDir, fail, node_services, open_node

jobs_app = typer.Typer(
    help="Durable jobs and timers: list them, retry a failed one.", no_args_is_help=True
)


class Status(StrEnum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def _now() -> datetime:
    return datetime.now(UTC)


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def worker(
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
    worker_id: Annotated[
        str | None,
        typer.Option("--id", help="Name of this worker in leases and logs (default: host:pid)."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Run the jobs that are due now, then exit.")
    ] = False,
    lease_seconds: Annotated[
        int,
        typer.Option(
            min=1, help="How long a claimed job is this worker's before others may take it."
        ),
    ] = 300,
    batch: Annotated[int, typer.Option(min=1, help="Jobs claimed at a time.")] = 20,
    log_level: Annotated[
        LogLevel, typer.Option(help="Least severe log messages shown (on stderr).")
    ] = LogLevel.info,
) -> None:
    """Run due jobs and timers until stopped (Ctrl-C or SIGTERM).

    Each job runs in the transaction that marks it done. Run several workers on
    PostgreSQL; on SQLite one is enough (`accord serve` runs one inline).
    """
    from accord.store.database import redact

    node = open_node(data, database)
    logging.basicConfig(
        level=log_level.value.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    services = node_services(node)
    runner = services.worker(
        worker_id=worker_id, lease=timedelta(seconds=lease_seconds), batch=batch
    )
    queue, name = runner.queue, runner.worker_id
    kinds = ", ".join(sorted(runner.handlers)) or "none"
    common.err.print(f"worker {escape(name)} on {redact(node.db.url)}; job kinds: {kinds}")
    followers, pushers = services.followers, services.pushers
    if once:
        followed = followers.catch_up()
        common.out.print(f"followers took {followed} events of the case log")
        pushed = pushers.catch_up()
        pushers.close()
        common.out.print(f"pushes to {len(pushed)} peers")
        ran = 0
        while (claimed := runner.run_once()) > 0:
            ran += claimed
            if claimed < batch:
                break
        counts = queue.counts()
        common.out.print(f"ran {ran} jobs; now " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        return
    services.prepare()  # callback timers missed while no worker ran, and the next digest
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    following = threading.Thread(
        target=followers.run, args=(stop,), name="accord-followers", daemon=True
    )
    following.start()
    pushing = threading.Thread(target=pushers.run, args=(stop,), name="accord-pushers", daemon=True)
    pushing.start()
    runner.run(stop)
    following.join(timeout=30)
    pushing.join(timeout=30)
    pushers.close()


def jobs_list(
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
    status: Annotated[Status | None, typer.Option(help="Only jobs in this state.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many jobs.")] = 100,
) -> None:
    """List jobs, soonest first, with the count in each state."""
    from accord.jobs.follow import marks
    from accord.jobs.queue import JobQueue

    node = open_node(data, database)
    queue = JobQueue(node.db, now=_now)
    table = Table("id", "kind", "key", "status", "run at (UTC)", "attempts", "worker", "error")
    for job in queue.find(status=status.value if status else None, kind=kind, limit=limit):
        table.add_row(
            str(job.id),
            escape(job.kind),
            escape(job.key or ""),
            job.status,
            _when(job.run_at),
            str(job.attempts),
            escape(job.locked_by or ""),
            escape(job.last_error or ""),
        )
    common.out.print(table)
    common.out.print(", ".join(f"{n} {s}" for s, n in queue.counts().items()))
    with node.db.read() as conn:
        followers = marks(conn)
    if followers:
        lag = Table("follower", "at", "behind", "failures", "next try (UTC)", "error")
        for mark in followers:
            lag.add_row(
                escape(mark.name),
                str(mark.position),
                str(mark.behind),
                str(mark.failures),
                _when(mark.retry_at) if mark.retry_at else "",
                escape(mark.last_error or ""),
            )
        common.out.print(lag)


def jobs_retry(
    job_id: Annotated[
        int, typer.Argument(metavar="ID", help="A failed job's id (see `accord jobs list`).")
    ],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Put a failed job back to pending, due now, with its attempts reset."""
    from accord.jobs.queue import JobError, JobQueue

    node = open_node(data, database)
    try:
        job = JobQueue(node.db, now=_now).retry(job_id)
    except JobError as exc:
        raise fail(str(exc)) from exc
    common.out.print(f"job {job.id} ({escape(job.kind)}) is pending again, due now")


jobs_app.command("list")(jobs_list)
jobs_app.command("retry")(jobs_retry)
