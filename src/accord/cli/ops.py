"""``accord backup`` and ``accord restore`` (accord.ops.backup).
Uses ``accord.cli.common``; registered by ``accord.cli.root``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from accord.cli import common
from accord.cli.common import DatabaseReadUrl, DatabaseUrl, DataDir, fail, open_node


def backup(
    file: Annotated[Path, typer.Argument(help="Where to write the backup (.tar.gz).")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Back the node up into one file while it runs: a consistent snapshot of every table,
    the node key and the blobs. Keep it as safe as the key."""
    from accord.ops.backup import backup as make_backup

    node = open_node(data, database)
    with common.err.status("backing up") as status:
        manifest = make_backup(
            node, file, progress=lambda what, n: status.update(f"backed up {what} ({n})")
        )
    rows = sum(manifest["rows"].values())
    common.out.print(
        f"backed up {escape(node.name)}: {rows} rows in {len(manifest['rows'])} tables, "
        f"{manifest['blobs']} files, schema {manifest['revision']} → {escape(str(file))}"
    )


def restore(
    file: Annotated[Path, typer.Argument(help="A backup made by `accord backup`.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Verify every case after restoring.")
    ] = True,
) -> None:
    """Make a node from a backup, in an empty data directory and database."""
    from accord.node import default_data_dir
    from accord.ops.backup import BackupError
    from accord.ops.backup import restore as restore_backup

    target = data or default_data_dir()
    try:
        with common.err.status("restoring") as status:
            done = restore_backup(
                file,
                target,
                database=database,
                verify=verify,
                progress=lambda what, n: status.update(f"restored {what} ({n})"),
            )
    except BackupError as exc:
        raise fail(str(exc)) from exc
    common.out.print(
        f"restored {escape(done.node.name)} ({done.node.fingerprint}) into {escape(str(target))}: "
        f"{sum(done.rows.values())} rows, {done.blobs} files"
    )
    if verify:
        common.out.print(f"verified {done.verified} cases: every signature, chain and rule holds")
    for problem in done.problems:
        common.err.print(f"[red]problem[/red] {escape(problem)}")
    done.node.close()
    if done.problems:
        raise typer.Exit(1)
