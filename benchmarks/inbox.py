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
- with ``--before COMMIT`` (default: the commit before the agent's desk), the same pages
  of that commit's code over its own copy of the same cases, in the same run: its source
  is extracted with ``git archive`` into a temporary directory and runs in a child process
  that times each request it is sent; the warm requests alternate between the two, one
  by one, so a load that comes and goes on a shared machine weighs on both alike:
  ``before_*_ms`` and ``desk_ratio`` = ``inbox_ms / before_inbox_ms`` (the goal: at most
  1.5).
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


def prepare(node: Node, n: int, now: datetime) -> tuple[Any, TestClient, float]:
    """Seed ``node``, build its application and log in as a member (the inbox not drawn)."""
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
    return app, client, seeded


WARM = {
    "inbox_ms": "/?view=open",
    "mine_ms": "/?view=mine",
    "due_ms": "/?view=due",
    "breached_ms": "/?view=breached",
    "search_ms": "/?view=open&q=zephyrine",
}


def measure(
    url: str | None, n: int, now: datetime, other: subprocess.Popen[str] | None = None
) -> dict[str, float]:
    """The figures of this code; with ``other`` (a child running ``--serve``), the same
    figures of the child's code, each warm request alternating with the child's."""

    def theirs(path: str) -> float:
        assert other is not None and other.stdin is not None and other.stdout is not None
        other.stdin.write(path + "\n")
        other.stdin.flush()
        return float(other.stdout.readline())

    with tempfile.TemporaryDirectory() as tmp:
        node = Node.init(Path(tmp) / "node", name="Northwind", database=url)
        try:
            app, client, seeded = prepare(node, n, now)
            if other is not None:
                assert other.stdout is not None and other.stdout.readline().strip() == "ready"
            figures = {"cases": float(n), "seed_s": round(seeded, 1)}
            figures["inbox_cold_ms"] = timed(client, "/?view=open", repeats=1)
            figures["search_cold_ms"] = timed(client, "/?view=open&q=zephyrine", repeats=1)
            if other is not None:
                figures["before_inbox_cold_ms"] = theirs("/?view=open")
                figures["before_search_cold_ms"] = theirs("/?view=open&q=zephyrine")
            paths = dict(WARM)
            if "needs" in client.get("/?view=needs").text:  # the agent's desk is there
                paths["needs_ms"] = "/?view=needs"
            for key, path in paths.items():
                mine: list[float] = []
                before: list[float] = []
                for _ in range(5):
                    mine.append(timed(client, path, repeats=1))
                    if other is not None and key in WARM:
                        before.append(theirs(path))
                figures[key] = statistics.median(mine)
                if before:
                    figures[f"before_{key}"] = statistics.median(before)
            hits = client.get("/?view=resolved&q=zephyrine").text.count('class="case-link"')
            figures["search_hits_resolved"] = float(hits)
            app.state.services.close()
            return figures
        finally:
            node.close()


def serve(url: str | None, n: int, now: datetime) -> None:
    """The child's side: seed, say ``ready``, then time each path read from stdin."""
    with tempfile.TemporaryDirectory() as tmp:
        node = Node.init(Path(tmp) / "node", name="Northwind", database=url)
        try:
            app, client, _seeded = prepare(node, n, now)
            print("ready", flush=True)
            for line in sys.stdin:
                print(timed(client, line.strip(), repeats=1), flush=True)
            app.state.services.close()
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


@contextlib.contextmanager
def before(commit: str, args: argparse.Namespace, n: int) -> Iterator[subprocess.Popen[str]]:
    """A child process running ``commit``'s code (its ``src`` from ``git archive``, first
    on the path) over its own copy of the cases, timing the requests it is sent."""
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "archive", commit, "src"], cwd=common.ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        env = {**os.environ, "PYTHONPATH": str(Path(tmp) / "src")}
        child = [
            sys.executable,
            __file__,
            "--serve",
            "--cases",
            str(n),
            "--backend",
            args.backend,
            "--postgres-url",
            args.postgres_url,
        ]
        with subprocess.Popen(
            child, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        ) as process:
            try:
                yield process
            finally:
                assert process.stdin is not None
                process.stdin.close()
                process.wait(timeout=600)


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
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.cases or (10_000 if args.quick else 100_000)
    now = datetime.now(UTC).replace(microsecond=0)
    if args.serve:
        with database(args.backend, args.postgres_url) as url:
            serve(url, n, now)
        return 0
    with contextlib.ExitStack() as stack:
        other = stack.enter_context(before(args.before, args, n)) if args.before else None
        url = stack.enter_context(database(args.backend, args.postgres_url))
        console.print(
            f"inbox over {n:,} cases on {args.backend}"
            + (f", beside the code of {args.before}…" if args.before else "…")
        )
        big = measure(url, n, now, other)
    if args.before:
        big["desk_ratio"] = round(big["inbox_ms"] / big["before_inbox_ms"], 2)
    with database(args.backend, args.postgres_url) as url:
        small = measure(url, 1_000, now)
    big["inbox_1k_ms"] = small["inbox_ms"]
    big["ratio"] = round(big["inbox_ms"] / small["inbox_ms"], 1)
    result = {"benchmark": "inbox", "backend": args.backend, **common.machine(), **big}
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        for key, value in big.items():
            console.print(f"{key:>22}: {value:,.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
