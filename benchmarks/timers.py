#!/usr/bin/env python
"""Accord durable timers: jobs fired per second by 1 and by 4 worker processes on PostgreSQL.

Run ``python benchmarks/timers.py`` (full: 20,000 due jobs, a few minutes), ``--quick``
(2,000, well under a minute) or ``--json`` (one JSON object on stdout, everything else on
stderr). Every repetition gets a fresh database (``accord_bench_<random>_<n>``, created
through the ``--postgres-url`` admin connection and dropped WITH (FORCE) afterwards, also
after an error), migrated exactly as a node's. See ``benchmarks/README.md`` ("Durable
timers") for what every figure means.

The same file is the worker process: ``timers.py --child URL NAME BATCH`` runs a
``Worker`` whose handler writes one row per job in the job's own transaction.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import common  # benchmarks/common.py, beside this script
import orjson
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Connection

from accord.jobs.queue import Job, JobQueue
from accord.jobs.worker import Worker
from accord.store import migrate
from accord.store.database import Database, redact
from accord.store.tables import jobs

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SCHEDULE_TXN = 1_000  # jobs scheduled per transaction while setting up
FIRED_TABLE = "CREATE TABLE bench_fired (job_id bigint NOT NULL, worker text NOT NULL)"

console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
Json = dict[str, Any]


@dataclass(frozen=True)
class Sizes:
    jobs: int  # due jobs per repetition
    reps: int  # repetitions per worker count, each on a fresh database
    workers: tuple[int, ...]
    batch: int  # Worker(batch=…): jobs claimed at a time


FULL = Sizes(jobs=20_000, reps=3, workers=(1, 2, 4), batch=20)
QUICK = Sizes(jobs=2_000, reps=3, workers=(1, 2, 4), batch=20)


def _now() -> datetime:
    return datetime.now(UTC)


def summary(samples: Sequence[float], digits: int = 1) -> Json:
    return {
        "median": round(statistics.median(samples), digits),
        "reps": len(samples),
        "min": round(min(samples), digits),
        "max": round(max(samples), digits),
    }


# -- the worker process ------------------------------------------------------------------


def child(url: str, name: str, batch: int) -> int:
    """Prints ``ready``, waits for a line on stdin, runs until nothing is due, reports."""
    db = Database(url)
    queue = JobQueue(db, now=_now)

    def fire(job: Job, conn: Connection) -> None:
        conn.execute(
            sa.text("INSERT INTO bench_fired (job_id, worker) VALUES (:job, :worker)"),
            {"job": job.id, "worker": name},
        )

    worker = Worker(db, queue, {"fire": fire}, worker_id=name, now=_now, batch=batch)
    with db.read() as conn:
        conn.execute(sa.text("SELECT 1"))
    print("ready", flush=True)
    sys.stdin.readline()
    cpu = time.process_time()
    ran = 0
    while claimed := worker.run_once():
        ran += claimed
    finished = time.time()  # wall clock, comparable with the parent's
    print(orjson.dumps({"ran": ran, "end": finished, "cpu": time.process_time() - cpu}).decode())
    db.dispose()
    return 0


# -- one repetition ----------------------------------------------------------------------


class Databases:
    """Fresh ``accord_bench_<random>_<n>`` databases, dropped WITH (FORCE) at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.token = secrets.token_hex(4)
        self.count = 0
        self.made: list[str] = []

    def new(self) -> tuple[str, str]:
        name = f"accord_bench_{self.token}_{self.count}"
        self.count += 1
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        url = sa.engine.make_url(self.admin_url).set(database=name)
        return name, url.render_as_string(hide_password=False)

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.made.remove(name)

    def server(self) -> Json:
        with self.admin.connect() as conn:

            def show(setting: str) -> str:
                return str(conn.exec_driver_sql(f"SHOW {setting}").scalar_one())

            return {
                "version": f"PostgreSQL {show('server_version')}",
                "fsync": show("fsync"),
                "synchronous_commit": show("synchronous_commit"),
            }

    def close(self) -> None:
        for name in list(self.made):
            self.drop(name)
        self.admin.dispose()


def repetition(databases: Databases, sizes: Sizes, workers: int) -> Json:
    load = round(os.getloadavg()[0], 2)
    name, url = databases.new()
    try:
        db = Database(url)
        try:
            migrate.upgrade(db)
            with db.write() as conn:
                conn.exec_driver_sql(FIRED_TABLE)
            scheduled_per_s = schedule(db, sizes.jobs)
            commits_per_s = bare_commits(db, min(sizes.jobs, 2_000)) if workers == 1 else None
        finally:
            db.dispose()
        fired = run_workers(url, workers, sizes.batch)
        db = Database(url)
        try:
            check(db, sizes.jobs)
        finally:
            db.dispose()
    finally:
        databases.drop(name)
    seconds = fired["seconds"]
    return {
        "seconds": seconds,
        "fired_per_s": sizes.jobs / seconds,
        "scheduled_per_s": scheduled_per_s,
        "bare_commits_per_s": commits_per_s,
        "per_worker": fired["per_worker"],
        "worker_cpu_ms_per_job": fired["cpu"] * 1000 / sizes.jobs,
        "load_1min": load,
    }


def schedule(db: Database, count: int) -> float:
    """``JobQueue.schedule`` of ``count`` due jobs, SCHEDULE_TXN per transaction."""
    queue = JobQueue(db, now=_now)
    due = _now() - timedelta(minutes=1)
    started = time.perf_counter()
    for start in range(0, count, SCHEDULE_TXN):
        with db.write() as conn:
            for i in range(start, min(count, start + SCHEDULE_TXN)):
                queue.schedule("fire", due, {"n": i}, conn=conn)
    return count / (time.perf_counter() - started)


