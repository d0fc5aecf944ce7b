#!/usr/bin/env python
"""Accord's inbox and outcome dashboard read from a PostgreSQL streaming replica, against
the same pages read from the primary, in the same run.

Run ``python benchmarks/replica.py`` (20,000 cases for each page; ``--quick``: 5,000;
``--cases N``). Unless ``--replica-url`` names a standby of the ``--postgres-url`` server
(any database: the benchmark's own is used on it), a hot standby is started on a free
loopback port as the tests start theirs (``tests/replica.py``: ``pg_basebackup -R`` from
the primary, then ``pg_ctl``; the primary must accept replication from loopback, which
``tools/test-services.sh`` sets up) and removed afterwards. Two fresh databases
(``accord_bench_replica_<random>_inbox`` / ``_dash``, dropped WITH (FORCE) afterwards)
are filled by the same bulk seeds as ``benchmarks/inbox.py`` and
``benchmarks/dashboard.py``. Each is then opened twice in this process, as two nodes over
the same data: one reading everything from the primary (no read URL), one with the
replica as its read URL (``ACCORD_DATABASE_READ_URL``, the default 5 s bound). After the
first (cold) pages and once the replica has replayed their writes, every warm page
alternates between the two request by request, the order swapped each round, so a load
that comes and goes weighs on both alike. Per page (medians of ``--reps``):

- ``primary_ms`` and ``replica_ms``, and ``ratio`` = ``replica_ms / primary_ms``;
- ``replica_served``: of the reads that may lag, how many the replica served
  (``Database.read_replica``), the rest being the primary's;

for ``inbox_open`` (``GET /?view=open``: tab counts and the all-open list), ``inbox_mine``,
``search`` (a word in one case in a hundred) and ``dashboard`` (``GET /dashboard``).
``route_ms`` / ``direct_ms``: choosing where a read goes (``read_replica()`` around
``SELECT 1``: the primary's position and the member's mark, then the replica's) against
``read()`` around the same statement, the cost of the rule on its own.

What each page still asks of the primary, per request, with and without the replica
(``primary_work``): the buffers it touched (``blks_hit + blks_read``), the rows it
returned or fetched and its transactions, from ``pg_stat_database`` for the benchmark's
database alone (other databases of the server do not count), over ``--work-requests``
requests of each node one after the other, each read once the server's backends have
flushed their statistics (``STATS_FLUSH_S`` after going idle). No timing in it.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common  # benchmarks/common.py, beside this script
import dashboard as dashboard_bench  # benchmarks/dashboard.py: its seed
import inbox as inbox_bench  # benchmarks/inbox.py: its seed
import orjson
import sqlalchemy as sa
from fastapi.testclient import TestClient
from rich.console import Console

sys.path.insert(0, str(common.ROOT))  # tests/replica.py starts the standby
from tests.replica import Replica, start_replica, stop_replica

from accord.api.app import create_app
from accord.api.auth import SESSION_COOKIE
from accord.auth.members import MemberStore
from accord.auth.sessions import SessionStore
from accord.node import Node
from accord.store.database import Database

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
STATS_FLUSH_S = 11.0  # PostgreSQL 15+: an idle backend flushes its statistics within 10 s
_WORK = sa.text(
    "SELECT blks_hit + blks_read, tup_returned + tup_fetched, xact_commit + xact_rollback "
    "FROM pg_stat_database WHERE datname = :name"
)
console = Console(stderr=True)


class Counted:
    """Counts where ``Database.read_replica`` sent each read of one node."""

    def __init__(self, db: Database) -> None:
        self.replica = self.primary = 0
        choose = db._replica_connection

        def counting() -> Any:
            found = choose()
            if found is None:
                self.primary += 1
            else:
                self.replica += 1
            return found

        db._replica_connection = counting  # type: ignore[method-assign]

    def take(self) -> tuple[int, int]:
        taken = self.replica, self.primary
        self.replica = self.primary = 0
        return taken


@contextlib.contextmanager
def two_nodes(url: str, read_url: str, now: datetime) -> Iterator[tuple[Node, Node]]:
    """The same database opened as a node without a read URL and as one with it."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "node"
        primary = Node.init(root, name="Northwind", database=url)
        replicated = Node.open(root, database=url, read_database=read_url)
        try:
            yield primary, replicated
        finally:
            replicated.close()
            primary.close()


