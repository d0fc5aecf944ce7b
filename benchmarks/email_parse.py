#!/usr/bin/env python
"""Accord email parsing: mails per second through ``parse_mail``, next to the stdlib's parsers.

Run ``python benchmarks/email_parse.py`` (full: 9 rounds of 10 passes over the corpus),
``--quick`` (5 rounds of 3 passes, a few seconds) or ``--json`` (one JSON object on stdout,
everything else on stderr). The mails are the test corpus, ``tests/channels/email/corpus/*.eml``:
real-shaped mails from Gmail, Outlook, Apple Mail, Thunderbird, iPhone and webmailers, in
eight charsets, with attachments, bounces, HTML-only and hostile mails.

Per round, every parser parses every mail ``passes`` times, one parser after the other, in
one process; each figure is the median over the rounds. ``per_s`` is mails per second of
wall-clock time; ``cpu_per_s`` is mails per second of this process's CPU time — the same on
an idle machine, and the fair per-core figure when other work shares the cores (the load
average is recorded). The 500/s goal is judged per core, on ``cpu_per_s``.

* ``parse_mail`` — everything Accord needs from a mail: headers decoded, addresses,
  text (HTML converted when there is no plain part), reply/quote/signature split,
  sanitised HTML, attachments hashed, automatic-mail detection (the goal: 500/s).
* ``compat32`` — ``email.message_from_bytes(raw, policy=compat32)``: the MIME tree only,
  headers left raw. The floor ``parse_mail`` builds on.
* ``default`` — the same with ``policy=email.policy.default``, parse only (its header
  objects are built lazily, when a header is read).
* ``default+fields`` — ``policy.default`` reading what ``parse_mail`` reads: From, To, Cc,
  Reply-To, Subject, Date, Message-ID, In-Reply-To, References through the header
  registry, the preferred body's content and every attachment's content. The realistic
  stdlib alternative, and what the 330 mails/s estimate refers to.
"""

from __future__ import annotations

import argparse
import email
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from email import policy
from email.message import EmailMessage
from typing import Any

import common  # benchmarks/common.py, beside this script
import orjson
from rich.console import Console
from rich.table import Table

from accord.channels.email.parse import parse_mail

CORPUS = common.ROOT / "tests" / "channels" / "email" / "corpus"
GOAL_PER_S = 500
FIELDS = ("from", "to", "cc", "reply-to", "subject", "date", "message-id", "in-reply-to")

console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
Json = dict[str, Any]


def summary(samples: Sequence[float], digits: int = 1) -> Json:
    """Median, repetitions, min and max of some samples."""
    return {
        "median": round(statistics.median(samples), digits),
        "reps": len(samples),
        "min": round(min(samples), digits),
        "max": round(max(samples), digits),
    }


def compat32(raw: bytes) -> object:
    return email.message_from_bytes(raw, policy=policy.compat32)


def default(raw: bytes) -> object:
    return email.message_from_bytes(raw, policy=policy.default)


def default_fields(raw: bytes) -> object:
    """What getting parse_mail's information out of ``policy.default`` costs.

    The header registry and the content manager raise on some real mails (a display name
    with an encoded CR/LF, an unknown charset); as a caller would, each read is guarded.
    """
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    found: list[object] = []
    for read in (
        *(lambda name=name: msg.get(name) for name in FIELDS),
        lambda: msg.get_all("references"),
        lambda: _content(msg.get_body(preferencelist=("plain", "html"))),
        lambda: [_content(part) for part in msg.iter_attachments()],
    ):
        try:
            found.append(read())
        except Exception as exc:  # what the stdlib raises on real mail is the point here
            found.append(exc)
            FAILED.add(hash(raw))
    return found


def _content(part: EmailMessage | None) -> object:
    return part.get_content() if part is not None else None


FAILED: set[int] = set()  # mails on which policy.default raised somewhere


PARSERS: dict[str, Callable[[bytes], object]] = {
    "parse_mail": parse_mail,
    "compat32": compat32,
    "default": default,
    "default+fields": default_fields,
}


