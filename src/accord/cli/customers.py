"""``accord customer``: the single customer view from the terminal — find a customer, see
every identity, case and message across channels, and link, unlink, merge, unmerge and
split records (each change audited with ``--by``, the member making it).
Uses ``accord.cli.common``; registered by ``accord.cli.root``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from accord.customers.records import CustomerRecords
    from accord.node import Node
    from accord.privacy import Privacy
from accord.cli import common
from accord.cli.common import DatabaseReadUrl, DatabaseUrl, DataDir, case_id_of, fail, open_node
from accord.service.errors import ServiceError

customer_app = typer.Typer(
    help="Customers: one record per person across channels; link, merge and split them.",
    no_args_is_help=True,
)

CustomerArg = Annotated[int, typer.Argument(help="Customer id.", min=1)]
By = Annotated[str, typer.Option("--by", help="Username of the member making the change.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _records(data: DataDir, database: DatabaseUrl) -> tuple[Node, CustomerRecords]:
    from accord.customers.records import CustomerRecords

    node = open_node(data, database)
    return node, CustomerRecords(node.cases)


def _member(node: Node, username: str) -> str:
    from accord.auth.members import MemberStore

    if MemberStore(node.db).by_username(username) is None:
        raise fail(f"no member {username!r}")
    return username


def _show(found: dict[str, Any], as_json: bool) -> None:
    if as_json:
        common.out.print_json(orjson.dumps(found).decode())
        return
    merged = found["merged"]
    common.out.print(
        f"customer {found['id']}: {escape(str(found['name']))}"
        + (f" (with merged records {merged})" if merged else "")
    )
    identities = Table("kind", "identity", "verified", "record", title="identities")
    for i in found["identities"]:
        identities.add_row(
            i["kind"], escape(i["value"]), "yes" if i["verified"] else "", str(i["record"])
        )
    common.out.print(identities)
    cases = Table("case", "title", "state", "updated", title="cases")
    for c in found["cases"]:
        cases.add_row(
            c["case"][:19],
            escape(c["title"]),
            "resolved" if c["resolved"] else "open",
            c["updated"][:16],
        )
    common.out.print(cases)


def customer_list(
    query: Annotated[str, typer.Argument(help="Part of a name, address or number.")] = "",
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Find customers by name or identity."""
    _, records = _records(data, database)
    table = Table("id", "name", "identities", "cases", "open")
    for found in records.search(query, limit=limit):
        table.add_row(
            str(found["id"]),
            escape(found["name"]),
            escape(", ".join(found["identities"])),
            str(found["cases"]),
            str(found["open_cases"]),
        )
    common.out.print(table)


