"""``accord secrets status`` and ``accord secrets rotate``: the key that seals the secrets
in the database (``accord.store.secrets``).
Uses ``accord.cli.common``; registered by ``accord.cli.root``."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from accord.cli import common
from accord.cli.common import DatabaseReadUrl, DatabaseUrl, DataDir, fail, open_node

secrets_app = typer.Typer(
    help="The key that seals the secrets in the database: its status, and rotating it.",
    no_args_is_help=True,
)


@secrets_app.command("status")
def status(
    data: DataDir = None, database: DatabaseUrl = None, database_read: DatabaseReadUrl = None
) -> None:
    """Where the secrets key is, which key it is, and how many secrets it seals."""
    from accord.store import secrets as sealed

    node = open_node(data, database)
    found = sealed.status(node.db, node.secrets)
    common.out.print(f"secrets key {escape(str(found.path))} (key {found.key_id})")
    table = Table("column", "sealed", "in clear", "other key")
    for column in sealed.COLUMNS:
        label = column.label
        table.add_row(
            label,
            str(found.sealed.get(label, 0)),
            str(found.clear.get(label, 0)),
            str(found.other_keys.get(label, 0)),
        )
    common.out.print(table)
    if found.clear or found.other_keys:
        common.err.print("[red]some secrets are not sealed with this key[/red]")
        raise typer.Exit(1)


@secrets_app.command("rotate")
def rotate(
    data: DataDir = None, database: DatabaseUrl = None, database_read: DatabaseReadUrl = None
) -> None:
    """Seal every secret with a new key, in one transaction. The old key is kept as
    secrets.key.old until the transaction committed; a rotation cut short is finished or
    undone the next time the node opens. Running processes of the node take up the new key
    by themselves."""
    from accord.store import secrets as sealed

    node = open_node(data, database)
    before = node.secrets.id
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=common.err
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def tell(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bar.add_task(f"re-sealing {label}", total=total)
            bar.update(tasks[label], completed=done)

        try:
            new = sealed.rotate(node.db, node.secrets, progress=tell)
        except sealed.SecretsError as exc:
            raise fail(str(exc)) from exc
    common.out.print(
        f"rotated the secrets key {escape(str(new.path))}: key {before} → {new.id}; "
        "make a new backup (backups hold the key)"
    )