def measure(
    mails: list[bytes], rounds: int, passes: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Mails per wall second and per CPU second of each parser, one sample per round each;
    the parsers interleaved so a change in load hits them all."""
    rates: dict[str, list[float]] = {name: [] for name in PARSERS}
    cpu_rates: dict[str, list[float]] = {name: [] for name in PARSERS}
    for name, parse in PARSERS.items():  # warm up: imports, regex and codec caches
        for raw in mails:
            parse(raw)
        console.print(f"[dim]warmed up {name}[/dim]")
    for round_ in range(rounds):
        for name, parse in PARSERS.items():
            gc.collect()
            started, cpu = time.perf_counter(), time.process_time()
            for _ in range(passes):
                for raw in mails:
                    parse(raw)
            rates[name].append(passes * len(mails) / (time.perf_counter() - started))
            cpu_rates[name].append(passes * len(mails) / (time.process_time() - cpu))
        console.print(
            f"[dim]round {round_ + 1} of {rounds}: "
            + ", ".join(f"{name} {r[-1]:,.0f}/s" for name, r in cpu_rates.items())
            + " (CPU)[/dim]"
        )
    return rates, cpu_rates


def print_table(results: Json) -> None:
    figures = results["email_parse"]
    meta = results["meta"]
    table = Table(
        title=f"Email parsing: {meta['messages']} corpus mails ({meta['corpus_bytes']:,} bytes), "
        "one core",
        title_justify="left",
    )
    columns = ("parser", "mails / CPU s", "min", "max", "µs CPU / mail", "mails / s (wall)")
    for col in (*columns, "parse_mail is x times"):
        table.add_column(col, justify="right" if col != "parser" else "left")
    ours = figures["parse_mail"]["cpu_per_s"]["median"]
    for name in PARSERS:
        rate, wall = figures[name]["cpu_per_s"], figures[name]["per_s"]
        table.add_row(
            name,
            f"{rate['median']:,.0f}",
            f"{rate['min']:,.0f}",
            f"{rate['max']:,.0f}",
            f"{1e6 / rate['median']:,.0f}",
            f"{wall['median']:,.0f}",
            f"{ours / rate['median']:.2f}",
        )
    console.print(table)
    goal = figures["goal"]
    console.print(
        f"goal: parse_mail ≥ {goal['target']:,} mails/s per core — "
        f"{'met' if goal['met'] else 'NOT met'} ({goal['measured']:,.0f}/s); "
        f"policy.default raised reading {figures['default_fields_raised_on']} of the "
        f"{meta['messages']} mails (parse_mail raised on none)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="5 rounds of 3 passes")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--rounds", type=int, help="rounds (default 9, quick 5)")
    parser.add_argument("--passes", type=int, help="passes over the corpus per round")
    args = parser.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 9)
    passes = args.passes or (3 if args.quick else 10)

    mails = [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]
    if not mails:
        console.print(f"[red]no corpus mails in {CORPUS}[/red]")
        return 2
    started = time.perf_counter()
    meta = common.machine(
        messages=len(mails), corpus_bytes=sum(map(len, mails)), rounds=rounds, passes=passes
    )
    results: Json = {"meta": meta | {"quick": args.quick}}
    rates, cpu_rates = measure(mails, rounds, passes)
    figures: Json = {
        name: {"per_s": summary(rates[name], 0), "cpu_per_s": summary(cpu_rates[name], 0)}
        for name in PARSERS
    }
    ours = figures["parse_mail"]["cpu_per_s"]["median"]
    figures["parse_mail_vs"] = {
        name: round(ours / figures[name]["cpu_per_s"]["median"], 2)
        for name in PARSERS
        if name != "parse_mail"
    }
    figures["goal"] = {"target": GOAL_PER_S, "measured": ours, "met": ours >= GOAL_PER_S}
    figures["default_fields_raised_on"] = len(FAILED)
    results["email_parse"] = figures
    results["meta"]["elapsed_s"] = round(time.perf_counter() - started, 1)
    results["meta"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print_table(results)
    console.print(f"[dim]{results['meta']['elapsed_s']} s in all[/dim]")
    if args.json:
        sys.stdout.write(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
