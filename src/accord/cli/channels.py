"""``accord channel``: the messaging-platform accounts Accord answers on (WhatsApp,
Messenger, Instagram, Telegram, Twilio SMS and WhatsApp, X). Secrets come from the
environment (``ACCORD_CHANNEL_SECRET_<NAME>``, e.g. ``ACCORD_CHANNEL_SECRET_ACCESS_TOKEN``)
or a hidden prompt, never from the command line, and are never printed. ``accord
outbound`` (every channel's outgoing messages, mail too) lives here, beside the accounts.
Uses ``accord.cli.common``; registered by ``accord.cli.root``."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from accord.channels.connectors.fields import FIELDS, OPTIONAL
from accord.cli import common
from accord.cli.common import DatabaseReadUrl, DatabaseUrl, DataDir, fail, node_services, open_node
from accord.service.errors import ServiceError

channel_app = typer.Typer(
    help="Messaging-platform accounts: WhatsApp, Messenger, Instagram, Telegram, SMS, X.",
    no_args_is_help=True,
)


def channel_add(
    platform: Annotated[str, typer.Argument(help=", ".join(FIELDS))],
    name: Annotated[str, typer.Argument(help="A name for the account, e.g. 'UK WhatsApp'.")],
    setting: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE (repeat): phone_number_id, page_id, account_sid, …"),
    ] = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Add an account; prints the webhook path to give the platform."""
    if platform not in FIELDS:  # the platforms (accord.channels.connectors.fields)
        raise fail(f"platform must be one of {', '.join(FIELDS)}")
    settings = {}
    for item in setting or []:
        key, sep, value = item.partition("=")
        if not sep or key not in (*FIELDS[platform][0], *OPTIONAL):
            raise fail(
                f"--setting takes KEY=VALUE with KEY one of "
                f"{', '.join((*FIELDS[platform][0], *OPTIONAL))}"
            )
        settings[key] = value
    secrets: dict[str, str] = {}
    for key in FIELDS[platform][1]:
        given = os.environ.get(f"ACCORD_CHANNEL_SECRET_{key.upper()}")
        secrets[key] = given if given is not None else str(typer.prompt(key, hide_input=True))
    connectors = node_services(open_node(data, database)).connectors
    try:
        made = connectors.accounts.add(platform, name, settings, secrets)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(
        f"added {platform} account {made.id} ({escape(made.name)}): webhook /hooks/{made.id}"
    )


def channel_list(
    data: DataDir = None, database: DatabaseUrl = None, database_read: DatabaseReadUrl = None
) -> None:
    """The accounts (secrets only by name)."""
    table = Table("id", "platform", "name", "settings", "secrets set", "active")
    for account in node_services(open_node(data, database)).connectors.accounts.all():
        table.add_row(
            str(account.id),
            account.platform,
            escape(account.name),
            escape(", ".join(f"{k}={v}" for k, v in account.settings.items())),
            ", ".join(sorted(account.secrets)),
            "yes" if account.active else "no",
        )
    common.out.print(table)


def channel_remove(
    account: Annotated[int, typer.Argument(help="Account id.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Stop answering on an account (kept for its messages' history)."""
    try:
        node_services(open_node(data, database)).connectors.accounts.remove(account)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(f"account {account} is no longer used")


def outbound(
    channel: Annotated[
        str | None, typer.Option(help="Only this channel (email, whatsapp, sms, …).")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(help="queued, sent, delivered, read, failed, bounced or cancelled."),
    ] = None,
    case: Annotated[str | None, typer.Option(help="Only this case (id or prefix).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Outgoing messages on every channel and their fate, newest first.

    Queued (attempts, last error), sent, delivered or read where the platform reports it,
    failed with the reason, bounced or cancelled."""
    from accord.channels.outbound import Outbound

    node = open_node(data, database)
    case_id = None
    if case:
        case_id = node.cases.find_case(case)
        if case_id is None:
            raise fail(f"no case {case!r} (or the prefix names several)")
    try:
        rows = Outbound(node.db).list(channel=channel, status=status, case_id=case_id, limit=limit)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    table = Table("id", "channel", "status", "to", "case", "attempts", "when", "error")
    for m in rows:
        table.add_row(
            str(m["id"]),
            m["channel"],
            m["status"],
            escape(", ".join(m["to"])[:40]),
            (m["case"] or "-")[:15],
            str(m["attempts"]),
            (m["done"] or m["created"])[:19],
            escape((m["error"] or "")[:300]),
        )
    common.out.print(table)


channel_app.command("add")(channel_add)
channel_app.command("list")(channel_list)
channel_app.command("remove")(channel_remove)
