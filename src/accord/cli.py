"""The ``accord`` command: set up a node, serve it, look at cases, export and verify.

Every command takes ``--data DIR`` (default ``$ACCORD_HOME`` or ``~/.accord``), so
several nodes can live on one machine, and ``--database URL`` (default
``$ACCORD_DATABASE_URL`` or SQLite in the data directory).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from accord.core.errors import AccordError

if TYPE_CHECKING:
    from accord.channels.email.mailchannel import MailChannel
    from accord.core.bundle import BundleReport
    from accord.node import Node
    from accord.wiring import Services

app: typer.Typer = typer.Typer(
    help="Accord: customer cases as negotiated agreements, with a signed copy for every party.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
case_app = typer.Typer(help="Open and inspect cases on this node.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
app.add_typer(case_app, name="case")
app.add_typer(db_app, name="db")
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

DataDir = Annotated[
    Path | None,
    typer.Option("--data", help="Node data directory (default: $ACCORD_HOME or ~/.accord)."),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Database URL (default: $ACCORD_DATABASE_URL or SQLite in the data directory).",
    ),
]
CaseArg = Annotated[str, typer.Argument(help="Case id, or an unambiguous prefix of it.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(code)


_opened: list[Node] = []
_built: dict[int, Services] = {}


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Accord: customer cases as negotiated agreements, with a signed copy for every party."""
    global out, err
    out = Console(highlight=False)  # made per invocation: the width follows $COLUMNS now
    err = Console(stderr=True, highlight=False)
    ctx.call_on_close(_close_nodes)


def _close_nodes() -> None:
    while _built:
        _built.popitem()[1].close()
    while _opened:
        _opened.pop().close()


def _open(data: Path | None, database: str | None) -> Node:
    from accord.node import Node, NodeError, default_data_dir

    try:
        node = Node.open(data or default_data_dir(), database=database)
    except NodeError as exc:
        raise _fail(str(exc)) from exc
    _opened.append(node)
    return node


def _services(node: Node) -> Services:
    """This command's services (``accord.wiring``), built once per process on the system
    clock. The followers of the case log and the pushes to peers are not run here:
    ``accord serve`` or ``accord worker`` find this command's events in the log."""
    from accord.wiring import Services

    if id(node) not in _built:
        _built[id(node)] = Services.build(node, inline_followers=False)
    return _built[id(node)]


def _case_id(node: Node, ref: str) -> str:
    case_id = node.cases.find_case(ref)
    if case_id is None:
        raise _fail(f"no case matches {ref!r} on this node (see `accord case list`)")
    return case_id


@app.command()
def init(
    data: DataDir = None,
    database: DatabaseUrl = None,
    name: Annotated[str, typer.Option(help="Display name of this node's party.")] = "Accord node",
    personal: Annotated[bool, typer.Option(help="A single person's own node.")] = False,
    url: Annotated[
        str | None, typer.Option(help="Public URL other nodes reach this one at.")
    ] = None,
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Do nothing if the node already exists.")
    ] = False,
) -> None:
    """Create a node: data directory, Ed25519 key and database. Never overwrites a key."""
    from accord.node import Node, NodeError, default_data_dir
    from accord.store.database import redact

    directory = data or default_data_dir()
    if if_missing and (directory / "node.key").exists():
        out.print(f"node already set up in {directory}")
        return
    try:
        node = Node.init(directory, name=name, database=database, personal=personal, url=url)
    except NodeError as exc:
        raise _fail(str(exc)) from exc
    _opened.append(node)
    out.print(f"created node [bold]{name}[/bold] in {directory}")
    out.print(f"  key          {node.key.public}")
    out.print(f"  fingerprint  {node.fingerprint}")
    out.print(f"  database     {redact(node.db.url)}")


def _warm_indexes(served: Any) -> None:
    """Bring the inbox rows and the search index up to date in the background at start,
    so the first search after an upgrade does not wait for a whole index build."""
    import logging

    try:
        served.state.inbox.refresh()
        served.state.inbox.search_index.catch_up()
    except Exception:  # the pages catch up on their own; this only saves them the wait
        logging.getLogger("accord.web").warning("warming the indexes failed", exc_info=True)


