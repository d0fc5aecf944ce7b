"""Messages per second through the whole inbound email pipeline, SQLite and PostgreSQL.

Each repetition feeds 1,000 mails — 400 that open cases (400 senders) and 600 replies
threaded by In-Reply-To, a fifth of them multipart with an HTML alternative — to
``MailChannel.receive`` on a fresh node with five members to route to: keep the raw
mail, parse, dedupe, find or make the customer, thread, open the case or append the
message, route the new case, queue its acknowledgement, commit. One thread, so the rate
is per core. In the same run it times the stages alone (stdlib ``compat32`` parsing as
the floor, Accord's parser, storing the raw mail) so the report says where the time goes.

    python benchmarks/mail_intake.py            # 3 repetitions, both databases
    python benchmarks/mail_intake.py --quick    # 1 repetition, 300 messages
    python benchmarks/mail_intake.py --json     # one JSON object on stdout
    python benchmarks/mail_intake.py --quick --reps 5 --compare-durability --no-postgres
    python benchmarks/mail_intake.py --burst 0   # one at a time only (no bursts)

Each backend runs one mail at a time (``receive``) and, interleaved with it, in bursts of
``--burst`` (50: ``receive_many``, one transaction a burst, as the SMTP listener stores
mail from sessions that arrive together and IMAP polling stores a fetched chunk).

``--compare-durability`` also runs the SQLite pipeline as nodes ran before acknowledged
meant durable (``synchronous=NORMAL``, raw mail not fsynced), interleaved with the
current one (``synchronous=FULL``, raw mail and its directory fsynced), and reports both
and their ratio: the cost of durability on this disk.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine

from accord.auth.members import MemberStore
from accord.channels.email.mailboxes import Mailbox
from accord.channels.email.mailchannel import Arrival
from accord.channels.email.parse import parse_mail
from accord.node import Node
from accord.service.ownership import Ownership
from accord.wiring import Services

Json = dict[str, Any]
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
GOAL_PER_CORE = 500


def corpus(total: int) -> list[bytes]:
    """``total`` mails: 40 % open cases, the rest reply to earlier ones — at most three
    replies each, so no case looks like a mail loop (more than five a minute)."""
    opened: list[tuple[str, str]] = []
    replies: dict[int, int] = {}
    mails: list[bytes] = []
    for i in range(total):
        message = EmailMessage()
        if not opened or i % 5 in (0, 2) or all(replies.get(n, 0) >= 3 for n in range(len(opened))):
            sender = f"customer{i}@example.com"
            subject = f"Problem number {i} with my broadband"
            reply_to = None
        else:
            free = [n for n in range(len(opened)) if replies.get(n, 0) < 3]
            target = free[(i * 7) % len(free)]
            replies[target] = replies.get(target, 0) + 1
            sender, reply_to = opened[target]
            subject = "Re: my case"
        message_id = f"<bench.{i}.{secrets.token_hex(4)}@example.com>"
        message["From"] = f"Customer {i} <{sender}>"
        message["To"] = "support@northwind.example"
        message["Subject"] = subject
        message["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
        message["Message-ID"] = message_id
        if reply_to:
            message["In-Reply-To"] = reply_to
            message["References"] = reply_to
        text = f"Hello,\n\nMessage {i}: the line drops every evening since Monday.\n\nThanks\n"
        message.set_content(text)
        if i % 5 == 4:
            message.add_alternative(f"<p>{text}</p>", subtype="html")
        if reply_to is None:
            opened.append((sender, message_id))
        mails.append(message.as_bytes())
    return mails


def fresh_node(url: str | None, root: Path) -> Node:
    node = Node.init(root / secrets.token_hex(4), name="Northwind Broadband", database=url)
    members = MemberStore(node.db)
    ownership = Ownership(node.cases, node.key, members, now=lambda: datetime.now(UTC))
    for n in range(5):
        members.create(
            f"agent{n}", "correct horse battery", role="agent", display_name=f"Agent {n}"
        )
        ownership.set_profile(f"agent{n}", availability="online")
    channel = Services.build(node, inline_followers=False).mail
    channel.mailboxes.add(
        Mailbox(
            id=0, address="support@northwind.example", display_name="Support", smtp=None, imap=None
        )
    )
    return node


def as_before_durability(node: Node) -> None:
    """Make ``node`` commit as nodes did before: ``synchronous=NORMAL`` (a commit survives
    a killed process, not a power cut). Blobs: see ``pipeline(durable=False)``."""
    for engine in {node.db.writer, node.db.reader}:
        sa.event.listen(
            engine, "connect", lambda dbapi, _record: dbapi.execute("PRAGMA synchronous=NORMAL")
        )
        engine.dispose()  # the pooled connections were made with FULL


def pipeline(node: Node, mails: Sequence[bytes], *, durable: bool = True, burst: int = 1) -> float:
    """Mails per second through ``receive`` one at a time, or ``receive_many`` in bursts
    of ``burst`` (as the SMTP listener and IMAP polling store mail that arrives together)."""
    channel = Services.build(node, inline_followers=False).mail
    if not durable:
        channel.blobs.fsync = False
    recipients = ("support@northwind.example",)
    started = time.perf_counter()
    if burst <= 1:
        for raw in mails:
            channel.receive(raw, recipients=recipients)
    else:
        for at in range(0, len(mails), burst):
            chunk = [Arrival(raw, recipients=recipients) for raw in mails[at : at + burst]]
            results = channel.receive_many(chunk)
            assert not any(isinstance(r, Exception) for r in results), results
    elapsed = time.perf_counter() - started
    check(node, len(mails))
    return len(mails) / elapsed


def check(node: Node, count: int) -> None:
    with node.db.read() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT count(*) FROM channel_messages WHERE direction='in' AND status='stored'"
            )
        ).scalar_one()
        cases = conn.execute(sa.text("SELECT count(*) FROM cases")).scalar_one()
    if stored != count:
        raise SystemExit(f"only {stored} of {count} messages were stored")
    if cases == 0:
        raise SystemExit("no case was opened")


def rate(fn: Any, mails: Sequence[bytes]) -> float:
    started = time.perf_counter()
    for raw in mails:
        fn(raw)
    return len(mails) / (time.perf_counter() - started)


def stages(mails: Sequence[bytes], root: Path) -> Json:
    from accord.channels.blobs import BlobStore

    # Fresh directories each time: a blob already there is only looked up, not written.
    fresh = secrets.token_hex(4)
    blobs = BlobStore(root / f"blobs-stage-{fresh}")
    return {
        "stdlib_compat32_parse": rate(
            lambda raw: email.message_from_bytes(raw, policy=email.policy.compat32), mails
        ),
        "accord_parse": rate(parse_mail, mails),
        "store_raw": rate(blobs.put, mails),
        "store_raw_fsynced": rate(BlobStore(root / f"blobs-fsync-{fresh}", fsync=True).put, mails),
    }


def summary(samples: Sequence[float]) -> Json:
    return {
        "median": round(statistics.median(samples), 1),
        "reps": len(samples),
        "min": round(min(samples), 1),
        "max": round(max(samples), 1),
    }


def run_once(
    backend: str, root: Path, admin: sa.Engine, postgres: str, mails: Sequence[bytes], burst: int
) -> float:
    """One pipeline run on a fresh node (a fresh database on PostgreSQL)."""
    if backend == "sqlite":
        node = fresh_node(None, root)
        try:
            return pipeline(node, mails, burst=burst)
        finally:
            node.close()
    name = f"accord_bench_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        url = sa.engine.make_url(postgres).set(database=name)
        node = fresh_node(url.render_as_string(hide_password=False), root)
        try:
            return pipeline(node, mails, burst=burst)
        finally:
            node.close()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1 repetition of 300 messages")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--postgres", default=POSTGRES, help="admin URL of a PostgreSQL server")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--reps", type=int, default=0, help="repetitions (default 1 quick, 3)")
    parser.add_argument(
        "--compare-durability",
        action="store_true",
        help="also run SQLite with synchronous=NORMAL and blobs not fsynced (as before)",
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=50,
        help="also store the mails in bursts of this many, one transaction each (0: not)",
    )
    args = parser.parse_args(argv)
    total, reps = (300, 1) if args.quick else (1000, 3)
    reps = args.reps or reps
    mails = corpus(total)
    results: Json = {"machine": machine(), "messages": total, "goal_per_core": GOAL_PER_CORE}
    admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    with tempfile.TemporaryDirectory(prefix="accord-mail-bench-") as tmp:
        root = Path(tmp)
        runs = [stages(mails, root) for _ in range(reps)]
        results["stages_per_second"] = {
            name: summary([run[name] for run in runs]) for name in runs[0]
        }
        if args.compare_durability:
            before, now = [], []
            for rep in range(reps):  # interleaved, each first in turn: the same machine load
                for durable in (True, False) if rep % 2 else (False, True):
                    node = fresh_node(None, root)
                    if not durable:
                        as_before_durability(node)
                    (now if durable else before).append(pipeline(node, mails, durable=durable))
                    node.close()
            results["durability_sqlite"] = {
                "normal_no_blob_fsync_per_second": summary(before),
                "full_blob_fsync_per_second": summary(now),
                "full_over_normal": round(statistics.median(now) / statistics.median(before), 3),
            }
        backends = ["sqlite"] if args.no_postgres else ["sqlite", "postgresql"]
        for backend in backends:
            samples: dict[int, list[float]] = {1: []}
            if args.burst > 1:
                samples[args.burst] = []
            for rep in range(reps):  # one at a time and in bursts, interleaved
                for burst in sorted(samples, reverse=bool(rep % 2)):
                    samples[burst].append(
                        run_once(backend, root, admin, args.postgres, mails, burst)
                    )
            results[f"pipeline_{backend}_per_second"] = summary(samples[1])
            if args.burst > 1:
                results[f"pipeline_{backend}_bursts_per_second"] = summary(samples[args.burst])
                results[f"pipeline_{backend}_bursts_over_single"] = round(
                    statistics.median(samples[args.burst]) / statistics.median(samples[1]), 2
                )
        results["burst"] = args.burst
    admin.dispose()
    if args.json:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
        return 0
    print(f"{total} messages, {reps} repetition(s), medians (messages per second, one core):")
    for name, figures in results["stages_per_second"].items():
        print(f"  stage {name:<24} {figures['median']:>9,.0f}")
    if durability := results.get("durability_sqlite"):
        print(
            "  SQLite, synchronous=NORMAL, blobs not fsynced  "
            f"{durability['normal_no_blob_fsync_per_second']['median']:>9,.0f}\n"
            "  SQLite, synchronous=FULL, blobs fsynced        "
            f"{durability['full_blob_fsync_per_second']['median']:>9,.0f}"
            f"   (FULL / NORMAL: {durability['full_over_normal']:.2f})"
        )
    for backend in ("sqlite", "postgresql"):
        figures = results.get(f"pipeline_{backend}_per_second")
        if figures:
            verdict = "met" if figures["median"] >= GOAL_PER_CORE else "NOT met"
            print(
                f"  whole pipeline on {backend:<10}       {figures['median']:>9,.0f}"
                f"   (goal ≥ {GOAL_PER_CORE}/s per core: {verdict})"
            )
        bursts = results.get(f"pipeline_{backend}_bursts_per_second")
        if bursts:
            verdict = "met" if bursts["median"] >= GOAL_PER_CORE else "NOT met"
            ratio = results[f"pipeline_{backend}_bursts_over_single"]
            print(
                f"    in bursts of {results['burst']:<3} on {backend:<10}"
                f"  {bursts['median']:>9,.0f}   ({ratio:.2f} times one at a time; goal: {verdict})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
