"""``accord member``, ``accord token`` and ``accord portal``: who may act on this node.

Passwords are read without echo (or from standard input with ``--password-stdin``) and
never printed; a new API token is printed once, alone on standard output so a script can
capture it, and portal links likewise.

The options and helpers come from ``accord.cli.common``; ``accord.cli.root`` registers
these groups (``app.add_typer``).
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from accord.auth.scopes import SCOPES
from accord.cli import common
from accord.cli.common import (
    CaseArg,
    DatabaseReadUrl,
    DatabaseUrl,
    DataDir,
    case_id_of,
    fail,
    open_node,
)

member_app = typer.Typer(
    help="Members: the people who act for this node's party (agent, lead, admin).",
    no_args_is_help=True,
)
token_app = typer.Typer(help="API tokens for programs, each with scopes.", no_args_is_help=True)
portal_app = typer.Typer(
    help="Portal links: customers act in their case without an account.", no_args_is_help=True
)


class Role(StrEnum):
    agent = "agent"
    lead = "lead"
    admin = "admin"


def _when(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


@member_app.command("add")
def member_add(
    username: Annotated[
        str, typer.Argument(help="Login name: 2 to 64 of a-z, 0-9, '.', '_', '-'.")
    ],
    role: Annotated[Role, typer.Option(help="What the member may do.")],
    name: Annotated[str, typer.Option("--name", help="Display name, shown in cases.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the password from the first line of standard input."
        ),
    ] = False,
) -> None:
    """Add a member; asks for the password twice without echo (at least 12 characters)."""
    from accord.auth.errors import AuthError
    from accord.auth.members import MemberStore, check_display_name, check_username

    node = open_node(data, database)
    try:  # say what is wrong with the name before asking for a password
        check_username(username)
        check_display_name(name)
    except AuthError as exc:
        raise fail(str(exc)) from exc
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        member = MemberStore(node.db).create(username, password, role=role.value, display_name=name)
    except AuthError as exc:
        raise fail(str(exc)) from exc
    common.out.print(
        f"added member {escape(member.username)} ({escape(member.display_name)}), "
        f"role {member.role}"
    )


@member_app.command("list")
def member_list(
    data: DataDir = None, database: DatabaseUrl = None, database_read: DatabaseReadUrl = None
) -> None:
    """List the members of this node."""
    from accord.auth.members import MemberStore

    node = open_node(data, database)
    table = Table("id", "username", "name", "role", "status")
    for m in MemberStore(node.db).list():
        table.add_row(
            str(m.id),
            escape(m.username),
            escape(m.display_name),
            m.role,
            "disabled" if m.disabled else "active",
        )
    common.out.print(table)


@member_app.command("disable")
def member_disable(
    username: Annotated[str, typer.Argument(help="The member to disable.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Disable a member for good: no login, and their sessions and tokens stop working."""
    from accord.auth.errors import AuthError
    from accord.auth.members import MemberStore

    node = open_node(data, database)
    store = MemberStore(node.db)
    try:
        member = store.disable(store.require(username).id)
    except AuthError as exc:
        raise fail(str(exc)) from exc
    common.out.print(f"disabled member {escape(member.username)}")


_SCOPE_HELP = "A scope (repeatable): " + "; ".join(f"{s}: {m}" for s, m in SCOPES.items()) + "."


@token_app.command("create")
def token_create(
    member: Annotated[str, typer.Option("--member", help="Username of the token's member.")],
    name: Annotated[str, typer.Option("--name", help="What the token is for.")],
    scope: Annotated[list[str], typer.Option("--scope", help=_SCOPE_HELP)],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
    expires_days: Annotated[
        int | None,
        typer.Option("--expires-days", min=1, help="Expire after this many days (default: never)."),
    ] = None,
) -> None:
    """Create an API token and print it: the only time it is shown."""
    from accord.auth.clock import now_utc, system_clock
    from accord.auth.errors import AuthError
    from accord.auth.members import MemberStore
    from accord.auth.tokens import TokenStore

    node = open_node(data, database)
    expires_at = (
        None if expires_days is None else now_utc(system_clock) + timedelta(days=expires_days)
    )
    try:
        owner = MemberStore(node.db).require(member)
        created = TokenStore(node.db).create(owner.id, name, scope, expires_at)
    except AuthError as exc:
        raise fail(str(exc)) from exc
    common.err.print(
        f"[yellow]created token {created.id}[/yellow] for {escape(owner.username)} "
        f"({', '.join(created.scopes)}). Copy it now: it is shown only this once and "
        "cannot be recovered, only revoked.",
        soft_wrap=True,
    )
    typer.echo(created.token)


@token_app.command("list")
def token_list(
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
    member: Annotated[
        str | None, typer.Option("--member", help="Only this member's tokens.")
    ] = None,
) -> None:
    """List API tokens (never their secrets, which are not kept)."""
    from accord.auth.clock import now_utc, system_clock
    from accord.auth.errors import AuthError
    from accord.auth.members import MemberStore
    from accord.auth.tokens import TokenStore

    node = open_node(data, database)
    try:
        member_id = None if member is None else MemberStore(node.db).require(member).id
    except AuthError as exc:
        raise fail(str(exc)) from exc
    now = now_utc(system_clock)
    table = Table("id", "member", "name", "scopes", "created", "expires", "last used", "status")
    for t in TokenStore(node.db).list(member_id):
        table.add_row(
            str(t.id),
            escape(t.username),
            escape(t.name),
            " ".join(t.scopes),
            _when(t.created_at),
            _when(t.expires_at) or "never",
            _when(t.last_used_at) or "never",
            t.status(now),
        )
    common.out.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(metavar="ID", help="The token's id (token list).")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Revoke an API token for good."""
    from accord.auth.errors import AuthError
    from accord.auth.tokens import TokenStore

    node = open_node(data, database)
    try:
        info = TokenStore(node.db).revoke(token_id)
    except AuthError as exc:
        raise fail(str(exc)) from exc
    common.out.print(f"revoked token {info.id} ({escape(info.name)}) of {escape(info.username)}")


@portal_app.command("link")
def portal_link(
    case: CaseArg,
    party: Annotated[str, typer.Option("--party", help="The hosted party the customer acts as.")],
    identity: Annotated[
        str,
        typer.Option("--identity", help="The customer's verified e-mail address or phone number."),
    ],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
    hours: Annotated[
        int | None,
        typer.Option(
            "--hours", min=1, max=24 * 366, help="How long the link works (default: 7 days)."
        ),
    ] = None,
) -> None:
    """Print a portal link path (/portal/...) for a customer of a party this node hosts."""
    from accord.auth.portal import PortalLinks, load_or_create_secret
    from accord.service.errors import ServiceError
    from accord.service.links import issue_case_link

    node = open_node(data, database)
    case_id = case_id_of(node, case)
    state = node.cases.state(case_id)
    assert state is not None
    links = PortalLinks(load_or_create_secret(node.db))
    try:
        link = issue_case_link(
            links,
            state,
            party,
            identity,
            host=node.key.public,
            ttl=None if hours is None else timedelta(hours=hours),
        )
    except ServiceError as exc:
        raise fail(f"case {case_id[:19]}: {exc.message}") from exc
    common.err.print(f"valid until {_when(link.expires_at)} UTC", soft_wrap=True)
    typer.echo(link.path)
