"""What every ``accord`` command shares: the ``--data``/``--database``/``--database-read``
options, the consoles, the error exit, and the node and services a command opens.

The command groups (``accord.cli.cases``, ``accord.cli.mail``, …) import this module and
never one another; ``accord.cli.root`` imports the groups and assembles the Typer app.
This module imports no group module (an import-linter contract in pyproject.toml), so the
command line has no import cycle and any module of it can be imported first.

It stays light: ``accord --help`` imports every group, and through them this module, so
the database, the services and the web stack are imported inside the helpers that need
them (tests/ops/test_startup.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from accord.node import Node
    from accord.wiring import Services

out = Console(highlight=False)
"""Standard output; made again for each invocation (``reset``), so its width follows
``$COLUMNS`` at that moment."""
err = Console(stderr=True, highlight=False)
"""Standard error, for refusals, warnings and progress."""

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


def _remember_read_url(value: str | None) -> str | None:
    _read_url[0] = value
    return value


DatabaseReadUrl = Annotated[
    str | None,
    typer.Option(
        "--database-read",
        help="A PostgreSQL streaming replica for the reads that may lag: dashboards, "
        "outcomes, search, exports, inbox lists (default: $ACCORD_DATABASE_READ_URL or "
        "\\[database] read_url in accord.toml; none: every read on the primary).",
        callback=_remember_read_url,
    ),
]
"""``--database-read``: remembered by its callback and used by ``open_node``, so the
helpers that open a node for a command need not pass it along."""
CaseArg = Annotated[str, typer.Argument(help="Case id, or an unambiguous prefix of it.")]

_read_url: list[str | None] = [None]
_opened: list[Node] = []
_built: dict[int, Services] = {}


def reset() -> None:
    """A new invocation (the root callback): fresh consoles, no read URL remembered."""
    global out, err
    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    _read_url[0] = None


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on standard error; the exit to raise."""
    err.print(f"[red]error:[/red] {message}", soft_wrap=True)
    return typer.Exit(code)


def close_nodes() -> None:
    """Close the services and nodes this invocation opened (run when the command ends)."""
    while _built:
        _built.popitem()[1].close()
    while _opened:
        _opened.pop().close()


def open_node(data: Path | None, database: str | None, read_database: str | None = None) -> Node:
    """The node in ``data`` (default ``$ACCORD_HOME`` or ``~/.accord``), closed when the
    command ends; ``read_database`` defaults to the command's ``--database-read``."""
    from accord.node import Node, NodeError, default_data_dir

    try:
        node = Node.open(
            data or default_data_dir(),
            database=database,
            read_database=read_database or _read_url[0],
        )
    except NodeError as exc:
        raise fail(str(exc)) from exc
    _opened.append(node)
    return node


def adopt(node: Node) -> Node:
    """A node a command made itself (``accord init``), closed when the command ends."""
    _opened.append(node)
    return node


def node_services(node: Node) -> Services:
    """This command's services (``accord.wiring``), built once per process on the system
    clock. The followers of the case log and the pushes to peers are not run here:
    ``accord serve`` or ``accord worker`` find this command's events in the log."""
    from accord.wiring import Services

    if id(node) not in _built:
        _built[id(node)] = Services.build(node, inline_followers=False)
    return _built[id(node)]


def case_id_of(node: Node, ref: str) -> str:
    """The case id ``ref`` (an id or an unambiguous prefix) names, or a refusal."""
    case_id = node.cases.find_case(ref)
    if case_id is None:
        raise fail(f"no case matches {ref!r} on this node (see `accord case list`)")
    return case_id


def format_value(value: dict[str, Any]) -> str:
    """A data item's value as a person reads it (money with its currency, a file's name)."""
    if value["type"] == "money":
        return f"{value['amount']} {value['currency']}" + (
            f"/{value['per']}" if "per" in value else ""
        )
    if value["type"] == "file":
        return f"{value['name']} ({value['size']} bytes)"
    return str(value["value"])
