"""``accord init`` and ``accord db``: a node's data directory, key and database schema.

These are the commands that run before a node can be opened (``init`` makes it, ``db
upgrade`` brings an existing database to this version's schema), so they make or reach
the database themselves instead of going through ``accord.cli.common.open_node``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from accord.cli import common
from accord.cli.common import DatabaseUrl, DataDir, adopt, fail

db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)


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
        common.out.print(f"node already set up in {directory}")
        return
    try:
        node = Node.init(directory, name=name, database=database, personal=personal, url=url)
    except NodeError as exc:
        raise fail(str(exc)) from exc
    adopt(node)
    common.out.print(f"created node [bold]{name}[/bold] in {directory}")
    common.out.print(f"  key          {node.key.public}")
    common.out.print(f"  fingerprint  {node.fingerprint}")
    common.out.print(f"  database     {redact(node.db.url)}")


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
    common.out.print(
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
    common.out.print(f"database at {current or 'nothing'}; this Accord needs {migrate.head()}")
