"""``accord case``, ``accord export``, ``accord import`` and ``accord verify``: the cases
this node holds, read and written on its own database, and their signed bundles.

``verify`` needs no node at all: it checks a bundle offline (the same check the portal's
"read it" page shows), so anyone given a bundle can check it without running Accord.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from accord.cli import common
from accord.cli.common import (
    CaseArg,
    DatabaseReadUrl,
    DatabaseUrl,
    DataDir,
    case_id_of,
    fail,
    format_value,
    node_services,
    open_node,
)
from accord.core.errors import AccordError

if TYPE_CHECKING:
    from accord.core.bundle import BundleReport

case_app = typer.Typer(help="Open and inspect cases on this node.", no_args_is_help=True)


@case_app.command("new")
def case_new(
    title: Annotated[str, typer.Argument(help="What the case is about.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
    topic: Annotated[
        list[str] | None, typer.Option(help="A topic to open, as 'id=Title' (repeatable).")
    ] = None,
    customer: Annotated[
        str | None, typer.Option(help="Name of a customer this node hosts as a party.")
    ] = None,
    member: Annotated[str, typer.Option(help="Who is acting on this node.")] = "cli",
) -> None:
    """Open a case with this node as a party (and optionally a hosted customer).

    The case is opened by the same service as the API's: this node's party id (from its
    name), its URL when it has one (so other parties' nodes can pull from it), and the
    followers (webhooks, timers, notices) pick it up from the log."""
    from accord.node import party_slug
    from accord.service.errors import ServiceError
    from accord.service.negotiation import Actor

    node = open_node(data, database)
    topics = []
    for spec in topic or []:
        slug, sep, label = spec.partition("=")
        if not sep or not label.strip():
            raise fail(f"--topic takes 'id=Title', got {spec!r}")
        topics.append({"topic": slug.strip(), "title": label.strip()})
    try:
        outcome = node_services(node).negotiation.open_case(
            Actor(member=member, via="cli"),
            title=title,
            party_id=party_slug(node.name),
            party_name=node.name,
            party_url=node.url,
            customer={"name": customer} if customer else None,
            topics=topics,
        )
    except (ServiceError, AccordError) as exc:
        raise fail(str(exc)) from exc
    common.out.print(outcome.case_id)


@case_app.command("post")
def case_post(
    case: CaseArg,
    text: Annotated[str, typer.Argument(help="The message.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
    member: Annotated[str, typer.Option(help="Who is writing.")] = "cli",
) -> None:
    """Post a message to a case as this node."""
    from accord.service.errors import ServiceError
    from accord.service.negotiation import Actor

    node = open_node(data, database)
    try:
        outcome = node_services(node).negotiation.post_message(
            Actor(member=member, via="cli"), case_id_of(node, case), text
        )
    except (ServiceError, AccordError) as exc:
        raise fail(str(exc)) from exc
    common.out.print(outcome.event_ids[0])


@case_app.command("list")
def case_list(
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many cases.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="How many to skip.")] = 0,
) -> None:
    """List the cases this node holds, most recently changed first."""
    node = open_node(data, database)
    table = Table("case", "title", "events", "resolved", "opened")
    for row in node.cases.list_cases(limit=limit, offset=offset):
        table.add_row(
            row.case_id[:19],
            row.title,
            str(row.event_count),
            "yes" if row.resolved else "no",
            row.opened_at,
        )
    common.out.print(table)


@case_app.command("show")
def case_show(
    case: CaseArg,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the state as JSON.")] = False,
) -> None:
    """Show a case: parties, topics, agreed terms, proposals, satisfaction, evidence."""
    node = open_node(data, database)
    state = node.cases.state(case_id_of(node, case))
    assert state is not None
    if as_json:
        sys.stdout.write(orjson.dumps(state, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    _render_state(state)


def _render_state(s: Mapping[str, Any]) -> None:
    from accord.core.crypto import fingerprint

    common.out.print(f"[bold]{s['title']}[/bold]  {s['case']}")
    status = "resolved" if s["resolved"] else "open"
    common.out.print(
        f"{status}; agreement v{s['terms']['version']}; {s['events']} events, "
        f"{s['messages']} messages; reopened {s['reopened']} times"
    )
    parties = Table("party", "name", "kind", "speaks through", "satisfied", title="Parties")
    for pid, p in s["parties"].items():
        voice = fingerprint(p["node"]) if p["node"] else f"hosted by {fingerprint(p['hosted_by'])}"
        parties.add_row(pid, p["name"], p["kind"], voice, "yes" if pid in s["satisfied"] else "")
    common.out.print(parties)
    if s["topics"]:
        topics = Table("topic", "title", "state", title="Topics")
        for tid, t in s["topics"].items():
            topics.add_row(tid, t["title"], t["state"])
        common.out.print(topics)
    terms = s["terms"]
    if terms["data"] or s["info"]:
        data = Table("item", "value", "", title="Data items")
        for key, item in terms["data"].items():
            data.add_row(key, format_value(item["value"]), "agreed")
        for key, item in s["info"].items():
            data.add_row(key, format_value(item["value"]), f"from {item['by']}")
        common.out.print(data)
    if terms["activities"] or s["progress"]:
        acts = Table("activity", "owner", "due", "state", title="Activities")
        for aid, progress in s["progress"].items():
            a = terms["activities"].get(aid, progress)
            acts.add_row(f"{a['title']} ({aid})", a["owner"], a.get("due") or "", progress["state"])
        common.out.print(acts)
    if s["proposals"]:
        props = Table(
            "proposal", "by", "base", "changes", "state", "accepted by", title="Proposals"
        )
        for pid, p in s["proposals"].items():
            props.add_row(
                pid[:19],
                p["by"],
                f"v{p['base']}",
                str(len(p["changes"])),
                p["state"],
                ", ".join(sorted(p["accepted_by"])),
            )
        common.out.print(props)
    for item in s["evidence"]:
        common.out.print(
            f"[yellow]evidence[/yellow] {item['event'][:19]} {item['type']}: {item['reason']}"
        )
    for item in s["equivocations"]:
        common.out.print(
            f"[red]equivocation[/red] by {fingerprint(item['author'])} at seq "
            f"{item['seq']}: {', '.join(e[:19] for e in item['events'])}"
        )


@case_app.command("log")
def case_log(
    case: CaseArg,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="One wire-form event per line.")] = False,
) -> None:
    """Print a case's events in the deterministic (depth, id) order."""
    node = open_node(data, database)
    case_id = case_id_of(node, case)
    events = node.cases.events(case_id)
    if as_json:
        for event in events:
            sys.stdout.buffer.write(event.wire() + b"\n")
        return
    state = node.cases.state(case_id)
    assert state is not None
    evidence = {e["event"]: e["reason"] for e in state["evidence"]}
    table = Table("depth", "event", "time", "type", "author", "note")
    for e in events:
        who = e.author.member + (f" via {e.author.via}" if e.author.via else "")
        table.add_row(str(e.depth), e.id[:19], e.time, e.type, who, evidence.get(e.id, ""))
    common.out.print(table)


@case_app.command("hash")
def case_hash(
    case: CaseArg,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Print the case's state hash: identical on every node holding the same events."""
    node = open_node(data, database)
    common.out.print(node.cases.state_hash(case_id_of(node, case)))


def export(
    case: CaseArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="Bundle file to write.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Write a case's signed bundle, which `accord verify` checks offline."""
    from accord.core.bundle import write_bundle
    from accord.core.state import state_hash

    node = open_node(data, database)
    case_id = case_id_of(node, case)
    exported = node.cases.export(case_id)  # one snapshot; the read replica's, if there is one
    assert exported is not None
    state, events = exported
    bundle = write_bundle(case_id, events, state, exported_by=node.key.public)
    output.write_bytes(bundle)
    common.out.print(f"wrote {state['events']} events of {case_id} to {output}")
    common.out.print(f"state {state_hash(state)}")


def import_bundle(
    file: Annotated[Path, typer.Argument(help="A bundle written by `accord export`.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
    batch: Annotated[int, typer.Option(min=1, help="Events per transaction.")] = 1000,
) -> None:
    """Verify every event of a bundle and store the case on this node."""
    from accord.core.events import parse_wire

    node = open_node(data, database)
    lines = file.read_bytes().splitlines()[1:]
    stored = duplicates = rejected = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=common.err,
        transient=True,
    ) as progress:
        task = progress.add_task("verifying and storing", total=len(lines))
        for start in range(0, len(lines), batch):
            chunk = []
            for line in lines[start : start + batch]:
                try:
                    chunk.append(parse_wire(line))
                except AccordError as exc:
                    rejected += 1
                    common.err.print(f"[red]rejected[/red] line: {exc}")
            result = node.cases.append(chunk, strict=False)
            stored += len(result.stored)
            duplicates += len(result.duplicates)
            rejected += len(result.rejected)
            for item in result.rejected:
                common.err.print(f"[red]rejected[/red] {item.event_id[:19]}: {item.message}")
            progress.advance(task, len(lines[start : start + batch]))
    common.out.print(f"stored {stored}, already held {duplicates}, rejected {rejected}")
    if rejected:
        raise typer.Exit(1)


def verify(
    file: Annotated[Path, typer.Argument(help="A case bundle (from `accord export`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="OUT.html",
            help="Also write the report for people: a page to read (what was agreed, by "
            "whom and when, each signature's check), standalone and printable.",
        ),
    ] = None,
    pdf: Annotated[
        Path | None,
        typer.Option("--pdf", metavar="OUT.pdf", help="Also write that report as a PDF."),
    ] = None,
    zone: Annotated[
        str, typer.Option("--zone", help="The time zone of the times in --html/--pdf.")
    ] = "UTC",
) -> None:
    """Check a case bundle offline: every hash, signature, chain and rule.

    Exits 0 only if everything holds; 1 if anything failed, with a report of what.
    Needs no node, no database and no network. --html and --pdf write the same report
    for people (the portal's "read it" and "PDF"); the exit code does not change.
    """
    from accord.core.bundle import verify_bundle
    from accord.core.crypto import fingerprint

    try:
        data = file.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}", 2) from exc
    report = verify_bundle(data)
    if html is not None or pdf is not None:
        _write_verify_report(report, data, html=html, pdf=pdf, zone=zone)
    if as_json:
        sys.stdout.write(
            orjson.dumps(
                {
                    "ok": report.ok,
                    "case": report.case,
                    "events": report.events,
                    "state_hash": report.state_hash,
                    "problems": [p.__dict__ for p in report.problems],
                    "evidence": report.evidence,
                    "equivocations": report.equivocations,
                }
            ).decode()
            + "\n"
        )
    else:
        common.out.print(f"case   {report.case}")
        common.out.print(f"events {report.events} verified")
        if report.state_hash:
            common.out.print(f"state  {report.state_hash}")
        for p in report.problems:
            where = f"line {p.line}" + (f" ({p.event[:19]})" if p.event else "")
            common.out.print(f"[red]FAIL[/red] {where}: {p.message}")
        for e in report.evidence:
            common.out.print(f"[red]RULE[/red] {e['event'][:19]} {e['type']}: {e['reason']}")
        for q in report.equivocations:
            common.out.print(
                f"[red]FORK[/red] author {fingerprint(q['author'])} signed "
                f"{len(q['events'])} events at seq {q['seq']}"
            )
        common.out.print(
            "[green]OK[/green]: every hash, signature and rule holds"
            if report.ok
            else "[red]NOT OK[/red]"
        )
    if not report.ok:
        raise typer.Exit(1)


def _write_verify_report(
    checked: BundleReport, data: bytes, *, html: Path | None, pdf: Path | None, zone: str
) -> None:
    """Write ``accord verify``'s report as a page and/or a PDF (accord.service.report)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from accord.service.report import present, render_html, render_pdf

    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise fail(f"--zone {zone!r} is not a time zone (try Europe/London or UTC)", 2) from exc
    readable = present(checked, data, zone=tz)
    outputs: tuple[tuple[Path | None, Callable[[], bytes]], ...] = (
        (html, lambda: render_html(readable).encode("utf-8")),
        (pdf, lambda: render_pdf(readable)),
    )
    for path, content in outputs:
        if path is None:
            continue
        try:
            path.write_bytes(content())
        except OSError as exc:
            raise fail(f"cannot write {path}: {exc.strerror}", 2) from exc
        common.err.print(f"report written to {path}", markup=False)
