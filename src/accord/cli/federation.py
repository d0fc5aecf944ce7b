"""``accord node``, ``invite``, ``join``, ``sync`` and ``peers``: federation commands.

Uses ``accord.cli.common``; registered by ``accord.cli.root``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from accord.federation.push import PushStatus
    from accord.federation.sync import Federation
    from accord.node import Node
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

node_app = typer.Typer(
    help="This node's identity: key, fingerprint, public URL.", no_args_is_help=True
)


def _federation(node: Node) -> Federation:
    return node_services(node).federation


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "never"


def node_show(
    data: DataDir = None, database: DatabaseUrl = None, database_read: DatabaseReadUrl = None
) -> None:
    """Show this node's name, key, fingerprint and public URL."""
    node = open_node(data, database)
    common.out.print(
        f"name         {escape(node.name)}{' (personal node)' if node.personal else ''}"
    )
    common.out.print(f"key          {node.key.public}")
    common.out.print(f"fingerprint  {node.fingerprint}")
    common.out.print(f"url          {node.url or '(none: other nodes cannot reach this one)'}")


def node_set_url(
    url: Annotated[str, typer.Argument(help="e.g. https://accord.example.com")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Set the public URL other nodes reach this one at (used in invitations)."""
    from accord.core.bodies import URL

    if not URL.fullmatch(url):
        raise fail(f"{url!r} is not an http(s) URL")
    node = open_node(data, database)
    node.set_url(url.rstrip("/"))
    common.out.print(f"public URL set to {node.url}")


def invite(
    case: CaseArg,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
    hours: Annotated[int, typer.Option(min=1, max=720, help="How long the link works.")] = 72,
    member: Annotated[str, typer.Option(help="Who is inviting.")] = "cli",
) -> None:
    """Print a one-time invitation link for another node to join CASE."""
    node = open_node(data, database)
    federation = _federation(node)
    try:
        link = federation.invite(case_id_of(node, case), member, timedelta(hours=hours))
    except ServiceError as exc:
        raise fail(exc.message) from exc
    finally:
        federation.close()
    common.err.print(
        f"valid once, until {_when(link.expires)} UTC; the joining node's key "
        f"will be proposed as a party",
        soft_wrap=True,
    )
    typer.echo(str(link))


def join(
    link: Annotated[str, typer.Argument(help="The invitation link from `accord invite`.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
    party_id: Annotated[
        str | None,
        typer.Option(
            "--party-id", help="Your party's id in the case (default: from your node's name)."
        ),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(help="organisation or person (default: person on a personal node)."),
    ] = None,
) -> None:
    """Join a case: present the invitation, fetch the case and verify every event."""
    from accord.core.bodies import SLUG
    from accord.federation.client import PeerError
    from accord.federation.invites import InviteError
    from accord.federation.sync import SyncError

    node = open_node(data, database)
    slug = party_id or _slug(node.name)
    if not SLUG.fullmatch(slug):
        raise fail(f"--party-id {slug!r} must be a short id of a-z, 0-9, '.', '_' or '-'")
    kind = kind or ("person" if node.personal else "organisation")
    if kind not in ("organisation", "person"):
        raise fail("--kind is organisation or person")
    federation = _federation(node)
    try:
        result = federation.join(link, {"id": slug, "name": node.name, "kind": kind})
    except (InviteError, PeerError, SyncError) as exc:
        raise fail(str(exc)) from exc
    finally:
        federation.close()
    common.out.print(f"fetched and verified {result.pull.stored} events of {result.case_id}")
    if result.member:
        common.out.print(f"you are now the party {escape(result.party)!r} of this case")
    else:
        common.out.print(
            f"proposed as the party {escape(result.party)!r}; you become a party "
            "once the other parties accept (then `accord sync`)"
        )


def sync(
    case: Annotated[str | None, typer.Argument(help="Only this case (default: all).")] = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Pull now from every other party's node and push what they have not acknowledged,
    ignoring backoff; say how far behind each peer and case is. Exits 1 when a peer
    failed or still lacks events of ours."""
    from accord.core.crypto import fingerprint
    from accord.federation.push import PeerPushers

    node = open_node(data, database)
    federation = _federation(node)
    pushers = PeerPushers(federation, now=federation.now)
    try:
        results = federation.sync(case_id_of(node, case) if case else None, force=True)
        passes = {p.peer: p for p in pushers.catch_up(force=True)}
        pushes = pushers.status()
    finally:
        pushers.close()
        federation.close()
    table = Table("case", "peer", "new events", "round trips", "we lack", "they lack", "result")
    for r in results:
        table.add_row(
            r.case_id[:19],
            fingerprint(r.peer)[:19],
            str(r.stored),
            str(r.round_trips),
            _count(r.we_lack),
            _count(r.they_lack),
            escape(r.error or "ok"),
        )
    if results:
        common.out.print(table)
    else:
        common.out.print("pulls: nothing behind")
    failing = any(r.error for r in results)
    if pushes:
        pushed = Table("peer", "sent now", "not yet acknowledged", "failures", "result")
        for status in pushes:
            done = passes.get(status.peer)
            pushed.add_row(
                fingerprint(status.peer)[:19],
                str(done.sent + done.repaired if done else 0),
                _behind(status),
                str(status.failures),
                escape(status.last_error or "ok"),
            )
            failing = failing or bool(status.failures or status.behind)
        common.out.print(pushed)
    if failing:
        raise typer.Exit(1)


def peers(
    data: DataDir = None, database: DatabaseUrl = None, database_read: DatabaseReadUrl = None
) -> None:
    """List peers: what each has yet to acknowledge of our events and whether pushing to
    it fails; per case, the last sync, how far behind each side was, failures and the
    last error. Exits 1 when a peer is failing."""
    from accord.core.crypto import fingerprint
    from accord.federation.push import PeerPushers

    node = open_node(data, database)
    federation = _federation(node)
    pushers = PeerPushers(federation, now=federation.now)
    try:
        rows = federation.peers()
        pushes = pushers.status()
    finally:
        pushers.close()
        federation.close()
    now = datetime.now(UTC)
    failing = False
    if pushes:
        pushed = Table("peer", "not yet acknowledged", "failures", "next try", "last error")
        for status in pushes:
            pushed.add_row(
                fingerprint(status.peer)[:19],
                _behind(status),
                str(status.failures),
                _when(status.retry_at) if status.failures and status.retry_at else "",
                escape(status.last_error or ""),
            )
            failing = failing or bool(status.failures)
        common.out.print(pushed)
    table = Table(
        "peer",
        "case",
        "url",
        "last sync",
        "age",
        "we lack",
        "they lack",
        "failures",
        "events in",
        "last error",
    )
    for p in rows:
        lag = "-" if p.last_sync_at is None else _ago(now - _aware(p.last_sync_at))
        table.add_row(
            fingerprint(p.peer)[:19],
            p.case_id[:19],
            p.url,
            _when(p.last_sync_at),
            lag,
            _count(p.we_lack),
            _count(p.they_lack),
            str(p.failures),
            str(p.events_received),
            escape(p.last_error or ""),
        )
        failing = failing or bool(p.failures)
    common.out.print(table)
    if failing:
        raise typer.Exit(1)


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _behind(status: PushStatus) -> str:
    if not status.behind:
        return "0"
    worst = sorted(status.cases.items(), key=lambda item: -item[1])[:3]
    cases = ", ".join(f"{c[7:19]} {n:,}" for c, n in worst)
    return f"{status.behind:,} ({cases})"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    return f"{seconds // 60} min" if seconds < 7200 else f"{seconds // 3600} h"


def _slug(name: str) -> str:
    from accord.node import party_slug

    return party_slug(name)


node_app.command("show")(node_show)
node_app.command("set-url")(node_set_url)
