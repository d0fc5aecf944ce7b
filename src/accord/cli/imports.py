"""``accord import-from``: customers and cases from CSV, Request Tracker and Zendesk exports.

Every command reports what it did (or, with ``--dry-run``, would do) and is safe to run
again: records imported before are recognised by their ids in the other system, under the
``--source`` name (keep it the same for the same system).
Uses ``accord.cli.common``; registered by ``accord.cli.root``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from accord.cli import common
from accord.cli.common import DatabaseReadUrl, DatabaseUrl, DataDir, fail, open_node

if TYPE_CHECKING:
    from accord.importing.records import Export
    from accord.importing.writer import Report

import_app = typer.Typer(
    help="Import customers and cases from CSV, Request Tracker or Zendesk (safe to repeat).",
    no_args_is_help=True,
)

DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Report what would be imported; change nothing.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]


def _run(
    export: Export,
    source: str,
    dry_run: bool,
    as_json: bool,
    data: Path | None,
    database: str | None,
) -> None:
    from accord.importing.writer import Importer

    node = open_node(data, database)
    total = len(export.people) + len(export.tickets)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=common.err,
        transient=True,
    ) as progress:
        task = progress.add_task("checking (dry run)" if dry_run else "importing", total=total)
        report = Importer(node).run(
            source, export, dry_run=dry_run, progress=lambda n: progress.advance(task, n)
        )
    if as_json:
        common.out.print_json(orjson.dumps(report.to_json()).decode())
    else:
        _print(report)
    if report.failed:
        raise typer.Exit(1)


def _print(report: Report) -> None:
    from accord.importing.writer import COUNTS

    what = "would import (dry run, nothing changed)" if report.dry_run else "imported"
    table = Table(title=f"{escape(report.source)}: {what}", show_header=False)
    for name in COUNTS:
        table.add_row(name.replace("_", " "), str(report.counts[name]))
    common.out.print(table)
    if not report.changed and not report.failed:
        common.out.print("nothing new: every record was imported before")
    for record, why in report.skipped[:50]:
        common.err.print(f"[yellow]skipped[/yellow] {escape(record)}: {escape(why)}")
    if len(report.skipped) > 50:
        common.err.print(f"… and {len(report.skipped) - 50} more skipped (see --json)")
    for record, error in report.failed:
        common.err.print(f"[red]failed[/red] {escape(record)}: {escape(error)}")


def _read(reader: Callable[[], Export]) -> Export:
    from accord.importing.records import ImportFormatError

    try:
        return reader()
    except ImportFormatError as exc:
        raise fail(str(exc)) from exc


def import_csv(
    customers: Annotated[
        Path | None, typer.Option(help="customers.csv: id,name,email,phone.", dir_okay=False)
    ] = None,
    cases: Annotated[
        Path | None,
        typer.Option(
            help="cases.csv: id,customer_id,customer_name,customer_email,subject,status,"
            "created_at,text.",
            dir_okay=False,
        ),
    ] = None,
    messages: Annotated[
        Path | None,
        typer.Option(
            help="messages.csv: case_id,id,author,author_name,created_at,text,private.",
            dir_okay=False,
        ),
    ] = None,
    source: Annotated[str | None, typer.Option(help="Name of the system (default: csv).")] = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Import customers and cases from CSV files (docs/import.md has the columns)."""
    from accord.importing.csv_files import read_csv

    export = _read(lambda: read_csv(customers, cases, messages))
    _run(export, source or "csv", dry_run, as_json, data, database)


def import_zendesk(
    folder: Annotated[Path, typer.Argument(help="Folder with users.json and tickets.json.")],
    source: Annotated[
        str | None, typer.Option(help="Name of the Zendesk account (default: zendesk).")
    ] = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Import a Zendesk JSON export: end users become customers, tickets cases."""
    from accord.importing.zendesk import read_zendesk

    export = _read(lambda: read_zendesk(folder))
    _run(export, source or "zendesk", dry_run, as_json, data, database)


def import_rt(
    folder: Annotated[
        Path, typer.Argument(help="Folder with ticket-N.txt and ticket-N-history.txt files.")
    ],
    source: Annotated[
        str | None, typer.Option(help="Name of the RT instance (default: rt).")
    ] = None,
    dry_run: DryRun = False,
    as_json: AsJson = False,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Import Request Tracker tickets fetched from its REST 1.0 interface."""
    from accord.importing.rt import read_rt

    export = _read(lambda: read_rt(folder))
    _run(export, source or "rt", dry_run, as_json, data, database)


import_app.command("csv")(import_csv)
import_app.command("zendesk")(import_zendesk)
import_app.command("rt")(import_rt)