def customer_show(
    customer: CustomerArg,
    as_json: AsJson = False,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """A customer with every identity and case (merged records included)."""
    _, records = _records(data, database)
    try:
        _show(records.view(customer), as_json)
    except ServiceError as exc:
        raise fail(exc.message) from exc


def customer_timeline(
    customer: CustomerArg,
    limit: Annotated[int, typer.Option(min=1, max=2000)] = 50,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Every message of every case of the customer, across channels, oldest first."""
    _, records = _records(data, database)
    try:
        items = records.timeline(customer, limit=limit)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    for item in items:
        who = "customer" if item["customer"] else item["from"]
        common.out.print(
            f"[dim]{item['time'][:16]} {item['via'] or '-'} #{item['case'][:12]}[/dim] "
            f"[bold]{escape(who)}[/bold]: {escape(item['text'][:300])}"
        )


def _change(action: Callable[[], dict[str, Any]]) -> None:
    try:
        found = action()
    except ServiceError as exc:
        raise fail(exc.message) from exc
    _show(found, False)


def customer_link(
    customer: CustomerArg,
    kind: Annotated[str, typer.Argument(help="email, phone, whatsapp, telegram, messenger, …")],
    value: Annotated[str, typer.Argument(help="The address, number or id.")],
    by: By,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Link an identity to the customer."""
    node, records = _records(data, database)
    member = _member(node, by)
    _change(lambda: records.link(customer, kind, value, by=member))


def customer_unlink(
    customer: CustomerArg,
    kind: Annotated[str, typer.Argument(help="The identity's kind.")],
    value: Annotated[str, typer.Argument(help="The address, number or id.")],
    by: By,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Unlink an identity from the customer."""
    node, records = _records(data, database)
    member = _member(node, by)
    _change(lambda: records.unlink(customer, kind, value, by=member))


def customer_merge(
    customer: CustomerArg,
    other: Annotated[int, typer.Argument(help="The record that joins the customer.", min=1)],
    by: By,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Merge another record into the customer (nothing is lost; undo with unmerge)."""
    node, records = _records(data, database)
    member = _member(node, by)
    _change(lambda: records.merge(customer, other, by=member))


def customer_unmerge(
    customer: CustomerArg, by: By, data: DataDir = None, database: DatabaseUrl = None
) -> None:
    """Undo a merge: the record stands on its own again."""
    node, records = _records(data, database)
    member = _member(node, by)
    _change(lambda: records.unmerge(customer, by=member))


def customer_split(
    customer: CustomerArg,
    name: Annotated[str, typer.Option(help="Name of the new customer.")],
    by: By,
    identity: Annotated[
        list[str] | None, typer.Option(help="KIND:VALUE to move (repeat for several).")
    ] = None,
    case: Annotated[list[str] | None, typer.Option(help="Case id to move (repeat).")] = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Move identities and cases that belong to another person to a new customer."""
    node, records = _records(data, database)
    member = _member(node, by)
    pairs = []
    for item in identity or []:
        kind, sep, value = item.partition(":")
        if not sep:
            raise fail(f"--identity takes KIND:VALUE, not {item!r}")
        pairs.append((kind, value))
    _change(
        lambda: records.split(
            customer,
            name=name,
            identities=pairs,
            case_ids=[case_id_of(node, c) for c in case or []],
            by=member,
        )
    )


def customer_history(
    customer: CustomerArg, data: DataDir = None, database: DatabaseUrl = None
) -> None:
    """Every link, unlink, merge, unmerge and split of the customer."""
    _, records = _records(data, database)
    try:
        changes = records.history(customer)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    table = Table("when", "who", "action", "customer", "other", "detail")
    for c in changes:
        table.add_row(
            c.at.isoformat()[:16],
            escape(c.by),
            c.action,
            str(c.customer_id),
            str(c.other_id or ""),
            escape(orjson.dumps(c.detail).decode()[:120]),
        )
    common.out.print(table)


def customer_suggest(
    data: DataDir = None, database: DatabaseUrl = None, database_read: DatabaseReadUrl = None
) -> None:
    """Records that are probably one person (a shared phone or email), and why."""
    _, records = _records(data, database)
    found = records.suggestions()
    if not found:
        common.out.print("no suggestions: no two records share a phone number or email address")
    for s in found:
        a, b = s["customers"]
        common.out.print(
            f"customers {a} and {b}: {escape(s['reason'])} (accord customer merge {a} {b} --by …)"
        )


def _privacy(node: Node) -> Privacy:
    from accord.channels.blobs import node_blobs
    from accord.privacy import Privacy

    return Privacy(node, node_blobs(node.data_dir))


def customer_export(
    customer: CustomerArg,
    out: Annotated[Path, typer.Option("--out", help="Where to write the ZIP.", dir_okay=False)],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """All of the customer's data as a ZIP (a GDPR access request)."""
    node = open_node(data, database)
    try:
        with common.err.status("collecting"):
            archive = _privacy(node).export(customer)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    out.write_bytes(archive)
    common.out.print(f"wrote {len(archive):,} bytes to {escape(str(out))}")


def customer_erase(
    customer: CustomerArg,
    by: By,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Erase the customer's node-private data (the shared case logs stay with the parties)."""
    if not yes:
        raise fail("erasing cannot be undone: add --yes to confirm (export first if needed)")
    node = open_node(data, database)
    member = _member(node, by)
    try:
        done = _privacy(node).erase(customer, by=member)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    removed = ", ".join(f"{k} {v}" for k, v in done["removed"].items())
    common.out.print(
        f"customer {done['customer']} erased on {done['at'][:16]} by {done['by']}: {removed}"
    )


def customer_erasures(
    data: DataDir = None, database: DatabaseUrl = None, database_read: DatabaseReadUrl = None
) -> None:
    """The record of every erasure: when, by whom, how much of what."""
    table = Table("customer", "when", "by", "removed")
    for done in _privacy(open_node(data, database)).erasures():
        table.add_row(
            str(done["customer"]),
            done["at"][:16],
            escape(done["by"]),
            ", ".join(f"{k} {v}" for k, v in done["removed"].items()),
        )
    common.out.print(table)


customer_app.command("list")(customer_list)
customer_app.command("show")(customer_show)
customer_app.command("timeline")(customer_timeline)
customer_app.command("link")(customer_link)
customer_app.command("unlink")(customer_unlink)
customer_app.command("merge")(customer_merge)
customer_app.command("unmerge")(customer_unmerge)
customer_app.command("split")(customer_split)
customer_app.command("history")(customer_history)
customer_app.command("suggest")(customer_suggest)
customer_app.command("export")(customer_export)
customer_app.command("erase")(customer_erase)
customer_app.command("erasures")(customer_erasures)
