"""``accord team``, ``routing``, ``handoff``, ``calendar``, ``sla`` and ``notifications``.

Uses ``accord.cli.common``; registered by ``accord.cli.root``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

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
    from accord.node import Node
    from accord.service.ownership import Ownership

team_app = typer.Typer(help="Teams of members and their leads.", no_args_is_help=True)
routing_app = typer.Typer(help="How new cases find their owner.", no_args_is_help=True)
calendar_app = typer.Typer(
    help="Business hours, time zone and holidays for timers.", no_args_is_help=True
)


def _ownership(node: Node) -> Ownership:
    return node_services(node).ownership


def team_add(
    name: Annotated[str, typer.Argument(help="The team's name.")],
    lead: Annotated[str | None, typer.Option(help="Username of the team's lead.")] = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Add a team; missed promises of its members escalate to its lead."""
    own = _ownership(open_node(data, database))
    try:
        own.add_team(name, lead)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(f"added team {escape(name)}")


def team_list(
    data: DataDir = None, database: DatabaseUrl = None, database_read: DatabaseReadUrl = None
) -> None:
    """List teams and their leads."""
    table = Table("team", "lead")
    for team in _ownership(open_node(data, database)).list_teams():
        table.add_row(escape(team["name"]), escape(team["lead"] or ""))
    common.out.print(table)


def routing_set(
    member: Annotated[str, typer.Argument(help="Username.")],
    team: Annotated[str | None, typer.Option(help="Team name ('' for none).")] = None,
    skill: Annotated[list[str] | None, typer.Option(help="A skill (repeatable).")] = None,
    availability: Annotated[str | None, typer.Option(help="online, away or off.")] = None,
    max_load: Annotated[int | None, typer.Option(min=1, help="Most open cases at once.")] = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Set a member's team, skills, availability and load cap."""
    own = _ownership(open_node(data, database))
    try:
        profile = own.set_profile(
            member, team=team, skills=skill, availability=availability, max_load=max_load
        )
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(
        f"{escape(profile['name'])}: team {profile['team'] or '-'}, skills "
        f"{', '.join(profile['skills']) or '-'}, {profile['availability']}, "
        f"{profile['open_cases']} open cases"
    )


def routing_rule_add(
    priority: Annotated[int, typer.Option(help="Lower runs first.")] = 100,
    team: Annotated[str | None, typer.Option(help="Send to this team.")] = None,
    skill: Annotated[str | None, typer.Option(help="Send to members with this skill.")] = None,
    template: Annotated[str | None, typer.Option(help="Only cases of this template.")] = None,
    topic: Annotated[str | None, typer.Option(help="Only cases with this topic.")] = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Add a routing rule: cases matching template/topic go to a team and/or skill."""
    own = _ownership(open_node(data, database))
    try:
        rule = own.add_rule(
            priority=priority, team=team, skill=skill, template=template, topic=topic
        )
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(f"added rule {rule}")


def routing_rules(
    data: DataDir = None, database: DatabaseUrl = None, database_read: DatabaseReadUrl = None
) -> None:
    """List routing rules; the first that matches a new case decides."""
    table = Table("id", "priority", "template", "topic", "team", "skill")
    for r in _ownership(open_node(data, database)).list_rules():
        table.add_row(
            *(
                escape(str(r[k] if r[k] is not None else "*"))
                for k in ("id", "priority", "template", "topic", "team", "skill")
            )
        )
    common.out.print(table)


def routing_rule_remove(
    rule: Annotated[int, typer.Argument(help="Rule id.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Remove a routing rule."""
    try:
        _ownership(open_node(data, database)).remove_rule(rule)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(f"removed rule {rule}")


def handoff(
    case: CaseArg,
    to: Annotated[str, typer.Option(help="Username of the new owner.")],
    note: Annotated[str, typer.Option(help="What the new owner needs to know.")],
    by: Annotated[str, typer.Option(help="Who hands over (the owner, a lead or an admin).")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Hand a case to another member with a note; the customer is told."""
    node = open_node(data, database)
    own = _ownership(node)
    member = own.members.by_username(by)
    if member is None:
        raise fail(f"no member {by!r}")
    try:
        done = own.handoff(case_id_of(node, case), to, note, by=member)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(
        f"{escape(done.member.display_name)} now owns the case ({done.transfers} transfers)"
    )


def calendar_set(
    timezone: Annotated[str, typer.Option(help="e.g. Europe/London.")],
    hours: Annotated[str, typer.Option(help="e.g. 'mon-fri 09:00-17:30; sat 10:00-14:00'.")],
    country: Annotated[str | None, typer.Option(help="Public holidays of, e.g. GB.")] = None,
    subdivision: Annotated[str | None, typer.Option(help="e.g. ENG.")] = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Set the business calendar that escalations and response targets use."""
    from accord.service import settings

    node = open_node(data, database)
    try:
        settings.set_calendar(
            node.db, timezone=timezone, hours=hours, country=country, subdivision=subdivision
        )
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(
        f"business hours {escape(hours)} in {timezone}"
        + (f", holidays of {country}{'-' + subdivision if subdivision else ''}" if country else "")
    )


def calendar_show(
    data: DataDir = None, database: DatabaseUrl = None, database_read: DatabaseReadUrl = None
) -> None:
    """Show the business calendar (open around the clock until one is set)."""
    from accord.service import settings

    config = settings.read(open_node(data, database).db, settings.CALENDAR)
    common.out.print(escape(str(config)) if config else "open around the clock (none set)")


def sla(
    first: Annotated[
        int,
        typer.Option(
            min=1, help="Minutes of business time to answer a case's first customer message."
        ),
    ],
    next_: Annotated[int, typer.Option("--next", min=1, help="Minutes for every later one.")],
    template: Annotated[str, typer.Option(help="For cases of this template.")] = "default",
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Set response-time targets (they pause while waiting on the customer)."""
    from accord.service import settings

    node = open_node(data, database)
    config = settings.read(node.db, "sla") or {}
    config[template] = {"first_response": first, "next_response": next_}
    settings.write(node.db, "sla", config)
    common.out.print(f"{template}: first response {first} min, next {next_} min of business time")


def notifications(
    member: Annotated[str, typer.Option(help="Username.")],
    unread: Annotated[bool, typer.Option(help="Only unread ones.")] = False,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Show a member's notifications, newest first."""
    own = _ownership(open_node(data, database))
    found = own.members.by_username(member)
    if found is None:
        raise fail(f"no member {member!r}")
    table = Table("when", "kind", "case", "text")
    for n in own.notifications_for(found.id, unread=unread):
        table.add_row(n["created"][:16], n["kind"], (n["case"] or "")[:19], escape(n["text"]))
    common.out.print(table)


team_app.command("add")(team_add)
team_app.command("list")(team_list)
routing_app.command("set")(routing_set)
routing_app.command("rules")(routing_rules)
routing_app.command("add-rule")(routing_rule_add)
routing_app.command("remove-rule")(routing_rule_remove)
calendar_app.command("set")(calendar_set)
calendar_app.command("show")(calendar_show)


def reopen_within(
    days: Annotated[int | None, typer.Argument(help="Days; omit to show the setting.")] = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """How long after resolution a customer's message reopens a case (default 30 days);
    later, it opens a new case that names the old one."""
    from accord.service import settings

    node = open_node(data, database)
    if days is not None:
        try:
            settings.set_reopen_within_days(node.db, days)
        except ServiceError as exc:
            raise fail(exc.message) from exc
    common.out.print(f"a message reopens a case up to {settings.reopen_within_days(node.db)} days")


calendar_app.command("reopen-within")(reopen_within)