def browser(node: Node, now: datetime, username: str) -> tuple[TestClient, Any]:
    """The node's application with ``username``'s session cookie, as a browser holds it."""
    app = create_app(node, rate_limit=0, now=lambda: now)
    member = MemberStore(node.db).by_username(username)
    assert member is not None
    session = SessionStore(node.db, now=lambda: now).create(member.id)
    client = TestClient(app)
    client.cookies.set(SESSION_COOKIE, session.token)
    return client, app


def once(client: TestClient, path: str) -> float:
    t0 = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - t0) * 1000
    assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return elapsed


def alternate(
    primary: TestClient, replicated: TestClient, counted: Counted, path: str, reps: int
) -> dict[str, Any]:
    """``path`` on both, request by request, the order swapped each round."""
    once(primary, path), once(replicated, path)  # warm: plans, templates
    counted.take()
    mine: list[float] = []
    theirs: list[float] = []
    for i in range(reps):
        if i % 2:
            theirs.append(once(replicated, path))
            mine.append(once(primary, path))
        else:
            mine.append(once(primary, path))
            theirs.append(once(replicated, path))
    served, not_served = counted.take()
    p, r = statistics.median(mine), statistics.median(theirs)
    return {
        "primary_ms": round(p, 1),
        "replica_ms": round(r, 1),
        "ratio": round(r / p, 2),
        "primary_min_max_ms": [round(min(mine), 1), round(max(mine), 1)],
        "replica_min_max_ms": [round(min(theirs), 1), round(max(theirs), 1)],
        "replica_served": f"{served} of {served + not_served}",
    }


class PrimaryWork:
    """What the primary did for one database, from its statistics (``_WORK``)."""

    def __init__(self, admin: sa.Engine, url: str) -> None:
        self.admin, self.name = admin, sa.make_url(url).database

    def now(self) -> tuple[int, int, int]:
        time.sleep(STATS_FLUSH_S)  # let every backend of the pools flush what it did
        with self.admin.connect() as conn:
            blocks, rows, xacts = conn.execute(_WORK, {"name": self.name}).one()
        return int(blocks), int(rows), int(xacts)

    def per_request(self, client: TestClient, path: str, requests: int) -> dict[str, float]:
        before = self.now()
        for _ in range(requests):
            once(client, path)
        after = self.now()
        keys = ("buffers", "rows", "transactions")
        return {
            k: round((a - b) / requests, 1) for k, a, b in zip(keys, after, before, strict=True)
        }


def primary_work(
    work: PrimaryWork, primary: TestClient, replicated: TestClient, path: str, requests: int
) -> dict[str, Any]:
    """Per request of ``path``: the primary's work without the replica and with it."""
    alone = work.per_request(primary, path, requests)
    helped = work.per_request(replicated, path, requests)
    return {
        "without_replica": alone,
        "with_replica": helped,
        "buffers_ratio": round(helped["buffers"] / alone["buffers"], 3)
        if alone["buffers"]
        else None,
    }


def route_cost(db: Database, reps: int) -> dict[str, float]:
    """``read_replica()`` against ``read()``, each around ``SELECT 1``."""

    def timed(enter: Callable[[], Any]) -> float:
        samples = []
        for _ in range(reps * 20):
            t0 = time.perf_counter()
            with enter() as conn:
                conn.exec_driver_sql("SELECT 1")
            samples.append((time.perf_counter() - t0) * 1000)
        return round(statistics.median(samples), 2)

    timed(db.read_replica)  # warm the pools
    return {"route_ms": timed(db.read_replica), "direct_ms": timed(db.read)}


