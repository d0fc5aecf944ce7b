"""How soon the command line answers (issue 23): the median wall time of ``accord --help``,
``accord case show`` and ``accord serve`` (from start until ``/health`` answers, and until
``/ready`` does), each
against ``python -c pass`` (and ``import typer``, the floor of a Typer command) measured
in the same run, interleaved so that all see the same machine.

    python benchmarks/cli_startup.py                 # 15 runs of each, on a fresh node
    python benchmarks/cli_startup.py --runs 30 --json
    python benchmarks/cli_startup.py --no-serve      # the commands only
    python benchmarks/cli_startup.py --before /tmp/old/src   # also an older tree, same run

``--before SRC`` runs every command a second time with ``PYTHONPATH=SRC`` (e.g. the
``src`` of ``git archive <commit> src | tar -x -C /tmp/old``), interleaved with the
current tree, so that a change is measured against its baseline on the same machine
at the same moment; those figures carry the suffix ``@before``.

Each run is a new interpreter (``sys.executable -m accord``, as the ``accord`` script
runs it). ``case show`` reads a case of a node made for the run in a temporary data
directory (SQLite); ``serve`` starts on that node with the inline worker off and is
stopped as soon as ``/ready`` has answered (``/health`` answers first: the port is bound
before the node is built). ``--json`` prints one object: for each
figure the median, min, max and runs in seconds, and the ratios to ``python -c pass``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import machine  # noqa: E402

PY = sys.executable


CPU: dict[str, list[float]] = {}  # CPU seconds (user + system) of each run, by figure


def children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(argv: list[str], env: dict[str, str], name: str = "") -> float:
    """Wall seconds of one run; its CPU seconds go to ``CPU[name]``."""
    cpu = children_cpu()
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    if name:
        CPU.setdefault(name, []).append(children_cpu() - cpu)
    return wall


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_until_healthy(env: dict[str, str], timeout: float = 60.0) -> tuple[float, float]:
    """Seconds from starting ``accord serve`` until ``GET /health`` first answers 200 (the
    process is alive: since the port is bound first, while the node is still starting),
    and until ``GET /ready`` answers 200 (everything started, requests served at once)."""
    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen(
        [
            *(PY, "-m", "accord", "serve", "--port", str(port), "--sync-interval", "0"),
            *("--no-inline-worker", "--no-imap", "--log-level", "warning"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    health: float | None = None
    try:
        while time.perf_counter() - started < timeout:
            path = "/health" if health is None else "/ready"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    if r.status == 200:
                        if health is None:
                            health = time.perf_counter() - started
                            continue
                        return health, time.perf_counter() - started
            except OSError:  # refused, or 503 while starting (HTTPError is an OSError)
                if server.poll() is not None:
                    raise SystemExit("accord serve exited before answering") from None
                time.sleep(0.01)
        raise SystemExit(f"accord serve was not ready within {timeout} s")
    finally:
        server.terminate()
        server.wait(timeout=30)


def summary(runs: list[float]) -> dict[str, Any]:
    return {
        "median": round(statistics.median(runs), 4),
        "min": round(min(runs), 4),
        "max": round(max(runs), 4),
        "runs": len(runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--serve-runs", type=int, default=5)
    parser.add_argument("--no-serve", action="store_true")
    parser.add_argument("--before", type=Path, metavar="SRC", help="an older src/ to compare")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="accord-startup-"))
    env = {**os.environ, "ACCORD_HOME": str(work / "node"), "COLUMNS": "100"}
    env.pop("ACCORD_DATABASE_URL", None)
    result: dict[str, Any] = {
        "machine": machine(),
        "command": " ".join(["python", "benchmarks/cli_startup.py", *(argv or sys.argv[1:])]),
        "load_average_before": os.getloadavg(),
    }
    try:
        subprocess.run(
            [PY, "-m", "accord", "init", "--name", "Northwind Broadband"],
            env=env,
            check=True,
            capture_output=True,
        )
        made = subprocess.run(
            [PY, "-m", "accord", "case", "new", "Broadband contract"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        case_id = made.stdout.strip().splitlines()[-1]
        commands = {
            "python_pass": [PY, "-c", "pass"],
            "import_typer": [PY, "-c", "import typer, rich.console"],
            "accord_help": [PY, "-m", "accord", "--help"],
            "accord_case_show": [PY, "-m", "accord", "case", "show", case_id[:20]],
        }
        envs = {name: env for name in commands}
        if args.before is not None:
            old = {**env, "PYTHONPATH": str(args.before.resolve())}
            for name in ("accord_help", "accord_case_show"):
                commands[f"{name}@before"] = commands[name]
                envs[f"{name}@before"] = old
        times: dict[str, list[float]] = {name: [] for name in commands}
        for name, argv_ in commands.items():  # warm the file cache once
            timed(argv_, envs[name])
        for _ in range(args.runs):
            for name, argv_ in commands.items():
                times[name].append(timed(argv_, envs[name], name))
        if not args.no_serve:
            serving = {"": env}
            if args.before is not None:
                serving["@before"] = old
            for suffix in serving:
                times[f"accord_serve_to_health{suffix}"] = []
                times[f"accord_serve_to_ready{suffix}"] = []
            for _ in range(args.serve_runs):
                for suffix, serve_env in serving.items():
                    health, ready = serve_until_healthy(serve_env)
                    times[f"accord_serve_to_health{suffix}"].append(health)
                    times[f"accord_serve_to_ready{suffix}"].append(ready)
                times["python_pass"].append(timed(commands["python_pass"], env))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["seconds"] = {name: summary(runs) for name, runs in times.items()}
    # CPU time of the same runs: far steadier than wall time on a shared, loaded machine
    result["cpu_seconds"] = {name: summary(runs) for name, runs in CPU.items()}
    floor = result["seconds"]["python_pass"]["median"]
    result["vs_python_pass"] = {
        name: round(s["median"] / floor, 1) for name, s in result["seconds"].items()
    }
    goals = {"accord_help": 0.3, "accord_case_show": 0.5, "accord_serve_to_health": 1.5}
    result["goals"] = {
        name: {
            "goal_s": goal,
            "median_s": result["seconds"][name]["median"],
            "met": result["seconds"][name]["median"] <= goal,
        }
        for name, goal in goals.items()
        if name in result["seconds"]
    }
    result["load_average_after"] = os.getloadavg()
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return 0
    for name, s in result["seconds"].items():
        print(
            f"{name:<24} median {s['median']:.3f} s  (min {s['min']:.3f}, max {s['max']:.3f}, "
            f"{s['runs']} runs)  {result['vs_python_pass'][name]}x python -c pass"
        )
    print(f"load average {result['load_average_before']} -> {result['load_average_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
