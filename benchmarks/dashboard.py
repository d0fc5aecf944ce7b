#!/usr/bin/env python
"""Accord outcome dashboard: its queries and page over 100,000 cases on PostgreSQL.

Run ``python benchmarks/dashboard.py`` (100,000 cases; ``--quick``: 20,000) or with
``--json`` (one JSON object on stdout). A fresh database (``accord_bench_dash_<random>``,
made through the ``--postgres-url`` admin connection and dropped WITH (FORCE) afterwards)
is migrated as a node's and filled by bulk insert — ``cases`` rows and their up-to-date
``case_metrics`` rows over twelve weeks, four targets — never through HTTP. Then, each
``--reps`` times, median reported:

- ``stale_ms``: the staleness check every read starts with (``MetricsStore.stale``);
- ``cohort_ms``: loading the facts of every case as columns (one query);
- ``dashboard_ms``: ``Outcomes.dashboard`` — staleness, the cohort, every metric, each
  target's weekly series, backlog and ageing;
- ``page_ms``: ``GET /dashboard`` end to end in process (auth, the above, eleven SVG charts,
  Jinja2); the goal is under one second;
- ``page_template_ms``: the page filtered to one template version (a quarter of the cases);
- ``compare_ms``: ``GET /api/v1/compare`` of billing@v1 against billing@v2 (Mann-Whitney U
  on 25,000 against 25,000 cases per metric);
- ``page_1k_ms``: the page over a 1,000-case database made the same way, the baseline;
  ``ratio`` = ``page_ms / page_1k_ms``.
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import common  # benchmarks/common.py, beside this script
import orjson
import sqlalchemy as sa
from fastapi.testclient import TestClient
from rich.console import Console

from accord.api.app import create_app
from accord.api.auth import SESSION_COOKIE
from accord.auth.members import MemberStore
from accord.auth.sessions import SessionStore
from accord.auth.tokens import TokenStore
from accord.node import Node
from accord.outcomes.figures import Outcomes
from accord.outcomes.store import Filter
from accord.outcomes.targets import Targets
from accord.service import settings
from accord.store.tables import case_metrics, cases, template_cases

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GOAL_MS = 1000.0
CHUNK = 10_000
TEMPLATES = (("billing", 1), ("billing", 2), ("broadband", 1), (None, None))
CHANNELS = ("email", "phone", "webchat", "whatsapp")
console = Console(stderr=True)


def seed(node: Node, n: int, now: datetime, rng: random.Random) -> None:
    """``n`` cases over twelve weeks: three in four templated, one in ten still open."""
    start = now - timedelta(weeks=12)
    store = MemberStore(node.db)
    for i in range(8):
        store.create(f"m{i}", "benchmark password", role="lead", display_name=f"Member {i}")
    targets = Targets(node.db, now=lambda: now)
    targets.add(
        name="Agreement", metric="agreement", stat="median", op="<=", threshold=4, owner="m0"
    )
    targets.add(name="Transfers", metric="transfers", op="<=", threshold=1, owner="m1")
    targets.add(name="Callbacks", metric="callbacks_on_time", op=">=", threshold=98)
    targets.add(
        name="Response",
        metric="first_response",
        stat="p90",
        op="<=",
        threshold=1,
        template="billing",
        owner="m2",
    )
    settings.set_calendar(node.db, timezone="Europe/London", hours="mon-fri 09:00-17:30")
    with node.db.write() as conn:
        for offset in range(0, n, CHUNK):
            case_rows, metric_rows, template_rows = [], [], []
            for i in range(offset, min(n, offset + CHUNK)):
                case_id = "sha256:" + secrets.token_hex(32)
                opened = start + timedelta(seconds=rng.uniform(0, 12 * 7 * 86400))
                still_open = rng.random() < 0.1
                name, version = rng.choice(TEMPLATES)
                promised = rng.choice((0, 1, 1, 2))
                case_rows.append(
                    {
                        "case_id": case_id,
                        "title": f"Case {i}",
                        "state": b"{}",
                        "state_hash": "sha256:" + "0" * 64,
                        "auth_ids": b"[]",
                        "event_count": 14,
                        "last_depth": 14,
                        "resolved": not still_open,
                        "opened_at": opened.isoformat(),
                        "updated_at": now,
                    }
                )
                agreement = int(rng.lognormvariate(9, 0.8))
                resolution = None if still_open else agreement + int(rng.lognormvariate(11, 0.6))
                metric_rows.append(
                    {
                        "case_id": case_id,
                        "event_count": 14,
                        "marks": 0,
                        "template": name,
                        "template_version": version,
                        "channel": rng.choice(CHANNELS),
                        "member_id": rng.randint(1, 8),
                        "team_id": rng.randint(1, 3),
                        "opened_at": opened,
                        "first_response_at": opened,
                        "first_agreement_at": opened,
                        "resolved_at": None if still_open else opened + timedelta(days=2),
                        "first_response_s": int(rng.expovariate(1 / 1800)),
                        "agreement_s": agreement,
                        "resolution_s": resolution,
                        "transfers": rng.choice((0, 0, 1, 2, 3)),
                        "repeats": rng.choice((0, 0, 0, 1)),
                        "callbacks_promised": promised,
                        "callbacks_kept": sum(rng.random() < 0.9 for _ in range(promised)),
                        "activities_promised": 1,
                        "activities_kept": int(rng.random() < 0.85),
                        "rounds": rng.choice((1, 1, 2, 3)),
                        "reopenings": int(rng.random() < 0.05),
                        "rating": None if still_open else float(rng.choice((2, 3, 4, 4, 5, 5))),
                        "deviations": None if name is None else rng.choice((0, 0, 0, 1, 2)),
                        "computed_at": now,
                    }
                )
                if name is not None:
                    template_rows.append({"case_id": case_id, "name": name, "version": version})
            conn.execute(cases.insert(), case_rows)
            conn.execute(case_metrics.insert(), metric_rows)
            if template_rows:
                conn.execute(template_cases.insert(), template_rows)
    with node.db.write() as conn:
        conn.exec_driver_sql("ANALYZE")


def timed(reps: int, fn: Callable[[], Any]) -> dict[str, Any]:
    fn()  # warm: imports, plans, template compilation
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return {
        "median": round(statistics.median(samples), 1),
        "reps": reps,
        "min": round(min(samples), 1),
        "max": round(max(samples), 1),
    }


def measure(url: str, n: int, reps: int, full: bool) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory() as tmp:
        node = Node.init(Path(tmp) / "node", name="Bench", database=url)
        try:
            t0 = time.perf_counter()
            seed(node, n, now, random.Random(n))
            seeded_s = time.perf_counter() - t0
            app = create_app(node, now=lambda: now, rate_limit=0)
            member = MemberStore(node.db).by_username("m0")
            assert member is not None
            token = TokenStore(node.db, now=lambda: now).create(member.id, "b", ["cases:read"])
            headers = {"Authorization": f"Bearer {token.token}"}  # for the API
            # the page is the web app's: a member's session, as a browser holds it
            session = SessionStore(node.db, now=lambda: now).create(member.id)
            outcomes = Outcomes(node.db, node.key.public, now=lambda: now)
            out: dict[str, Any] = {"cases": n, "seed_s": round(seeded_s, 1)}
            with TestClient(app) as client:
                client.cookies.set(SESSION_COOKIE, session.token)

                def page(query: str = "") -> None:
                    response = client.get(f"/dashboard{query}")
                    assert response.status_code == 200, response.text[:300]

                out["page_ms"] = timed(reps, page)
                if full:
                    out["stale_ms"] = timed(reps, outcomes.store.stale)
                    out["cohort_ms"] = timed(reps, lambda: outcomes.store.cohort(Filter()))
                    out["dashboard_ms"] = timed(reps, lambda: outcomes.dashboard(Filter()))
                    out["page_template_ms"] = timed(reps, lambda: page("?template=billing@v2"))

                    def compare() -> None:
                        r = client.get(
                            "/api/v1/compare?a=template:billing@v1&b=template:billing@v2",
                            headers=headers,
                        )
                        assert r.status_code == 200, r.text[:300]

                    out["compare_ms"] = timed(reps, compare)
            return out
        finally:
            node.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 cases instead of 100,000")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    n = 20_000 if args.quick else 100_000
    admin = sa.create_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def fresh() -> str:
        name = f"accord_bench_dash_{secrets.token_hex(4)}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        made.append(name)
        return (
            sa.engine.make_url(args.postgres_url)
            .set(database=name)
            .render_as_string(hide_password=False)
        )

    try:
        console.print(f"seeding {n:,} cases and measuring…")
        big = measure(fresh(), n, args.reps, full=True)
        console.print("baseline: 1,000 cases…")
        small = measure(fresh(), 1_000, args.reps, full=False)
    finally:
        with admin.connect() as conn:
            for name in made:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    result = {
        "machine": common.machine(backend="postgresql"),
        "large": big,
        "page_1k_ms": small["page_ms"],
        "ratio": round(big["page_ms"]["median"] / small["page_ms"]["median"], 1),
        "goal": {"page_ms_below": GOAL_MS, "met": big["page_ms"]["median"] < GOAL_MS},
    }
    if args.json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        console.print_json(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
