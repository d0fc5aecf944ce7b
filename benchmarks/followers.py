#!/usr/bin/env python
"""Followers of the case log: do they keep up with 1,000 events a second?

For each backend (SQLite, PostgreSQL), on a fresh node with a subscribed webhook and a
response target, in one run:

1. **Baseline**: the write rate with no follower running — a writer appends mixed events
   (a customer's message, a member's reply, a status label) to 50 cases as fast as it can.
2. **Lag**: the writer paces itself at ``--rate`` events a second for ``--seconds``, while
   the node's followers run in a thread as ``accord serve`` runs them (woken by each write).
   Every 20 ms a sampler reads the lowest follower mark; each event's lag is the time from
   its commit to the first sample that finds every follower past it. Median and p99.
3. **Cost**: each follower alone over a backlog of the same events, in µs per event.

``python benchmarks/followers.py`` (10 s at 1,000/s), ``--quick`` (4 s), ``--json`` (one
JSON object on stdout; tables on stderr), ``--backend sqlite|postgresql|all``. Goal: lag p99
under 2 s. See benchmarks/README.md ("Followers").
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common  # benchmarks/common.py, beside this script
import orjson
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from accord.jobs.follow import FollowerRunner
from accord.node import Node
from accord.service import settings, sla
from accord.service.negotiation import Actor
from accord.store.tables import events, follower_marks
from accord.wiring import Services

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CASES = 50
console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


def now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def fresh_node(backend: str, admin_url: str) -> Iterator[Node]:
    with tempfile.TemporaryDirectory(prefix="accord-bench-") as tmp:
        if backend == "sqlite":
            node = Node.init(Path(tmp) / "node", name="Northwind Broadband")
            try:
                yield node
            finally:
                node.close()
            return
        name = f"accord_bench_{secrets.token_hex(4)}_followers"
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        try:
            node = Node.init(Path(tmp) / "node", name="Northwind Broadband", database=url)
            try:
                yield node
            finally:
                node.close()
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()


def prepare(node: Node) -> tuple[Services, list[str]]:
    services = Services.build(node, now=now, inline_followers=False)
    services.webhooks.resolver = lambda _host, _port: ["93.184.216.34"]  # no real DNS
    services.webhooks.create(
        "https://crm.example.com/hooks", ["message.received"], created_by="bench"
    )
    settings.write(node.db, sla.SETTING, {"default": {"first_response": 60, "next_response": 240}})
    member = Actor(member="tom", via="api")
    cases = [
        services.negotiation.open_case(
            member,
            title=f"Case {i}",
            party_id=services.party_id,
            party_name=node.name,
            customer={"name": f"Customer {i}"},
        ).case_id
        for i in range(CASES)
    ]
    services.followers.catch_up()
    return services, cases


def write_one(services: Services, case_id: str, i: int) -> None:
    """One of three kinds, in turn: the customer writes, a member answers, a label."""
    kind = i % 3
    if kind == 0:
        services.negotiation.post_message(
            Actor(member="Priya", via="portal", party="customer", session="s1"),
            case_id,
            f"message {i}: the line is still down",
        )
    elif kind == 1:
        services.negotiation.post_message(Actor(member="tom", via="api"), case_id, f"reply {i}")
    else:
        services.negotiation.set_status(
            Actor(member="tom", via="api"), case_id, "waiting" if i % 2 else "open"
        )


def baseline(services: Services, cases: Sequence[str], count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        write_one(services, cases[i % len(cases)], i)
    return count / (time.perf_counter() - started)


def lowest_mark(services: Services) -> int:
    with services.node.db.read() as conn:
        return int(conn.execute(sa.select(sa.func.min(follower_marks.c.position))).scalar() or 0)


def last_pos(services: Services) -> int:
    with services.node.db.read() as conn:
        return int(conn.execute(sa.select(sa.func.max(events.c.pos))).scalar() or 0)


def lag_run(services: Services, cases: Sequence[str], rate: int, seconds: float) -> dict[str, Any]:
    services.followers.catch_up()
    stop = threading.Event()
    follow = threading.Thread(target=services.followers.run, args=(stop,), kwargs={"idle": 0.2})
    follow.start()
    written: list[tuple[int, float]] = []  # (pos, commit time)
    done_at: dict[int, float] = {}
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            mark, moment = lowest_mark(services), time.perf_counter()
            done_at.setdefault(mark, moment)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    total = int(rate * seconds)
    started = time.perf_counter()
    for i in range(total):
        due = started + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        write_one(services, cases[i % len(cases)], 10_000 + i)
        written.append((last_pos(services), time.perf_counter()))
        services.followers.wake()
    achieved = total / (time.perf_counter() - started)
    end = last_pos(services)
    deadline = time.perf_counter() + 120
    while lowest_mark(services) < end and time.perf_counter() < deadline:
        time.sleep(0.02)
    sampling.set()
    sampler.join()
    stop.set()
    follow.join()
    marks = sorted(done_at.items())
    lags = []
    for pos, at in written:
        seen = next((moment for mark, moment in marks if mark >= pos), None)
        if seen is not None:
            lags.append(max(0.0, seen - at))
    lags.sort()
    return {
        "target_rate": rate,
        "achieved_rate": round(achieved, 1),
        "events": total,
        "caught_up": lowest_mark(services) >= end,
        "lag_median_ms": round(statistics.median(lags) * 1000, 1) if lags else None,
        "lag_p99_ms": round(lags[int(len(lags) * 0.99) - 1] * 1000, 1) if lags else None,
        "lag_max_ms": round(lags[-1] * 1000, 1) if lags else None,
    }


def cost(services: Services, cases: Sequence[str], count: int) -> dict[str, float]:
    """µs per event for each follower alone over a backlog of ``count`` events."""
    services.followers.catch_up()
    start = last_pos(services)
    for i in range(count):
        write_one(services, cases[i % len(cases)], 50_000 + i)
    found = {}
    for follower in services.followers.runner.followers:
        with services.node.db.write() as conn:
            conn.execute(
                follower_marks.update()
                .where(follower_marks.c.name == follower.name)
                .values(position=start)
            )
        runner = FollowerRunner(services.node.db, [follower], now=now)
        began = time.perf_counter()
        runner.catch_up()
        found[follower.name] = round((time.perf_counter() - began) / count * 1e6, 1)
    return found


def measure(backend: str, admin_url: str, rate: int, seconds: float) -> dict[str, Any]:
    with fresh_node(backend, admin_url) as node:
        services, cases = prepare(node)
        try:
            base = baseline(services, cases, max(300, int(rate * seconds / 4)))
            lag = lag_run(services, cases, rate, seconds)
            per = cost(services, cases, 300)
        finally:
            services.close()
    return {"backend": backend, "baseline_write_rate": round(base, 1), **lag, "cost_us": per}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="4 s of writes instead of 10 s")
    parser.add_argument("--rate", type=int, default=1000, help="events a second to write")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--postgres-url", default=DEFAULT_PG, help="an admin connection")
    args = parser.parse_args(argv)
    seconds = 4.0 if args.quick else 10.0
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    results = []
    for backend in backends:
        console.print(f"[bold]{backend}[/bold]: {args.rate}/s for {seconds:.0f} s …")
        results.append(measure(backend, args.postgres_url, args.rate, seconds))
    table = Table(
        "backend",
        "baseline writes/s",
        "achieved/s",
        "lag median",
        "lag p99",
        "caught up",
        title="Followers of the case log",
    )
    for r in results:
        table.add_row(
            r["backend"],
            f"{r['baseline_write_rate']:,.0f}",
            f"{r['achieved_rate']:,.0f}",
            f"{r['lag_median_ms']} ms",
            f"{r['lag_p99_ms']} ms",
            "yes" if r["caught_up"] else "NO",
        )
    console.print(table)
    costs = Table("follower", *(r["backend"] for r in results), title="µs per event, alone")
    for name in results[0]["cost_us"]:
        costs.add_row(name, *(f"{r['cost_us'][name]:,.0f}" for r in results))
    console.print(costs)
    if args.json:
        sys.stdout.write(
            orjson.dumps({"machine": common.machine(), "results": results}).decode() + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