def bare_commits(db: Database, count: int) -> float:
    """The ceiling: one process, one transaction per row of ``bench_fired``, nothing else."""
    insert = sa.text("INSERT INTO bench_fired (job_id, worker) VALUES (:job, 'baseline')")
    started = time.perf_counter()
    for i in range(count):
        with db.write() as conn:
            conn.execute(insert, {"job": -1 - i})
    rate = count / (time.perf_counter() - started)
    with db.write() as conn:
        conn.execute(sa.text("DELETE FROM bench_fired"))
    return rate


def run_workers(url: str, workers: int, batch: int) -> Json:
    """Start the processes, wait until all are ready, let them go, time until the last ends."""
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", url, f"worker-{n}", str(batch)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(workers)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline() != "ready\n":
                raise RuntimeError("a worker process did not start")
        go = time.time()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = []
        for proc in procs:
            out, _ = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"a worker process exited with {proc.returncode}")
            reports.append(orjson.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return {
        "seconds": max(r["end"] for r in reports) - go,
        "per_worker": sorted(r["ran"] for r in reports),
        "cpu": sum(r["cpu"] for r in reports),
    }


def check(db: Database, count: int) -> None:
    """Every job done, and exactly one row per job: nothing lost, nothing fired twice."""
    with db.read() as conn:
        done = conn.execute(
            sa.select(sa.func.count()).select_from(jobs).where(jobs.c.status == "done")
        ).scalar_one()
        rows, distinct = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT job_id) FROM bench_fired")
        ).one()
    if not done == rows == distinct == count:
        raise RuntimeError(f"{count} jobs: {done} done, {rows} rows, {distinct} distinct")


# -- report ------------------------------------------------------------------------------


def machine(server: Json) -> Json:
    return common.machine(server=server)


def print_table(results: Json) -> None:
    table = Table(
        title=f"Durable timers on {results['meta']['server']['version']}", title_justify="left"
    )
    for col in (
        "workers",
        "fired / s",
        "min",
        "max",
        "s (median)",
        "jobs per worker",
        "CPU ms/job",
    ):
        table.add_column(col, justify="right")
    for key, r in results["postgresql"].items():
        if not key.startswith("workers_"):
            continue
        table.add_row(
            str(r["workers"]),
            f"{r['fired_per_s']['median']:,.0f}",
            f"{r['fired_per_s']['min']:,.0f}",
            f"{r['fired_per_s']['max']:,.0f}",
            f"{r['seconds']['median']:.2f}",
            " / ".join(str(n) for n in r["per_worker_last"]),
            f"{r['worker_cpu_ms_per_job']['median']:.2f}",
        )
    console.print(table)
    console.print(
        f"scheduling (JobQueue.schedule, {SCHEDULE_TXN} per transaction): "
        f"{results['postgresql']['scheduled_per_s']['median']:,.0f} jobs/s; speed-up over "
        "1 worker: "
        + ", ".join(f"{n} workers {x}" for n, x in results["postgresql"]["speedup_vs_1"].items())
    )
    console.print(
        "bare one-row transactions, one process: "
        f"{results['postgresql']['bare_commits_per_s']['median']:,.0f}/s; "
        f"1 worker fires at {results['postgresql']['one_worker_vs_bare_commits']} of that"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="2,000 jobs instead of 20,000")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--postgres-url",
        default=DEFAULT_PG,
        help="admin connection used to CREATE and DROP the benchmark databases",
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("URL", "NAME", "BATCH"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.child:
        url, name, batch = args.child
        return child(url, name, int(batch))

    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    databases = Databases(args.postgres_url)
    try:
        try:
            server = databases.server()
        except sa.exc.OperationalError as exc:
            console.print(
                f"[red]cannot reach PostgreSQL at {redact(args.postgres_url)}:[/red] {exc.orig}"
            )
            return 2
        results: Json = {"meta": machine(server) | {"quick": args.quick, "sizes": asdict(sizes)}}
        pg: Json = {}
        scheduled: list[float] = []
        commits: list[float] = []
        for workers in sizes.workers:
            reps = []
            for rep in range(sizes.reps):
                console.print(
                    f"[dim]{workers} worker(s), repetition {rep + 1} of {sizes.reps}: "
                    f"{sizes.jobs:,} due jobs[/dim]"
                )
                reps.append(repetition(databases, sizes, workers))
            scheduled += [r["scheduled_per_s"] for r in reps]
            commits += [r["bare_commits_per_s"] for r in reps if r["bare_commits_per_s"]]
            pg[f"workers_{workers}"] = {
                "workers": workers,
                "jobs": sizes.jobs,
                "fired_per_s": summary([r["fired_per_s"] for r in reps], 0),
                "seconds": summary([r["seconds"] for r in reps], 2),
                "worker_cpu_ms_per_job": summary([r["worker_cpu_ms_per_job"] for r in reps], 3),
                "per_worker_last": reps[-1]["per_worker"],
                "load_average_1min": [r["load_1min"] for r in reps],
            }
        pg["scheduled_per_s"] = summary(scheduled, 0)
        pg["bare_commits_per_s"] = summary(commits, 0)
        one = pg["workers_1"]["fired_per_s"]["median"]
        pg["one_worker_vs_bare_commits"] = round(one / pg["bare_commits_per_s"]["median"], 2)
        pg["speedup_vs_1"] = {
            str(n): round(pg[f"workers_{n}"]["fired_per_s"]["median"] / one, 2)
            for n in sizes.workers
        }
        results["postgresql"] = pg
    finally:
        databases.close()
    results["meta"]["elapsed_s"] = round(time.perf_counter() - started, 1)
    results["meta"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print_table(results)
    console.print(f"[dim]{results['meta']['elapsed_s']} s in all[/dim]")
    if args.json:
        sys.stdout.write(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
