"""Load test: mixed traffic against ``accord serve --workers N`` on PostgreSQL (and the
SQLite default) holding many cases, with wrk on loopback, bounded in time.

    python benchmarks/load/run.py                       # 100,000 cases, PostgreSQL, 4 workers
    python benchmarks/load/run.py --backend sqlite
    python benchmarks/load/run.py --cases 10000 --duration 20 --json

Seeds the cases straight into the store (signed ``case.opened`` events in batches, not
through HTTP), makes a member and an API token, starts the server with the rate limit
off, and runs wrk twice: the mix (70 % case reads, 20 % messages posted, 10 % proposals)
and reads alone. Prints requests per second and latency percentiles; ``--json`` prints
one object for benchmarks/results/.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import machine

from accord.auth.members import MemberStore
from accord.auth.tokens import TokenStore
from accord.core.events import create_event
from accord.node import Node
from accord.service.negotiation import Negotiation

HERE = Path(__file__).resolve().parent
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def seed(node: Node, count: int, batch: int = 2000) -> list[str]:
    """``count`` cases, each opened by this node with a hosted customer."""
    negotiation = Negotiation(node.cases, node.key)
    stamp = datetime.now(UTC)
    ids: list[str] = []
    started = time.perf_counter()
    for start in range(0, count, batch):
        events = []
        for i in range(start, min(count, start + batch)):
            body = negotiation.opening(
                title=f"Broadband case {i}",
                party_id="northwind",
                party_name="Northwind Broadband",
                customer={"id": "customer", "name": f"Customer {i}", "kind": "person"},
            )
            events.append(
                create_event(
                    node.key,
                    case=None,
                    type="case.opened",
                    member="Seeder",
                    seq=1,
                    prev=None,
                    parents=[],
                    depth=1,
                    time=stamp,
                    body=body,
                    via="api",
                )
            )
        node.cases.append(events)
        ids.extend(e.case for e in events)
        print(
            f"seeded {len(ids):,} cases ({len(ids) / (time.perf_counter() - started):,.0f}/s)",
            file=sys.stderr,
        )
    return ids


def wait_ready(base: str, server: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None:
            raise SystemExit("accord serve exited")
        time.sleep(0.3)
    raise SystemExit("accord serve did not become ready")


def wrk(base: str, work: Path, seconds: int, connections: int, reads_only: bool) -> dict[str, Any]:
    report = work / ("reads.json" if reads_only else "mixed.json")
    env = {**os.environ, "WRK_REPORT": str(report), "READS_ONLY": "1" if reads_only else "0"}
    subprocess.run(
        [
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(HERE / "mixed.lua"),
            base,
            "--",
            str(work),
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    raw: dict[str, Any] = orjson.loads(report.read_bytes())
    seconds_taken = raw["duration_us"] / 1e6
    lat = raw["latency_us"]
    return {
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / seconds_taken, 1),
        "latency_ms": {k: round(v / 1000, 1) for k, v in lat.items()},
        "errors": raw["errors"],
        "connections": connections,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--postgres", default=POSTGRES, help="admin URL of a PostgreSQL server")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--duration", type=int, default=60, help="seconds of the mixed run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    result: dict[str, Any] = {"machine": machine(), "cases": args.cases, "backend": args.backend}
    work = Path(tempfile.mkdtemp(prefix="accord-load-"))
    admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    name = f"accord_load_{secrets.token_hex(4)}"
    url = None
    if args.backend == "postgresql":
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sa.make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
    server = None
    try:
        node = Node.init(work / "node", name="Northwind Broadband", database=url)
        started = time.perf_counter()
        ids = seed(node, args.cases)
        result["seed_seconds"] = round(time.perf_counter() - started, 1)
        member = MemberStore(node.db).create(
            "tom", "correct horse battery", role="agent", display_name="Tom Baker"
        )
        token = TokenStore(node.db).create(member.id, "load", ["cases:read", "cases:write"])
        (work / "cases.txt").write_text("\n".join(ids) + "\n")
        (work / "token.txt").write_text(token.token + "\n")
        node.close()
        port = 18000 + secrets.randbelow(2000)
        env = {
            **os.environ,
            "ACCORD_HOME": str(work / "node"),
            "ACCORD_RATE_LIMIT_PER_MINUTE": "0",
            "ACCORD_LOG_LEVEL": "warning",
        }
        if url:
            env["ACCORD_DATABASE_URL"] = url
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "accord",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--sync-interval",
                "0",
                "--no-inline-worker",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, server)
        result["load_average_before"] = os.getloadavg()
        wrk(base, work, 5, args.connections, reads_only=True)  # warm every process up
        result["mixed"] = wrk(base, work, args.duration, args.connections, reads_only=False)
        result["reads"] = wrk(base, work, max(10, args.duration // 2), 8, reads_only=True)
        result["load_average_after"] = os.getloadavg()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if url:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return 0
    for label in ("mixed", "reads"):
        r = result[label]
        lat = r["latency_ms"]
        print(
            f"{label:<6} {r['requests_per_s']:>8,.0f} req/s  p50 {lat['p50']} ms"
            f"  p95 {lat['p95']} ms"
            f"  p99 {lat['p99']} ms  ({r['connections']} connections, errors {r['errors']})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
