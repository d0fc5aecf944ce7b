"""``accord backup`` and ``accord restore`` (accord.ops.backup). Imported at the end of
``accord.cli``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape


def backup(
    file: Annotated[Path, typer.Argument(help="Where to write the backup (.tar.gz).")],
    data: DataDir = None,
    database: DatabaseUrl = None,
) -> None:
    """Back the node up into one file while it runs: a consistent snapshot of every table,
    the node key and the blobs. Keep it as safe as the key."""
    from accord.ops.backup import backup as make_backup

    node = _open(data, database)
    with cli.err.status("backing up") as status:
        manifest = make_backup(
            node, file, progress=lambda what, n: status.update(f"backed up {what} ({n})")
        )
    rows = sum(manifest["rows"].values())
    cli.out.print(
        f"backed up {escape(node.name)}: {rows} rows in {len(manifest['rows'])} tables, "
        f"{manifest['blobs']} files, schema {manifest['revision']} → {escape(str(file))}"
    )


def restore(
    file: Annotated[Path, typer.Argument(help="A backup made by `accord backup`.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
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
        with cli.err.status("restoring") as status:
            done = restore_backup(
                file,
                target,
                database=database,
                verify=verify,
                progress=lambda what, n: status.update(f"restored {what} ({n})"),
            )
    except BackupError as exc:
        raise _fail(str(exc)) from exc
    cli.out.print(
        f"restored {escape(done.node.name)} ({done.node.fingerprint}) into {escape(str(target))}: "
        f"{sum(done.rows.values())} rows, {done.blobs} files"
    )
    if verify:
        cli.out.print(f"verified {done.verified} cases: every signature, chain and rule holds")
    for problem in done.problems:
        cli.err.print(f"[red]problem[/red] {escape(problem)}")
    done.node.close()
    if done.problems:
        raise typer.Exit(1)


from accord import cli  # noqa: E402
from accord.cli import DatabaseUrl, DataDir, _fail, _open  # noqa: E402
