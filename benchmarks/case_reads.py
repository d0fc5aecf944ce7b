"""Case reads against their same-run floor (issue 23): ``GET /api/v1/cases/{id}`` with an
API token and ``GET /health`` on the same ``accord serve --workers N``, with wrk on
loopback, alternating the two so that both see the same machine.

    python benchmarks/case_reads.py                     # SQLite, 2 workers, 16 connections
    python benchmarks/case_reads.py --backend postgresql --workers 4 --cases 100000
    python benchmarks/case_reads.py --json > benchmarks/results/DATE-case-reads.json
    python benchmarks/case_reads.py --profile 20        # py-spy one worker for 20 s
    python benchmarks/case_reads.py --before /tmp/old/src   # the older code, same run

Seeds the cases straight into the store (benchmarks/load/run.py's ``seed``), makes an
agent and an API token (cases:read), starts the server with the rate limit off, warms
every process up, then runs ``--rounds`` rounds of wrk on ``/health`` and on the case
reads (``--seconds`` each). Prints the medians over the rounds, the ratio of the case
reads to ``/health``, the server's CPU time per request (user + system of every server
process, from /proc: far steadier than throughput on a shared machine) and the load
average; ``--json`` prints one object. ``--before SRC`` serves the same database with an
older tree too (``PYTHONPATH=SRC``) and alternates between the two servers, so that a
change is measured against its baseline in the same run.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "load"))
from common import machine  # noqa: E402
from run import POSTGRES, seed, wait_ready  # noqa: E402  (benchmarks/load/run.py)

from accord.auth.members import MemberStore  # noqa: E402
from accord.auth.tokens import TokenStore  # noqa: E402
from accord.node import Node  # noqa: E402


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:  # ended meanwhile
            continue
        todo.extend(int(c) for c in children)
    return total


def wrk(
    base: str, work: Path, mode: str, seconds: int, connections: int, server: int = 0
) -> dict[str, Any]:
    report = work / f"{mode}.json"
    cpu_before = tree_cpu_seconds(server) if server else 0.0
    done = subprocess.run(
        [
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(HERE / "load" / "reads.lua"),
            base,
            "--",
            str(work),
        ],
        env={**os.environ, "WRK_REPORT": str(report), "MODE": mode},
        check=True,
        capture_output=True,
        text=True,
    )
    cpu = tree_cpu_seconds(server) - cpu_before if server else 0.0
    raw: dict[str, Any] = orjson.loads(report.read_bytes())
    bad = sum(raw["errors"].values())
    if bad or "status " in done.stderr:
        raise SystemExit(f"wrk {mode}: {raw['errors']} {done.stderr[:300]}")
    return {
        "requests_per_s": round(raw["requests"] / (raw["duration_us"] / 1e6), 1),
        "latency_ms": {k: round(v / 1000, 1) for k, v in raw["latency_us"].items()},
        "server_cpu_ms_per_request": round(1000 * cpu / max(1, raw["requests"]), 3),
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "requests_per_s": statistics.median(r["requests_per_s"] for r in runs),
        "p50_ms": statistics.median(r["latency_ms"]["p50"] for r in runs),
        "p99_ms": statistics.median(r["latency_ms"]["p99"] for r in runs),
        "server_cpu_ms_per_request": statistics.median(
            r["server_cpu_ms_per_request"] for r in runs
        ),
        "runs": [r["requests_per_s"] for r in runs],
    }


def profile(server_pid: int, seconds: int, base: str, work: Path, connections: int) -> str:
    """py-spy the worker processes while wrk reads cases; the collapsed stacks' path."""
    spy = shutil.which("py-spy") or os.environ.get("PY_SPY")
    if spy is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy, or PY_SPY=/path)")
    children = subprocess.run(
        ["pgrep", "-P", str(server_pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    # the worker that has served the most so far (not the resource tracker)
    target = max(children, key=lambda c: tree_cpu_seconds(int(c)), default=str(server_pid))
    out = work / "profile.txt"
    loader = subprocess.Popen(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds + 2}s",
            "-s",
            str(HERE / "load" / "reads.lua"),
            base,
            "--",
            str(work),
        ],
        env={**os.environ, "WRK_REPORT": str(work / "spy.json"), "MODE": "case"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        subprocess.run(
            [spy, "record", "--gil", "-p", target, "-d", str(seconds), "-f", "raw", "-o", str(out)],
            check=True,
            capture_output=True,
        )
    finally:
        loader.wait()
    return out.read_text()


def start_server(env: dict[str, str], workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = 18000 + secrets.randbelow(2000)
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "accord", "serve", "--port", str(port)),
            *("--workers", str(workers), "--sync-interval", "0", "--no-inline-worker"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, server)
    return server, base


def measure(
    servers: dict[str, tuple[subprocess.Popen[bytes], str]], work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Alternate /health and case reads on every server, ``args.rounds`` times."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        label: {"health": [], "case": []} for label in servers
    }
    for server, base in servers.values():  # warm every process up
        for mode in ("health", "case"):
            wrk(base, work, mode, 3, args.connections, server.pid)
    for _ in range(args.rounds):
        for label, (server, base) in servers.items():
            for mode in ("health", "case"):
                runs[label][mode].append(
                    wrk(base, work, mode, args.seconds, args.connections, server.pid)
                )
    out: dict[str, Any] = {}
    for label, found in runs.items():
        health, reads = median_of(found["health"]), median_of(found["case"])
        out[label] = {
            "health": health,
            "case_read": reads,
            "case_read_vs_health": round(reads["requests_per_s"] / health["requests_per_s"], 3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--postgres", default=POSTGRES, help="admin URL of a PostgreSQL server")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10, help="seconds of each wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, metavar="SRC", help="also serve an older src/")
    parser.add_argument("--profile", type=int, default=0, metavar="SECONDS")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    started = time.perf_counter()
    result: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join(["python", "benchmarks/case_reads.py", *(argv or sys.argv[1:])]),
        "backend": args.backend,
        "cases": args.cases,
        "workers": args.workers,
        "connections": args.connections,
        "seconds": args.seconds,
        "rounds": args.rounds,
    }
    work = Path(tempfile.mkdtemp(prefix="accord-reads-"))
    admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    name = f"accord_reads_{secrets.token_hex(4)}"
    url = None
    if args.backend == "postgresql":
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sa.make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        node = Node.init(work / "node", name="Northwind Broadband", database=url)
        ids = seed(node, args.cases)
        member = MemberStore(node.db).create(
            "tom", "correct horse battery", role="agent", display_name="Tom Baker"
        )
        token = TokenStore(node.db).create(member.id, "reads", ["cases:read"])
        (work / "cases.txt").write_text("\n".join(ids) + "\n")
        (work / "token.txt").write_text(token.token + "\n")
        node.close()
        env = {
            **os.environ,
            "ACCORD_HOME": str(work / "node"),
            "ACCORD_RATE_LIMIT_PER_MINUTE": "0",
            "ACCORD_LOG_LEVEL": "warning",
        }
        if url:
            env["ACCORD_DATABASE_URL"] = url
        servers["current"] = start_server(env, args.workers)
        if args.before is not None:  # the same database, served by the older code too
            old = {**env, "PYTHONPATH": str(args.before.resolve())}
            servers["before"] = start_server(old, args.workers)
        result["load_average_before"] = os.getloadavg()
        measured = measure(servers, work, args)
        result.update(measured.pop("current"))
        if "before" in measured:
            result["before"] = measured["before"]
            result["case_read_vs_before"] = round(
                result["case_read"]["requests_per_s"]
                / result["before"]["case_read"]["requests_per_s"],
                2,
            )
        result["load_average_after"] = os.getloadavg()
        if args.profile:
            server, base = servers["current"]
            stacks = profile(server.pid, args.profile, base, work, args.connections)
            saved = HERE / "results" / "case-reads-profile.txt"
            saved.write_text(stacks)
            result["profile"] = str(saved.relative_to(HERE.parent))
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait(timeout=30)
        if url:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
        shutil.rmtree(work, ignore_errors=True)
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return 0
    shown = [("", result)] + ([("before: ", result["before"])] if "before" in result else [])
    for prefix, part in shown:
        for label, r in (("/health", part["health"]), ("case reads", part["case_read"])):
            print(
                f"{prefix + label:<20} {r['requests_per_s']:>8,.0f} req/s  p50 {r['p50_ms']} ms"
                f"  p99 {r['p99_ms']} ms  server CPU {r['server_cpu_ms_per_request']} ms/request"
            )
        print(f"{prefix + 'ratio':<20} {part['case_read_vs_health']}")
    print(f"load average {result['load_average_before']} -> {result['load_average_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
