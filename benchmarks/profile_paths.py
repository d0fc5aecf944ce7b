#!/usr/bin/env python
"""cProfile the hot paths that ``run.py`` measures, on SQLite, and print where time goes.

``python benchmarks/profile_paths.py [--path batch|import|append|read|all] [--top 25]``
prints, per path, the functions with the most own time (tottime) and the Accord
functions with the most cumulative time. With ``--save DIR`` it also writes the raw
``.pstats`` files for snakeviz or ``python -m pstats``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # the benchmark module next to this file
import sqlalchemy as sa

import accord
from accord.core.crypto import NodeKey
from accord.core.events import parse_wire
from accord.store import migrate
from accord.store.cases import CaseStore
from accord.store.database import Database

PATHS = ("batch", "import", "append", "read", "proposals", "late")


def fresh_store(tmp: Path, label: str) -> CaseStore:
    db = Database(f"sqlite:///{tmp / label}.db")
    migrate.upgrade(db)
    return CaseStore(db)


def report(name: str, profile: cProfile.Profile, top: int, save: Path | None) -> None:
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        profile.dump_stats(save / f"{name}.pstats")
    src = str(Path(accord.__file__).resolve().parent.parent) + "/"
    site = str(Path(sa.__file__).resolve().parent.parent) + "/"
    views: tuple[tuple[str, tuple[str | int, ...], str], ...] = (
        ("tottime", (top,), "own time, all functions"),
        ("cumulative", ("/accord/", top), "cumulative time, Accord functions"),
    )
    for sort, restrictions, title in views:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(sort).print_stats(*restrictions)
        lines = [line for line in out.getvalue().splitlines() if line.strip()]
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        if start == 0:
            continue
        total = next((line for line in lines if "function calls" in line), "").strip()
        print(f"\n== {name}: {title} ({total}) ==", file=sys.stderr)
        for line in lines[start : start + 1 + top]:
            print(line.replace(src, "").replace(site, ""), file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--path", choices=(*PATHS, "all"), default="all")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--save", type=Path, default=None, help="write .pstats files here")
    args = parser.parse_args()
    chosen = PATHS if args.path == "all" else (args.path,)
    a, b = NodeKey.generate(), NodeKey.generate()
    count = max(args.events, 1_000)
    history = run.build_history(a, b, count, nonce="profile", advance=lambda n: None)
    lines = run.bundle_lines(history, count)

    with tempfile.TemporaryDirectory(prefix="accord-profile-") as tmp_name:
        tmp = Path(tmp_name)

        def batch() -> Callable[[], object]:
            store = fresh_store(tmp, "batch")
            genesis = store.create(
                a, None, "case.opened", run.opening_body(a, b, "p"), member="Tom Baker"
            )
            items = [("message.posted", {"text": run.message_text(i)}) for i in range(1_000)]

            def work() -> object:
                for _ in range(count // 1_000):
                    store.create_many(a, genesis.case, items, member="Tom Baker")
                return None

            return work

        def import_() -> Callable[[], object]:
            store = fresh_store(tmp, "import")

            def work() -> object:
                for start in range(0, len(lines), 1_000):
                    events = [
                        parse_wire(line, case=history.case_id)
                        for line in lines[start : start + 1_000]
                    ]
                    store.append(events)
                return None

            return work

        def append() -> Callable[[], object]:
            store = fresh_store(tmp, "append")
            genesis = store.create(
                a, None, "case.opened", run.opening_body(a, b, "p"), member="Tom Baker"
            )
            body = {"text": run.message_text(1)}

            def work() -> object:
                for _ in range(500):
                    store.create(a, genesis.case, "message.posted", body, member="Tom Baker")
                return None

            return work

        def read() -> Callable[[], object]:
            store = fresh_store(tmp, "read")
            for start in range(0, len(history.events), 1_000):
                store.append(history.events[start : start + 1_000])
            store.timeline(history.case_id)

            def work() -> object:
                for _ in range(300):
                    store.state(history.case_id)
                    store.timeline(history.case_id, limit=50)
                return None

            return work

        def proposals() -> Callable[[], object]:
            """Single appends on a case with 50 agreed proposals (101 authority events)."""
            store = fresh_store(tmp, "proposals")
            sizes = run.FULL
            run.bench_append_after_proposals(store, a, b, sizes, lambda n: None)
            case_id = store.list_cases(limit=1)[0].case_id
            body = {"text": run.message_text(1)}

            def work() -> object:
                for _ in range(200):
                    store.create(a, case_id, "message.posted", body, member="Tom Baker")
                return None

            return work

        def late() -> Callable[[], object]:
            """One concurrent event that sorts before the last one held: a full re-fold."""
            ordered = sorted(history.events, key=lambda e: e.key)
            pair = max(
                k for k in range(1, len(ordered)) if ordered[k].depth == ordered[k - 1].depth
            )
            late_event = ordered[pair - 1]
            store = fresh_store(tmp, "late")
            held = [e for e in ordered[: pair + 1] if e.id != late_event.id]
            for start in range(0, len(held), 1_000):
                store.append(held[start : start + 1_000])

            def work() -> object:
                return store.append([late_event])

            return work

        setups = {
            "batch": batch,
            "import": import_,
            "append": append,
            "read": read,
            "proposals": proposals,
            "late": late,
        }
        for name in chosen:
            work = setups[name]()
            profile = cProfile.Profile()
            profile.runcall(work)
            report(name, profile, args.top, args.save)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
