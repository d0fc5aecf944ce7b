"""``accord mailbox`` (the addresses Accord answers for) and ``accord mail`` (mail in and
out: hand in raw mail from an MTA, poll IMAP, the message log, release held mail, retry
failed mail, reply to a customer).

Passwords never go on the command line (where ``ps`` and shell history would keep them):
they come from ``$ACCORD_SMTP_PASSWORD`` / ``$ACCORD_IMAP_PASSWORD`` or a hidden prompt
(``--ask-smtp-password``), and are never printed.
Uses ``accord.cli.common``; registered by ``accord.cli.root``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from accord.channels.email.limits import DEFAULT_MAX_ATTACHMENT, DEFAULT_MAX_MESSAGE
from accord.cli import common
from accord.cli.common import (
    CaseArg,
    DatabaseReadUrl,
    DatabaseUrl,
    DataDir,
    case_id_of,
    fail,
    node_services,
    open_node,
)
from accord.service.errors import ServiceError

if TYPE_CHECKING:
    from accord.channels.email.mailboxes import Mailbox, Server
    from accord.channels.email.mailchannel import MailChannel
    from accord.node import Node

mailbox_app = typer.Typer(
    help="Mailboxes: the addresses Accord answers for, their SMTP relay and IMAP account.",
    no_args_is_help=True,
)
mail_app = typer.Typer(
    help="Mail in and out: hand in raw mail, poll IMAP, the message log, held and failed mail.",
    no_args_is_help=True,
)

Security = Annotated[str, typer.Option(help="none, starttls or tls.")]


def _now() -> datetime:
    return datetime.now(UTC)


def _channel(node: Node) -> MailChannel:
    return node_services(node).mail


def _password(env: str, ask: bool, what: str) -> str:
    if ask:
        return str(typer.prompt(f"{what} password", hide_input=True))
    return os.environ.get(env, "")


def _server(
    host: str | None, port: int | None, security: str, user: str, password: str, default: int
) -> Server | None:
    from accord.channels.email.mailboxes import Server

    if not host:
        return None
    return Server(
        host=host,
        port=port or default,
        security=security,  # type: ignore[arg-type]  # checked by Mailboxes
        username=user,
        password=password,
    )


def _show(mailbox: Mailbox) -> None:
    table = Table("", "", show_header=False, box=None)
    for key, value in mailbox.to_json().items():
        if isinstance(value, dict):
            value = (
                f"{value['host']}:{value['port']} ({value['security']}), user "
                f"{value['username'] or '-'}, password "
                + ("set" if value["password_set"] else "not set")
            )
        table.add_row(key, escape(str(value if value is not None else "-")))
    common.out.print(table)


def mailbox_add(
    address: Annotated[str, typer.Argument(help="The address, e.g. support@example.com.")],
    name: Annotated[str, typer.Option(help="The name mail is sent under.")] = "Support",
    smtp_host: Annotated[str | None, typer.Option(help="SMTP relay to send through.")] = None,
    smtp_port: Annotated[int | None, typer.Option(help="Its port (default 587).")] = None,
    smtp_security: Security = "starttls",
    smtp_user: Annotated[str, typer.Option(help="SMTP login (password: see above).")] = "",
    ask_smtp_password: Annotated[bool, typer.Option(help="Prompt for the SMTP password.")] = False,
    imap_host: Annotated[str | None, typer.Option(help="IMAP server to poll.")] = None,
    imap_port: Annotated[int | None, typer.Option(help="Its port (default 993).")] = None,
    imap_security: Security = "tls",
    imap_user: Annotated[str, typer.Option(help="IMAP login.")] = "",
    ask_imap_password: Annotated[bool, typer.Option(help="Prompt for the IMAP password.")] = False,
    imap_folder: Annotated[str, typer.Option(help="Folder to read.")] = "INBOX",
    poll_seconds: Annotated[int, typer.Option(help="Seconds between IMAP polls.")] = 60,
    max_attachment_mb: Annotated[
        float, typer.Option(help="Larger attachments are kept with the mail, not extracted.")
    ] = DEFAULT_MAX_ATTACHMENT / 1024 / 1024,
    max_message_mb: Annotated[
        float, typer.Option(help="Larger mail is refused (SMTP 552, mail receive exit 69).")
    ] = DEFAULT_MAX_MESSAGE / 1024 / 1024,
    reply_all: Annotated[
        bool, typer.Option(help="Replies copy (Cc) the others the customer's mail went to.")
    ] = True,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Add a mailbox. Passwords: $ACCORD_SMTP_PASSWORD, $ACCORD_IMAP_PASSWORD or --ask-…"""
    from accord.channels.email.mailboxes import Mailbox

    channel = _channel(open_node(data, database))
    try:
        made = channel.mailboxes.add(
            Mailbox(
                id=0,
                address=address,
                display_name=name,
                smtp=_server(
                    smtp_host,
                    smtp_port,
                    smtp_security,
                    smtp_user,
                    _password("ACCORD_SMTP_PASSWORD", ask_smtp_password, "SMTP"),
                    587,
                ),
                imap=_server(
                    imap_host,
                    imap_port,
                    imap_security,
                    imap_user,
                    _password("ACCORD_IMAP_PASSWORD", ask_imap_password, "IMAP"),
                    993,
                ),
                imap_folder=imap_folder,
                poll_seconds=poll_seconds,
                max_attachment_bytes=int(max_attachment_mb * 1024 * 1024),
                max_message_bytes=int(max_message_mb * 1024 * 1024),
                reply_all=reply_all,
            )
        )
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(f"added mailbox {made.id}: {escape(made.address)}")
    _show(made)