@app.command()
def serve(
    ctx: typer.Context,
    data: DataDir = None,
    database: DatabaseUrl = None,
    host: Annotated[
        str, typer.Option(envvar="ACCORD_HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="ACCORD_PORT", help="TCP port to listen on.")] = 8640,
    workers: Annotated[
        int,
        typer.Option(
            envvar="ACCORD_WORKERS",
            min=1,
            max=64,
            help="HTTP processes. Above 1, this process keeps the background work (timers, "
            "pulls, mail listener) and the others only serve requests.",
        ),
    ] = 1,
    sync_interval: Annotated[
        int,
        typer.Option(
            envvar="ACCORD_SYNC_INTERVAL",
            min=0,
            help="Seconds between pulls from peer nodes (0: only on demand).",
        ),
    ] = 60,
    inline_worker: Annotated[
        bool | None,
        typer.Option(
            "--inline-worker/--no-inline-worker",
            help="Run the timer worker in this process (default: on with SQLite; with "
            "PostgreSQL run `accord worker` processes instead).",
        ),
    ] = None,
    smtp_port: Annotated[
        int,
        typer.Option(
            envvar="ACCORD_SMTP_PORT",
            min=0,
            max=65535,
            help="Receive mail for the mailboxes by SMTP on this port (0: no listener).",
        ),
    ] = 0,
    smtp_host: Annotated[
        str, typer.Option(envvar="ACCORD_SMTP_HOST", help="Address the SMTP listener binds.")
    ] = "127.0.0.1",
    imap: Annotated[
        bool,
        typer.Option(
            "--imap/--no-imap",
            help="Poll the mailboxes that have an IMAP account (run it in one process only).",
        ),
    ] = True,
    log_format: Annotated[
        str,
        typer.Option(envvar="ACCORD_LOG_FORMAT", help="text, or json (one object per line)."),
    ] = "text",
    log_level: Annotated[
        str, typer.Option(envvar="ACCORD_LOG_LEVEL", help="debug, info, warning or error.")
    ] = "info",
) -> None:
    """Start the HTTP server (``/health`` answers once it is up), periodic pulls, the mail
    listener and IMAP polling if asked, and, on the embedded default, the timer worker.

    Settings come from the command line, then ``ACCORD_*`` environment variables, then the
    ``[serve]`` table of ``accord.toml`` in the data directory (docs/operations.md)."""
    import os
    import tempfile
    import threading

    import uvicorn

    from accord.api.app import create_app
    from accord.federation.schedule import PeriodicSync
    from accord.jobs.inline import InlineWorker
    from accord.node import default_data_dir
    from accord.ops import logs
    from accord.ops.config import ConfigError, file_settings

    data_dir = data or default_data_dir()
    try:
        settings = file_settings(data_dir, "serve")
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    values: dict[str, Any] = {
        "host": host,
        "port": port,
        "workers": workers,
        "sync_interval": sync_interval,
        "smtp_port": smtp_port,
        "smtp_host": smtp_host,
        "log_format": log_format,
        "log_level": log_level,
    }
    for name, value in settings.items():
        if name not in values:
            raise _fail(f"{data_dir / 'accord.toml'}: [serve] has no setting {name!r}")
        source = ctx.get_parameter_source(name)
        if source is not None and source.name == "DEFAULT":  # not given on the line or env
            values[name] = value
    if values["log_format"] not in ("text", "json"):
        raise _fail("--log-format is text or json")
    logs.configure(str(values["log_format"]), str(values["log_level"]))
    node = _open(data, database)
    services = _services(node)  # one set for the app, its worker, followers and listeners
    app = create_app(node, services=services)
    host, port, workers = str(values["host"]), int(values["port"]), int(values["workers"])
    out.print(
        f"Accord node [bold]{node.name}[/bold] ({node.fingerprint}) on http://{host}:{port}"
        + (f" ({workers} processes)" if workers > 1 else "")
    )
    pulls = PeriodicSync(services.federation, int(values["sync_interval"]))
    pulls.start()
    services.background.submit(_warm_indexes, app)
    inline = node.db.is_sqlite if inline_worker is None else inline_worker
    timers = (
        InlineWorker(lambda: services.worker(worker_id=f"serve-{os.getpid()}"), services.prepare)
        if inline
        else None
    )
    following = threading.Event()
    if timers is not None:
        timers.start()
        threading.Thread(
            target=services.followers.run,
            args=(following,),
            name="accord-followers",
            daemon=True,
        ).start()
        threading.Thread(  # pushes to peers follow the log from their own marks too
            target=services.pushers.run,
            args=(following,),
            name="accord-pushers",
            daemon=True,
        ).start()
        out.print("timers, outbox and followers run in this process (accord worker is not needed)")
    mail = _start_mail(services.mail, str(values["smtp_host"]), int(values["smtp_port"]), imap)
    level = str(values["log_level"]).lower()
    try:
        if workers == 1:
            uvicorn.run(
                app, host=host, port=port, log_config=None, log_level=level, access_log=False
            )
        else:
            # Each process builds its own app from the environment (no state is shared in
            # memory: sessions, rate limits per process, metrics through files).
            metrics_dir = tempfile.mkdtemp(prefix="accord-metrics-")
            os.environ.update(
                ACCORD_HOME=str(data_dir.resolve()),
                ACCORD_DATABASE_URL=node.db.url,
                ACCORD_LOG_FORMAT=str(values["log_format"]),
                ACCORD_LOG_LEVEL=level,
                PROMETHEUS_MULTIPROC_DIR=metrics_dir,
            )
            uvicorn.run(
                "accord.api.app:app_from_env",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_config=None,
                log_level=level,
                access_log=False,  # Accord writes its own access line, without paths
            )
    finally:
        mail()
        pulls.stop()
        following.set()
        if timers is not None:
            timers.stop()


def _start_mail(channel: MailChannel, host: str, port: int, imap: bool) -> Callable[[], None]:
    """Start the SMTP listener and the IMAP poller as asked; returns what stops them."""
    import threading

    from accord.channels.email.imap import ImapPoller
    from accord.channels.email.smtp_server import SmtpListener

    stops: list[Callable[[], None]] = []
    if port:
        listener = SmtpListener(channel, host=host, port=port)
        listener.start()
        stops.append(listener.stop)
        out.print(f"receiving mail by SMTP on {host}:{port}")
    if imap and any(m.imap for m in channel.mailboxes.all(active_only=True)):
        stop = threading.Event()
        poller = threading.Thread(
            target=ImapPoller(channel).run, args=(stop,), name="accord-imap", daemon=True
        )
        poller.start()
        stops.append(stop.set)
        out.print("polling IMAP mailboxes")

    def stop_all() -> None:
        for stop_one in stops:
            stop_one()

    return stop_all


@case_app.command("new")
def case_new(
    title: Annotated[str, typer.Argument(help="What the case is about.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
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

    node = _open(data, database)
    topics = []
    for spec in topic or []:
        slug, sep, label = spec.partition("=")
        if not sep or not label.strip():
            raise _fail(f"--topic takes 'id=Title', got {spec!r}")
        topics.append({"topic": slug.strip(), "title": label.strip()})
    try:
        outcome = _services(node).negotiation.open_case(
            Actor(member=member, via="cli"),
            title=title,
            party_id=party_slug(node.name),
            party_name=node.name,
            party_url=node.url,
            customer={"name": customer} if customer else None,
            topics=topics,
        )
    except (ServiceError, AccordError) as exc:
        raise _fail(str(exc)) from exc
    out.print(outcome.case_id)


@case_app.command("post")
def case_post(
    case: CaseArg,
    text: Annotated[str, typer.Argument(help="The message.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    member: Annotated[str, typer.Option(help="Who is writing.")] = "cli",
) -> None:
    """Post a message to a case as this node."""
    from accord.service.errors import ServiceError
    from accord.service.negotiation import Actor

    node = _open(data, database)
    try:
        outcome = _services(node).negotiation.post_message(
            Actor(member=member, via="cli"), _case_id(node, case), text
        )
    except (ServiceError, AccordError) as exc:
        raise _fail(str(exc)) from exc
    out.print(outcome.event_ids[0])


@case_app.command("list")
def case_list(
    data: DataDir = None,
    database: DatabaseUrl = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many cases.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="How many to skip.")] = 0,
) -> None:
    """List the cases this node holds, most recently changed first."""
    node = _open(data, database)
    table = Table("case", "title", "events", "resolved", "opened")
    for row in node.cases.list_cases(limit=limit, offset=offset):
        table.add_row(
            row.case_id[:19],
            row.title,
            str(row.event_count),
            "yes" if row.resolved else "no",
            row.opened_at,
        )
    out.print(table)


@case_app.command("show")
def case_show(
    case: CaseArg,
    data: DataDir = None,
    database: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the state as JSON.")] = False,
) -> None:
    """Show a case: parties, topics, agreed terms, proposals, satisfaction, evidence."""
    node = _open(data, database)
    state = node.cases.state(_case_id(node, case))
    assert state is not None
    if as_json:
        sys.stdout.write(orjson.dumps(state, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    _render_state(state)


def _render_state(s: Mapping[str, Any]) -> None:
    from accord.core.crypto import fingerprint

    out.print(f"[bold]{s['title']}[/bold]  {s['case']}")
    status = "resolved" if s["resolved"] else "open"
    out.print(
        f"{status}; agreement v{s['terms']['version']}; {s['events']} events, "
        f"{s['messages']} messages; reopened {s['reopened']} times"
    )
    parties = Table("party", "name", "kind", "speaks through", "satisfied", title="Parties")
    for pid, p in s["parties"].items():
        voice = fingerprint(p["node"]) if p["node"] else f"hosted by {fingerprint(p['hosted_by'])}"
        parties.add_row(pid, p["name"], p["kind"], voice, "yes" if pid in s["satisfied"] else "")
    out.print(parties)
    if s["topics"]:
        topics = Table("topic", "title", "state", title="Topics")
        for tid, t in s["topics"].items():
            topics.add_row(tid, t["title"], t["state"])
        out.print(topics)
    terms = s["terms"]
    if terms["data"] or s["info"]:
        data = Table("item", "value", "", title="Data items")
        for key, item in terms["data"].items():
            data.add_row(key, _value(item["value"]), "agreed")
        for key, item in s["info"].items():
            data.add_row(key, _value(item["value"]), f"from {item['by']}")
        out.print(data)
    if terms["activities"] or s["progress"]:
        acts = Table("activity", "owner", "due", "state", title="Activities")
        for aid, progress in s["progress"].items():
            a = terms["activities"].get(aid, progress)
            acts.add_row(f"{a['title']} ({aid})", a["owner"], a.get("due") or "", progress["state"])
        out.print(acts)
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
        out.print(props)
    for item in s["evidence"]:
        out.print(
            f"[yellow]evidence[/yellow] {item['event'][:19]} {item['type']}: {item['reason']}"
        )
    for item in s["equivocations"]:
        out.print(
            f"[red]equivocation[/red] by {fingerprint(item['author'])} at seq "
            f"{item['seq']}: {', '.join(e[:19] for e in item['events'])}"
        )


def _value(value: dict[str, Any]) -> str:
    if value["type"] == "money":
        return f"{value['amount']} {value['currency']}" + (
            f"/{value['per']}" if "per" in value else ""
        )
    if value["type"] == "file":
        return f"{value['name']} ({value['size']} bytes)"
    return str(value["value"])


@case_app.command("log")
def case_log(
    case: CaseArg,
    data: DataDir = None,
    database: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="One wire-form event per line.")] = False,
) -> None:
    """Print a case's events in the deterministic (depth, id) order."""
    node = _open(data, database)
    case_id = _case_id(node, case)
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
    out.print(table)


@case_app.command("hash")
def case_hash(case: CaseArg, data: DataDir = None, database: DatabaseUrl = None) -> None:
    """Print the case's state hash: identical on every node holding the same events."""
    node = _open(data, database)
    out.print(node.cases.state_hash(_case_id(node, case)))


@app.command()
def export(
    case: CaseArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="Bundle file to write.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
) -> None:
    """Write a case's signed bundle, which `accord verify` checks offline."""
    from accord.core.bundle import write_bundle
    from accord.core.state import state_hash

    node = _open(data, database)
    case_id = _case_id(node, case)
    state = node.cases.state(case_id)
    assert state is not None
    bundle = write_bundle(case_id, node.cases.events(case_id), state, exported_by=node.key.public)
    output.write_bytes(bundle)
    out.print(f"wrote {state['events']} events of {case_id} to {output}")
    out.print(f"state {state_hash(state)}")


@app.command("import")
def import_bundle(
    file: Annotated[Path, typer.Argument(help="A bundle written by `accord export`.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    batch: Annotated[int, typer.Option(min=1, help="Events per transaction.")] = 1000,
) -> None:
    """Verify every event of a bundle and store the case on this node."""
    from accord.core.events import parse_wire

    node = _open(data, database)
    lines = file.read_bytes().splitlines()[1:]
    stored = duplicates = rejected = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
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
                    err.print(f"[red]rejected[/red] line: {exc}")
            result = node.cases.append(chunk, strict=False)
            stored += len(result.stored)
            duplicates += len(result.duplicates)
            rejected += len(result.rejected)
            for item in result.rejected:
                err.print(f"[red]rejected[/red] {item.event_id[:19]}: {item.message}")
            progress.advance(task, len(lines[start : start + batch]))
    out.print(f"stored {stored}, already held {duplicates}, rejected {rejected}")
    if rejected:
        raise typer.Exit(1)


@app.command()
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
        raise _fail(f"cannot read {file}: {exc.strerror}", 2) from exc
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
        out.print(f"case   {report.case}")
        out.print(f"events {report.events} verified")
        if report.state_hash:
            out.print(f"state  {report.state_hash}")
        for p in report.problems:
            where = f"line {p.line}" + (f" ({p.event[:19]})" if p.event else "")
            out.print(f"[red]FAIL[/red] {where}: {p.message}")
        for e in report.evidence:
            out.print(f"[red]RULE[/red] {e['event'][:19]} {e['type']}: {e['reason']}")
        for q in report.equivocations:
            out.print(
                f"[red]FORK[/red] author {fingerprint(q['author'])} signed "
                f"{len(q['events'])} events at seq {q['seq']}"
            )
        out.print(
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
        raise _fail(f"--zone {zone!r} is not a time zone (try Europe/London or UTC)", 2) from exc
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
            raise _fail(f"cannot write {path}: {exc.strerror}", 2) from exc
        err.print(f"report written to {path}", markup=False)


@db_app.command("upgrade")
def db_upgrade(data: DataDir = None, database: DatabaseUrl = None) -> None:
    """Apply pending schema migrations (safe to run repeatedly)."""
    from accord.node import default_data_dir
    from accord.store import migrate
    from accord.store.database import Database, redact, resolve_url

    db = Database(resolve_url(data or default_data_dir(), database))
    try:
        before = migrate.current(db)
        migrate.upgrade(db)
        after = migrate.current(db)
    finally:
        db.dispose()
    out.print(
        f"{redact(db.url)}: {before or 'empty'} → {after}"
        if before != after
        else f"{redact(db.url)}: already at {after}"
    )


@db_app.command("current")
def db_current(data: DataDir = None, database: DatabaseUrl = None) -> None:
    """Print the schema revision of the database and the one this Accord needs."""
    from accord.node import default_data_dir
    from accord.store import migrate
    from accord.store.database import Database, resolve_url

    db = Database(resolve_url(data or default_data_dir(), database))
    try:
        current = migrate.current(db)
    finally:
        db.dispose()
    out.print(f"database at {current or 'nothing'}; this Accord needs {migrate.head()}")


# Members, tokens and portal links live in accord.cli_auth, which imports the helpers above.
from accord.cli_auth import member_app, portal_app, token_app  # noqa: E402

app.add_typer(member_app, name="member")
app.add_typer(token_app, name="token")
app.add_typer(portal_app, name="portal")

# Node identity, invitations and sync live in accord.cli_federation.
from accord.cli_federation import invite, join, node_app, peers, sync  # noqa: E402

app.add_typer(node_app, name="node")
app.command()(invite)
app.command()(join)
app.command()(sync)
app.command()(peers)

# Teams, routing, handoffs, calendar, targets and notifications: accord.cli_service.
from accord.cli_service import (  # noqa: E402
    calendar_app,
    handoff,
    notifications,
    routing_app,
    sla,
    team_app,
)

app.add_typer(team_app, name="team")
app.add_typer(routing_app, name="routing")
app.add_typer(calendar_app, name="calendar")
app.command()(handoff)
app.command()(sla)
app.command()(notifications)

# The job worker and the job queue's commands live in accord.cli_jobs.
from accord.cli_jobs import jobs_app, worker  # noqa: E402

app.add_typer(jobs_app, name="jobs")
app.command()(worker)

# Cases on a running node through its REST API (accord.client): accord.cli_remote.
from accord.cli_remote import remote_app  # noqa: E402

app.add_typer(remote_app, name="remote")


# Mailboxes and mail in and out: accord.cli_mail.
from accord.cli_mail import mail_app, mailbox_app  # noqa: E402

app.add_typer(mailbox_app, name="mailbox")
app.add_typer(mail_app, name="mail")

# Imports from other help desks: accord.cli_import.
from accord.cli_import import import_app  # noqa: E402

app.add_typer(import_app, name="import-from")

# The single customer view: accord.cli_customers.
from accord.cli_customers import customer_app  # noqa: E402

app.add_typer(customer_app, name="customer")

# Messaging-platform accounts: accord.cli_channels.
from accord.cli_channels import channel_app  # noqa: E402

app.add_typer(channel_app, name="channel")

# Operations: accord.cli_ops.
from accord.cli_ops import backup, restore  # noqa: E402

app.command("backup")(backup)
app.command("restore")(restore)
import accord.cli_secrets  # noqa: E402, F401  # accord secrets status|rotate

# Templates, outcome metrics, targets, comparisons, demo data, readiness: accord.cli_outcomes.
from accord.cli_outcomes import (  # noqa: E402
    compare,
    demo,
    goal_app,
    metrics_app,
    practice_app,
    readiness,
    template_app,
)

app.add_typer(template_app, name="template")
app.add_typer(metrics_app, name="metrics")
app.add_typer(goal_app, name="goal")
app.add_typer(practice_app, name="practice")
app.command()(compare)
app.command()(demo)
app.command()(readiness)


def main() -> None:
    app()