def measure_inbox(
    url: str, replica: Replica, n: int, reps: int, now: datetime, work: PrimaryWork | None
) -> dict[str, Any]:
    with two_nodes(url, replica.url_for(url), now) as (primary, replicated):
        t0 = time.perf_counter()
        inbox_bench.seed(primary, n, now, random.Random(7))
        out: dict[str, Any] = {"cases": n, "seed_s": round(time.perf_counter() - t0, 1)}
        p, p_app = browser(primary, now, "m0")
        r, r_app = browser(replicated, now, "m0")
        counted = Counted(replicated.db)
        t0 = time.perf_counter()
        once(p, "/?view=open")  # derives every inbox row, on the primary
        once(p, "/?view=open&q=zephyrine")  # builds the search index, on the primary
        out["cold_s"] = round(time.perf_counter() - t0, 1)
        replica.catch_up()
        for key, path in (
            ("inbox_open", "/?view=open"),
            ("inbox_mine", "/?view=mine"),
            ("search", "/?view=open&q=zephyrine"),
        ):
            out[key] = alternate(p, r, counted, path, reps)
            console.print(f"{key:>12}: {out[key]}")
            if work is not None:
                out[key]["primary_work"] = primary_work(work, p, r, path, 5)
                console.print(f"{'':>12}  primary's work: {out[key]['primary_work']}")
        out.update(route_cost(replicated.db, reps))
        p_app.state.services.close()
        r_app.state.services.close()
        return out


def measure_dashboard(
    url: str, replica: Replica, n: int, reps: int, now: datetime, work: PrimaryWork | None
) -> dict[str, Any]:
    with two_nodes(url, replica.url_for(url), now) as (primary, replicated):
        t0 = time.perf_counter()
        dashboard_bench.seed(primary, n, now, random.Random(n))
        out: dict[str, Any] = {"cases": n, "seed_s": round(time.perf_counter() - t0, 1)}
        p, p_app = browser(primary, now, "m0")
        r, r_app = browser(replicated, now, "m0")
        counted = Counted(replicated.db)
        once(p, "/dashboard")
        replica.catch_up()
        out["dashboard"] = alternate(p, r, counted, "/dashboard", reps)
        console.print(f"{'dashboard':>12}: {out['dashboard']}")
        if work is not None:
            out["dashboard"]["primary_work"] = primary_work(work, p, r, "/dashboard", 5)
            console.print(f"{'':>12}  primary's work: {out['dashboard']['primary_work']}")
        p_app.state.services.close()
        r_app.state.services.close()
        return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 cases instead of 20,000")
    parser.add_argument("--cases", type=int, help="this many cases for each page")
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--postgres-url", default=DEFAULT_PG, help="an admin URL of the primary")
    parser.add_argument("--replica-url", help="a standby of that server (else one is started)")
    parser.add_argument(
        "--no-work", action="store_true", help="skip the primary's work (about 2 minutes)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n = args.cases or (5_000 if args.quick else 20_000)
    now = datetime.now(UTC).replace(microsecond=0)
    admin = sa.create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
    stem = f"accord_bench_replica_{secrets.token_hex(4)}"
    made: list[str] = []

    def fresh(suffix: str) -> str:
        name = f"{stem}_{suffix}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        made.append(name)
        return sa.make_url(args.postgres_url).set(database=name).render_as_string(False)

    started = None
    machine = common.machine(backend="postgresql")  # the load average at the start
    try:
        if args.replica_url:
            replica = Replica(primary_url=args.postgres_url, url=args.replica_url)
        else:
            console.print("starting a hot standby of the primary (pg_basebackup -R)…")
            replica = started = start_replica(args.postgres_url)
        console.print(f"the inbox over {n:,} cases, primary against replica…")
        url = fresh("inbox")
        work = None if args.no_work else PrimaryWork(admin, url)
        inbox = measure_inbox(url, replica, n, args.reps, now, work)
        console.print(f"the dashboard over {n:,} cases, primary against replica…")
        url = fresh("dash")
        work = None if args.no_work else PrimaryWork(admin, url)
        board = measure_dashboard(url, replica, n, args.reps, now, work)
    finally:
        with admin.connect() as conn:
            for name in made:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
        if started is not None:
            stop_replica(started)
    result = {
        "benchmark": "replica",
        **machine,
        "replica": "started" if started else "given",
        "inbox": inbox,
        "dashboard": board,
    }
    if args.json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        console.print_json(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