def mailbox_update(
    mailbox_id: Annotated[int, typer.Argument(metavar="ID", help="The mailbox's id.")],
    name: Annotated[str | None, typer.Option(help="The name mail is sent under.")] = None,
    smtp_host: Annotated[str | None, typer.Option(help="SMTP relay ('' removes it).")] = None,
    smtp_port: Annotated[int | None, typer.Option()] = None,
    smtp_security: Annotated[str | None, typer.Option(help="none, starttls or tls.")] = None,
    smtp_user: Annotated[str | None, typer.Option()] = None,
    ask_smtp_password: Annotated[
        bool, typer.Option(help="Prompt for a new SMTP password.")
    ] = False,
    imap_host: Annotated[str | None, typer.Option(help="IMAP server ('' removes it).")] = None,
    imap_port: Annotated[int | None, typer.Option()] = None,
    imap_security: Annotated[str | None, typer.Option(help="none, starttls or tls.")] = None,
    imap_user: Annotated[str | None, typer.Option()] = None,
    ask_imap_password: Annotated[
        bool, typer.Option(help="Prompt for a new IMAP password.")
    ] = False,
    active: Annotated[bool | None, typer.Option("--active/--inactive")] = None,
    reply_all: Annotated[
        bool | None,
        typer.Option(help="Replies copy (Cc) the others the customer's mail went to."),
    ] = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Change a mailbox; what is not given stays as it is (passwords too)."""
    from accord.channels.email.mailboxes import Server

    channel = _channel(open_node(data, database))
    try:
        current = channel.mailboxes.get(mailbox_id)
        changes: dict[str, Any] = {}
        if name is not None:
            changes["display_name"] = name
        if active is not None:
            changes["active"] = active
        if reply_all is not None:
            changes["reply_all"] = reply_all
        for which, host, port, security, user, ask, default in (
            ("smtp", smtp_host, smtp_port, smtp_security, smtp_user, ask_smtp_password, 587),
            ("imap", imap_host, imap_port, imap_security, imap_user, ask_imap_password, 993),
        ):
            server: Server | None = getattr(current, which)
            if host == "":
                changes[which] = None
                continue
            if host is None and server is None:
                continue
            base = server or Server(host="", port=default)
            new = replace(
                base,
                host=host or base.host,
                port=port or base.port,
                security=security or base.security,  # type: ignore[arg-type]
                username=base.username if user is None else user,
            )
            env = f"ACCORD_{which.upper()}_PASSWORD"
            if ask or os.environ.get(env):
                new = replace(new, password=_password(env, ask, which.upper()))
            if new != server:
                changes[which] = new
        updated = channel.mailboxes.update(mailbox_id, **changes)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    _show(updated)


def mailbox_list(
    data: DataDir = None, database: DatabaseUrl = None, database_read: DatabaseReadUrl = None
) -> None:
    """List mailboxes (never their passwords)."""
    table = Table("id", "address", "name", "smtp", "imap", "active")
    for m in _channel(open_node(data, database)).mailboxes.all():
        table.add_row(
            str(m.id),
            escape(m.address),
            escape(m.display_name),
            f"{m.smtp.host}:{m.smtp.port}" if m.smtp else "-",
            f"{m.imap.host}:{m.imap.port}" if m.imap else "-",
            "yes" if m.active else "no",
        )
    common.out.print(table)


def mailbox_show(
    mailbox_id: Annotated[int, typer.Argument(metavar="ID")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Show one mailbox (passwords only as set / not set)."""
    try:
        _show(_channel(open_node(data, database)).mailboxes.get(mailbox_id))
    except ServiceError as exc:
        raise fail(exc.message) from exc


def mailbox_remove(
    mailbox_id: Annotated[int, typer.Argument(metavar="ID")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Stop using a mailbox; it stays (inactive) for its messages' history."""
    try:
        _channel(open_node(data, database)).mailboxes.remove(mailbox_id)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(f"mailbox {mailbox_id} is inactive")


def mail_receive(
    source: Annotated[
        str, typer.Argument(metavar="FILE", help="A raw mail (.eml), or - for standard input.")
    ] = "-",
    recipient: Annotated[
        list[str] | None,
        typer.Option(help="Envelope recipient, e.g. from the MTA's ${recipient} (repeatable)."),
    ] = None,
    sender: Annotated[
        str | None,
        typer.Option(
            help="Envelope sender, e.g. the MTA's ${sender}; '' (the null sender) is a bounce."
        ),
    ] = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Hand one mail to the pipeline, e.g. from an MTA's pipe transport.

    With Postfix: ``accord mail receive - --sender ${sender} --recipient ${recipient}``.

    Exit status 75 (EX_TEMPFAIL) tells the MTA to try again later; 0 means stored,
    held, ignored or a duplicate; 65 not a mail; 67 no such mailbox; 69 larger than the
    mailbox takes (the MTA bounces it).
    """
    from accord.channels.blobs import StorageFull
    from accord.channels.email.mailchannel import TRANSIENT, MessageTooLarge
    from accord.channels.email.parse import MailParseError

    raw = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    channel = _channel(open_node(data, database))
    try:
        receipt = channel.receive(raw, recipients=recipient or [], envelope_sender=sender)
    except MailParseError as exc:
        raise fail(f"not a mail message: {exc}", code=65) from exc
    except StorageFull as exc:
        raise fail(str(exc), code=75) from exc
    except TRANSIENT as exc:  # the database or the disk: the MTA keeps it and tries again
        raise fail(f"try again later: {type(exc).__name__}: {str(exc)[:200]}", code=75) from exc
    except MessageTooLarge as exc:
        raise fail(exc.message, code=69) from exc
    except ServiceError as exc:
        raise fail(exc.message, code=67) from exc
    where = f" (case {receipt.case_id})" if receipt.case_id else ""
    common.out.print(f"{receipt.status}{where}{': ' + receipt.reason if receipt.reason else ''}")


def mail_policy(
    new_cases_per_hour: Annotated[
        int | None,
        typer.Option(min=0, max=100_000, help="New cases one sender may open in an hour."),
    ] = None,
    acknowledgements_per_hour: Annotated[
        int | None,
        typer.Option(min=0, max=100_000, help="Acknowledgements one address gets in an hour."),
    ] = None,
    authserv_id: Annotated[
        list[str] | None,
        typer.Option(help="Trust Authentication-Results from this server (RFC 8601; repeatable)."),
    ] = None,
    no_authentication: Annotated[
        bool,
        typer.Option(
            "--no-authentication", help="Trust no server's Authentication-Results (not advised)."
        ),
    ] = False,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Show or change the sender policy: per-sender limits and sender authentication."""
    from accord.service import settings

    node = open_node(data, database)
    ids = [] if no_authentication else authserv_id
    try:
        if (
            new_cases_per_hour is not None
            or acknowledgements_per_hour is not None
            or ids is not None
        ):
            settings.set_mail_policy(
                node.db,
                new_cases_per_hour=new_cases_per_hour,
                acknowledgements_per_hour=acknowledgements_per_hour,
                authserv_ids=ids,
            )
    except ServiceError as exc:
        raise fail(exc.message) from exc
    policy = settings.mail_policy(node.db)
    common.out.print(f"new cases per sender per hour: {policy.new_cases_per_hour}")
    common.out.print(f"acknowledgements per address per hour: {policy.acknowledgements_per_hour}")
    trusted = ", ".join(policy.authserv_ids) or "none (the From address is not checked)"
    common.out.print(f"trusted Authentication-Results from: {escape(trusted)}")


def mail_poll(
    data: DataDir = None, database: DatabaseUrl = None, database_read: DatabaseReadUrl = None
) -> None:
    """Poll every mailbox with an IMAP account once (accord serve does this continuously)."""
    from accord.channels.email.imap import ImapPoller

    outcome = ImapPoller(_channel(open_node(data, database))).poll_all()
    if not outcome:
        common.out.print("no mailbox has an IMAP account")
    failed = False
    for address, result in outcome.items():
        if isinstance(result, str):
            failed = True
            common.err.print(f"[red]{escape(address)}:[/red] {escape(result)}")
        else:
            common.out.print(f"{escape(address)}: {result} new message(s)")
    if failed:
        raise typer.Exit(1)


def mail_list(
    status: Annotated[
        str | None,
        typer.Option(help="stored, held, ignored, bounce, queued, sent, failed or bounced."),
    ] = None,
    direction: Annotated[str | None, typer.Option(help="in or out.")] = None,
    case: Annotated[str | None, typer.Option(help="Only this case (id or prefix).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """The mail log, newest first: what came in, what is queued, held or failed."""
    node = open_node(data, database)
    messages = _channel(node).log(
        status=status,
        direction=direction,
        case_id=case_id_of(node, case) if case else None,
        limit=limit,
    )
    table = Table("id", "dir", "kind", "status", "from / to", "subject", "case", "note")
    for m in messages:
        who = m["sender"] if m["direction"] == "in" else ", ".join(m["recipients"])
        table.add_row(
            str(m["id"]),
            m["direction"],
            m["kind"],
            m["status"],
            escape(who[:40]),
            escape(m["subject"][:50]),
            (m["case"] or "-")[:15],
            escape((m["error"] or "")[:60]),
        )
    common.out.print(table)


def mail_release(
    message_id: Annotated[int, typer.Argument(metavar="ID", help="A held message's id.")],
    link: Annotated[
        bool,
        typer.Option(help="Also add the sender's address to the case's customer."),
    ] = True,
    member: Annotated[str, typer.Option(help="Who releases it.")] = "cli",
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Append a held message to its case as the case's customer."""
    try:
        receipt = _channel(open_node(data, database)).intake.release(
            message_id, link=link, by=member
        )
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(f"message {message_id} is now in case {receipt.case_id}")


def mail_retry(
    message_id: Annotated[int, typer.Argument(metavar="ID", help="A failed or bounced mail.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Send a failed or bounced mail again (the same bytes and Message-ID)."""
    try:
        _channel(open_node(data, database)).outbox.retry(message_id)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(f"mail {message_id} is queued again")


def mail_reply(
    case: CaseArg,
    text: Annotated[str, typer.Argument(help="What to write to the customer.")],
    member: Annotated[str, typer.Option(help="Who is writing.")] = "cli",
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Reply to a case's customer by email (written in the case, sent by the outbox)."""
    from accord.service.negotiation import Actor

    node = open_node(data, database)
    try:
        done = _channel(node).reply(Actor(member=member, via="email"), case_id_of(node, case), text)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(f"queued mail {done.message_id}; event {done.outcome.event_ids[0]}")


mailbox_app.command("add")(mailbox_add)
mailbox_app.command("update")(mailbox_update)
mailbox_app.command("list")(mailbox_list)
mailbox_app.command("show")(mailbox_show)
mailbox_app.command("remove")(mailbox_remove)
mail_app.command("receive")(mail_receive)
mail_app.command("poll")(mail_poll)
mail_app.command("policy")(mail_policy)
mail_app.command("list")(mail_list)
mail_app.command("release")(mail_release)
mail_app.command("retry")(mail_retry)
mail_app.command("reply")(mail_reply)
