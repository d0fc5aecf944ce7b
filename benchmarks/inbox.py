#!/usr/bin/env python
"""Accord members' inbox and search over many cases, on PostgreSQL or SQLite.

Run ``python benchmarks/inbox.py`` (100,000 cases on PostgreSQL; ``--quick``: 10,000;
``--backend sqlite``). A throwaway node is migrated and filled by bulk insert: ``cases``
rows with a small real state (two parties, a due activity on one case in five, the last
message), one customer message event per case and one owner each among eight members.
Then, through the real application (login, session cookie) and medians of 5:

- ``inbox_cold_ms``: the first inbox page, which derives every case's inbox row;
- ``search_cold_ms``: the first search, which builds the full-text index;
- ``inbox_ms`` / ``mine_ms`` / ``due_ms`` / ``breached_ms``: views, warm (tab counts included);
- ``search_ms``: a search for a word in one case in a hundred, warm;
- ``inbox_1k_ms``: the all-open view over 1,000 cases made the same way (the baseline);
  ``ratio`` = ``inbox_ms / inbox_1k_ms``;
- ``needs_ms``: the needs-reply view (issue 20: every row with its needs-reply state,
  unread mark, preview and nearest due time);
- with ``--before COMMIT`` (default: the commit before the agent's desk), the same
  measures of that commit's code over the same number of cases, in the same run (its
  source is extracted with ``git archive`` into a temporary directory and run in a child
  process): ``before_inbox_ms`` and ``desk_ratio`` = ``inbox_ms / before_inbox_ms`` (the
  goal: at most 1.5).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import common  # benchmarks/common.py, beside this script
import orjson
import sqlalchemy as sa
from fastapi.testclient import TestClient
from rich.console import Console

from accord.api.app import create_app
from accord.auth.members import MemberStore
from accord.node import Node
from accord.store.tables import case_owners, cases, events

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CHUNK = 5_000
BEFORE_DESK = "b0b72c6"  # the last commit before the agent's desk (issue 20)
WORDS = ("router", "refund", "engineer", "invoice", "outage", "modem", "contract", "upgrade")
console = Console(stderr=True)


def seed(node: Node, n: int, now: datetime, rng: random.Random) -> None:
    store = MemberStore(node.db)
    members = [
        store.create(f"m{i}", "benchmark password", role="agent", display_name=f"Member {i}")
        for i in range(8)
    ]
    ours = node.key.public
    with node.db.write() as conn:
        for offset in range(0, n, CHUNK):
            case_rows: list[dict[str, Any]] = []
            event_rows: list[dict[str, Any]] = []
            owner_rows: list[dict[str, Any]] = []
            for i in range(offset, min(n, offset + CHUNK)):
                case_id = "sha256:" + secrets.token_hex(32)
                event_id = "sha256:" + secrets.token_hex(32)
                opened = now - timedelta(seconds=rng.uniform(0, 12 * 7 * 86400))
                resolved = rng.random() < 0.7
                activities, progress = {}, {}
                if rng.random() < 0.2:
                    due = now + timedelta(hours=rng.uniform(-48, 96))
                    activities["call"] = {
                        "title": "Call back",
                        "owner": "org",
                        "kind": "callback",
                        "due": due.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                    progress["call"] = {"state": "agreed"}
                word = WORDS[i % len(WORDS)] if i % 100 else "zephyrine"
                text = f"Case {i}: my {word} has stopped working since {opened:%A}."
                by = "org" if rng.random() < 0.4 else "customer"
                speaker = "Member 0" if by == "org" else f"Customer {i}"
                state = {
                    "case": case_id,
                    "title": f"Case {i} about the {word}",
                    "parties": {
                        "org": {
                            "id": "org",
                            "name": "Northwind",
                            "kind": "organisation",
                            "node": ours,
                        },
                        "customer": {
                            "id": "customer",
                            "name": f"Customer {i}",
                            "kind": "person",
                            "hosted_by": ours,
                        },
                    },
                    "terms": {
                        "version": 1 if activities else 0,
                        "data": {},
                        "activities": activities,
                    },
                    "progress": progress,
                    "proposals": {},
                    "resolved": resolved,
                    "events": 3,
                    "last_message": {
                        "event": event_id,
                        "by": by,
                        "time": opened.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    },
                }
                case_rows.append(
                    {
                        "case_id": case_id,
                        "title": state["title"],
                        "state": orjson.dumps(state),
                        "state_hash": "sha256:" + "0" * 64,
                        "auth_ids": b"[]",
                        "event_count": 3,
                        "last_depth": 3,
                        "resolved": resolved,
                        "opened_at": opened.isoformat(),
                        "updated_at": opened,
                    }
                )
                for kind, body in (
                    ("case.opened", {"title": state["title"]}),
                    ("message.posted", {"text": text}),
                ):
                    event_rows.append(
                        {
                            "case_id": case_id,
                            "event_id": event_id
                            if kind == "message.posted"
                            else "sha256:" + secrets.token_hex(32),
                            "author": ours,
                            "seq": 1 if kind == "case.opened" else 2,
                            "depth": 1 if kind == "case.opened" else 2,
                            "type": kind,
                            "raw": orjson.dumps(
                                {
                                    "author": {"node": ours, "member": speaker},
                                    "time": state["last_message"]["time"],
                                    "body": body,
                                }
                            ),
                            "sig": "x" * 86,
                            "clock": b"{}",
                            "auth": "",
                            "party": by if kind == "message.posted" else "org",
                            "received_at": opened,
                        }
                    )
                owner_rows.append(
                    {
                        "case_id": case_id,
                        "member_id": members[i % 8].id,
                        "assigned_at": opened,
                        "transfers": 0,
                    }
                )
            conn.execute(cases.insert(), case_rows)
            conn.execute(events.insert(), event_rows)
            conn.execute(case_owners.insert(), owner_rows)


def timed(client: TestClient, path: str, repeats: int = 5) -> float:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return statistics.median(samples)


def measure(url: str | None, n: int, now: datetime) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        node = Node.init(Path(tmp) / "node", name="Northwind", database=url)
        try:
            t0 = time.perf_counter()
            seed(node, n, now, random.Random(7))
            seeded = time.perf_counter() - t0
            app = create_app(node, rate_limit=0, now=lambda: now)
            client = TestClient(app)
            form = client.get("/login").text  # the login form's CSRF token, as a browser
            token = re.search(r'name="csrf" value="([^"]+)"', form)
            assert token, "no CSRF token on the login form"
            login = client.post(
                "/login",
                data={"username": "m0", "password": "benchmark password", "csrf": token[1]},
                follow_redirects=False,  # the inbox after login would be the cold one
            )
            assert login.status_code == 303
            figures = {"cases": float(n), "seed_s": round(seeded, 1)}
            figures["inbox_cold_ms"] = timed(client, "/?view=open", repeats=1)
            figures["search_cold_ms"] = timed(client, "/?view=open&q=zephyrine", repeats=1)
            figures["inbox_ms"] = timed(client, "/?view=open")
            figures["mine_ms"] = timed(client, "/?view=mine")
            figures["due_ms"] = timed(client, "/?view=due")
            figures["breached_ms"] = timed(client, "/?view=breached")
            if "needs" in client.get("/?view=needs").text:  # the agent's desk is there
                figures["needs_ms"] = timed(client, "/?view=needs")
            figures["search_ms"] = timed(client, "/?view=open&q=zephyrine")
            hits = client.get("/?view=resolved&q=zephyrine").text.count('class="case-link"')
            figures["search_hits_resolved"] = float(hits)
            app.state.services.close()
            return figures
        finally:
            node.close()


@contextlib.contextmanager
def database(backend: str, admin_url: str) -> Iterator[str | None]:
    """A fresh PostgreSQL database (dropped after), or None: the node's own SQLite file."""
    if backend == "sqlite":
        yield None
        return
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"accord_inbox_{secrets.token_hex(5)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def before(commit: str, args: argparse.Namespace, n: int) -> dict[str, float]:
    """The same measures of ``commit``'s code: its ``src`` from ``git archive``, run by
    this script in a child process (``--only-big``) with it first on the path."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "archive", commit, "src"], cwd=common.ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        env = {**os.environ, "PYTHONPATH": str(Path(tmp) / "src")}
        child = [
            sys.executable,
            __file__,
            "--only-big",
            "--cases",
            str(n),
            "--backend",
            args.backend,
            "--postgres-url",
            args.postgres_url,
            "--json",
        ]
        done = subprocess.run(child, env=env, capture_output=True, check=True)
    figures: dict[str, float] = orjson.loads(done.stdout)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 cases")
    parser.add_argument("--cases", type=int, help="this many cases (instead of 100,000)")
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    parser.add_argument(
        "--before", default=BEFORE_DESK, help="also measure this commit's code ('' for none)"
    )
    parser.add_argument("--only-big", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.cases or (10_000 if args.quick else 100_000)
    now = datetime.now(UTC).replace(microsecond=0)
    with database(args.backend, args.postgres_url) as url:
        console.print(f"inbox over {n:,} cases on {args.backend}…")
        big = measure(url, n, now)
    if args.only_big:
        print(orjson.dumps(big).decode())
        return 0
    with database(args.backend, args.postgres_url) as url:
        small = measure(url, 1_000, now)
    big["inbox_1k_ms"] = small["inbox_ms"]
    big["ratio"] = round(big["inbox_ms"] / small["inbox_ms"], 1)
    if args.before:
        console.print(f"the same with the code of {args.before}…")
        old = before(args.before, args, n)
        for key in ("inbox_ms", "mine_ms", "due_ms", "breached_ms", "search_ms"):
            big[f"before_{key}"] = old[key]
        big["desk_ratio"] = round(big["inbox_ms"] / old["inbox_ms"], 2)
    result = {"benchmark": "inbox", "backend": args.backend, **common.machine(), **big}
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        for key, value in big.items():
            console.print(f"{key:>22}: {value:,.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
