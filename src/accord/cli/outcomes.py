"""``accord template``, ``metrics``, ``goal``, ``compare``, ``demo`` and ``readiness``.

Uses ``accord.cli.common``; registered by ``accord.cli.root``.
Outcome targets are ``accord goal`` because ``accord sla`` already sets response-time
targets.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
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
from accord.outcomes.catalogue import METRICS
from accord.service.errors import ServiceError

if TYPE_CHECKING:
    from accord.auth.members import Member
    from accord.node import Node
    from accord.outcomes.figures import Outcomes
    from accord.outcomes.store import Filter
    from accord.templates.opening import CaseTemplates
    from accord.templates.practice import Practice, Run

template_app = typer.Typer(help="Templates: versioned case types.", no_args_is_help=True)
metrics_app = typer.Typer(help="Outcome metrics from the case logs.", no_args_is_help=True)
goal_app = typer.Typer(help="Outcome targets, each with an owner.", no_args_is_help=True)
practice_app = typer.Typer(
    help="Practice runs: rehearse a case with a simulated customer.", no_args_is_help=True
)

Start = Annotated[date | None, typer.Option("--from", help="First day of opening (YYYY-MM-DD).")]
End = Annotated[date | None, typer.Option("--to", help="Last day of opening (YYYY-MM-DD).")]
TemplateOpt = Annotated[str | None, typer.Option("--template", help="NAME or NAME@vN.")]
TeamOpt = Annotated[str | None, typer.Option(help="Team name.")]
ChannelOpt = Annotated[str | None, typer.Option(help="Channel, e.g. email.")]
MemberOpt = Annotated[str | None, typer.Option(help="Owner's username.")]


def _now() -> datetime:
    return datetime.now(UTC)


def _outcomes(node: Node) -> Outcomes:
    from accord.outcomes.figures import Outcomes

    return Outcomes(node.db, node.key.public, now=_now)


def _templates(node: Node) -> CaseTemplates:
    from accord.templates.opening import CaseTemplates
    from accord.templates.store import TemplateStore

    services = node_services(node)
    return CaseTemplates(TemplateStore(node.db, now=_now), services.negotiation, services.ownership)


def _ref(ref: str) -> tuple[str, int | None]:
    from accord.templates.spec import TemplateError, parse_ref

    try:
        return parse_ref(ref)
    except TemplateError as exc:
        raise fail(str(exc)) from exc


# -- templates ------------------------------------------------------------------------


def template_apply(
    file: Annotated[Path, typer.Argument(help="A template file (YAML), or - for stdin.")],
    by: Annotated[str, typer.Option(help="Who applies it (recorded).")] = "cli",
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Apply a template: a new version if it changed; it becomes the current one."""
    text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    flows = _templates(open_node(data, database))
    try:
        version, created = flows.apply(text, by=by)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    what = "added" if created else "unchanged, still"
    common.out.print(f"{what} {version.name}@v{version.version}")


def template_export(
    ref: Annotated[str, typer.Argument(help="NAME (latest) or NAME@vN.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write.")] = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Print a template version as YAML (what `template apply` reads)."""
    from accord.templates.store import TemplateStore

    name, version = _ref(ref)
    try:
        found = TemplateStore(open_node(data, database).db, now=_now).get(name, version)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    text = found.spec.to_yaml(found.version)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def template_diff(
    old: Annotated[str, typer.Argument(help="NAME@vN")],
    new: Annotated[str, typer.Argument(help="NAME@vM")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """What changed between two versions (+ added, - removed, ~ changed)."""
    from accord.templates.spec import diff_specs
    from accord.templates.store import TemplateStore

    store = TemplateStore(open_node(data, database).db, now=_now)
    try:
        a, b = store.get(*_ref(old)), store.get(*_ref(new))
    except ServiceError as exc:
        raise fail(exc.message) from exc
    lines = diff_specs(a.spec, b.spec)
    for line in lines or ["no differences"]:
        common.out.print(escape(line), soft_wrap=True)


def template_list(
    data: DataDir = None, database: DatabaseUrl = None, database_read: DatabaseReadUrl = None
) -> None:
    """Templates, their versions and how many cases each version opened."""
    from accord.templates.store import TemplateStore

    table = Table("template", "title", "versions (cases)")
    for t in TemplateStore(open_node(data, database).db, now=_now).list():
        versions = ", ".join(f"v{v['version']} ({v['cases']})" for v in t["versions"])
        table.add_row(escape(t["name"]), escape(t["title"]), versions)
    common.out.print(table)


def template_open(
    ref: Annotated[str, typer.Argument(help="NAME (latest) or NAME@vN.")],
    title: Annotated[str, typer.Argument(help="The case's title.")],
    member: Annotated[str, typer.Option(help="Username of the member opening it.")],
    customer: Annotated[str | None, typer.Option(help="The customer's name.")] = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Open a case from a template; prints the case id."""
    from accord.auth.members import MemberStore
    from accord.node import party_slug
    from accord.service.negotiation import Actor

    node = open_node(data, database)
    name, version = _ref(ref)
    found = MemberStore(node.db).by_username(member)
    if found is None:
        raise fail(f"no member {member!r}")
    try:
        opened = _templates(node).open_case(
            Actor(member=found.display_name, via="cli"),
            name,
            version=version,
            title=title,
            party_id=party_slug(node.name),
            party_name=node.name,
            party_url=node.url,
            customer={"id": "customer", "name": customer} if customer else None,
            member=found,
        )
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(opened.case_id)


# -- metrics ----------------------------------------------------------------------------


def _filter(
    outcomes: Outcomes,
    start: date | None,
    end: date | None,
    template: str | None,
    team: str | None,
    channel: str | None,
    member: str | None,
) -> Filter:
    from accord.outcomes.figures import filter_from

    try:
        return filter_from(
            outcomes,
            start=start,
            end=end,
            template=template,
            team=team,
            channel=channel,
            member=member,
        )
    except ServiceError as exc:
        raise fail(exc.message) from exc


def metrics_show(
    start: Start = None,
    end: End = None,
    template: TemplateOpt = None,
    team: TeamOpt = None,
    channel: ChannelOpt = None,
    member: MemberOpt = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Every metric over the cases opened in a period, with the cases behind each."""

    outcomes = _outcomes(open_node(data, database))
    board = outcomes.dashboard(_filter(outcomes, start, end, template, team, channel, member))
    common.out.print(
        f"{board.cases} cases opened, {board.open} of them still open; backlog now {board.backlog}"
    )
    table = Table("metric", "statistic", "value", "cases")
    for key, fig in board.summary.items():
        n = f"{fig.n} promises" if fig.stat == "rate" else str(fig.n)
        table.add_row(METRICS[key].label, fig.stat, fig.shown(), n)
    common.out.print(table)
    ageing = ", ".join(f"{band}: {n}" for band, n in board.ageing.items())
    common.out.print(f"open cases by age: {ageing}")


def metrics_case(
    case: CaseArg,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """The outcome facts of one case."""
    node = open_node(data, database)
    facts = _outcomes(node).store.facts(case_id_of(node, case))
    table = Table("fact", "value")
    for key, value in facts.row().items():
        shown = value.isoformat() if isinstance(value, datetime) else value
        table.add_row(key, escape("" if shown is None else str(shown)))
    common.out.print(table)


def metrics_refresh(
    everything: Annotated[
        bool, typer.Option("--all", help="Every case (after changing the calendar).")
    ] = False,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Recompute the facts of cases that changed (or of every case)."""
    count = _outcomes(open_node(data, database)).store.refresh_stale(everything=everything)
    common.out.print(f"refreshed {count} cases")


def metrics_mark(
    case: CaseArg,
    kind: Annotated[str, typer.Argument(help="identify, repeat or rating.")],
    member: Annotated[str, typer.Option(help="Username of the member marking.")],
    note: Annotated[str | None, typer.Option(help="What was asked again.")] = None,
    value: Annotated[int | None, typer.Option(min=1, max=5, help="A rating 1-5.")] = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Mark that the customer had to identify again or repeat something (node-private)."""
    from accord.auth.members import MemberStore

    node = open_node(data, database)
    found = MemberStore(node.db).by_username(member)
    if found is None:
        raise fail(f"no member {member!r}")
    try:
        _outcomes(node).store.mark(
            case_id_of(node, case), kind, member_id=found.id, note=note, value=value
        )
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(f"marked {kind}")


def metrics_export(
    output: Annotated[Path | None, typer.Option("-o", "--output", help="CSV file.")] = None,
    start: Start = None,
    end: End = None,
    template: TemplateOpt = None,
    team: TeamOpt = None,
    channel: ChannelOpt = None,
    member: MemberOpt = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """The facts of each case as CSV (durations in seconds of business time)."""
    outcomes = _outcomes(open_node(data, database))
    text = outcomes.export_csv(_filter(outcomes, start, end, template, team, channel, member))
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


# -- goals --------------------------------------------------------------------------------


def goal_add(
    name: Annotated[str, typer.Argument(help="What the target is called.")],
    metric: Annotated[str, typer.Option(help=f"One of {', '.join(METRICS)}.")],
    at_most: Annotated[
        float | None, typer.Option(help="The statistic must stay at or below.")
    ] = None,
    at_least: Annotated[float | None, typer.Option(help="The statistic must reach.")] = None,
    stat: Annotated[str | None, typer.Option(help="median, mean, p90 or max.")] = None,
    owner: Annotated[str | None, typer.Option(help="Username of its owner.")] = None,
    template: Annotated[str | None, typer.Option(help="Only cases of this template.")] = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Add a target, e.g. --metric agreement --stat median --at-most 4 --owner sara."""
    if (at_most is None) == (at_least is None):
        raise fail("give exactly one of --at-most and --at-least")
    try:
        target = _outcomes(open_node(data, database)).targets.add(
            name=name,
            metric=metric,
            stat=stat,
            op="<=" if at_most is not None else ">=",
            threshold=at_most if at_most is not None else at_least,  # type: ignore[arg-type]
            owner=owner,
            template=template,
        )
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(f"added target {target.id}: {escape(target.describe())}")


def goal_list(
    start: Start = None, end: End = None, data: DataDir = None, database: DatabaseUrl = None
) -> None:
    """Targets with their owner and where they stand over the period."""
    outcomes = _outcomes(open_node(data, database))
    board = outcomes.dashboard(_filter(outcomes, start, end, None, None, None, None))
    table = Table("id", "target", "owner", "now", "cases", "status")
    for s in board.targets:
        status = "no data" if s.met is None else "met" if s.met else "missed"
        table.add_row(
            str(s.target.id),
            escape(f"{s.target.name}: {s.target.describe()}"),
            escape(s.target.owner or "NOBODY"),
            s.current.shown(),
            str(s.current.n),
            status,
        )
    common.out.print(table)


def goal_remove(
    target: Annotated[int, typer.Argument(help="The target's id.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Remove a target."""
    try:
        _outcomes(open_node(data, database)).targets.remove(target)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(f"removed target {target}")


def goal_own(
    target: Annotated[int, typer.Argument(help="The target's id.")],
    owner: Annotated[str, typer.Argument(help="Username of its new owner.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Give a target its owner."""
    try:
        found = _outcomes(open_node(data, database)).targets.set_owner(target, owner)
    except ServiceError as exc:
        raise fail(exc.message) from exc
    common.out.print(f"target {found.id} is owned by {escape(found.owner_name or owner)}")


# -- compare, demo, readiness --------------------------------------------------------------


def compare(
    template: Annotated[list[str] | None, typer.Option(help="NAME@vN (twice).")] = None,
    period: Annotated[
        list[str] | None, typer.Option(help="YYYY-MM-DD..YYYY-MM-DD, end exclusive (twice).")
    ] = None,
    team: Annotated[list[str] | None, typer.Option(help="Team name (twice).")] = None,
    channel: Annotated[list[str] | None, typer.Option(help="Channel (twice).")] = None,
    member: Annotated[list[str] | None, typer.Option(help="Username (twice).")] = None,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Two groups of cases side by side on every metric, saying which differences are
    more than noise (Mann-Whitney U for durations and counts, Fisher's exact test for
    on-time rates; p < 0.05)."""
    from accord.outcomes.measures import verdict_sentence

    groups = [
        f"{kind}:{value}"
        for kind, values in (
            ("template", template),
            ("period", period),
            ("team", team),
            ("channel", channel),
            ("member", member),
        )
        for value in values or []
    ]
    if len(groups) != 2:
        raise fail("name exactly two groups, e.g. --template billing@v1 --template billing@v2")
    outcomes = _outcomes(open_node(data, database))
    try:
        (la, fa), (lb, fb) = outcomes.group(groups[0]), outcomes.group(groups[1])
    except ServiceError as exc:
        raise fail(exc.message) from exc
    found = outcomes.compare(fa, fb)
    table = Table("metric", "stat", f"A {la}", "cases", f"B {lb}", "cases", "p", "B against A")
    for c in found:
        p = "n/a" if c.p_value is None else f"{c.p_value:.3g}"
        table.add_row(
            METRICS[c.metric].label,
            c.a.stat,
            c.a.shown(),
            str(c.a.n),
            c.b.shown(),
            str(c.b.n),
            p,
            c.verdict,
        )
    common.out.print(table)
    common.out.print(escape(verdict_sentence(lb, la, found)), soft_wrap=True)


def demo(
    cases: Annotated[int, typer.Option(min=1, max=5000, help="How many cases.")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed (the same seed, the same cases).")] = 7,
    until: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            help="The simulated weeks end at the start of this day, UTC (default: now); "
            "with the same seed, the same cases.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Seed even a node that already has cases or members (adds fake cases and "
            "members with a published password).",
        ),
    ] = False,
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Seed a demo organisation (Northwind Broadband): members, teams, templates billing
    v1 and v2, targets and a few hundred cases over twelve weeks. Refuses a node that
    already has cases or members unless --force."""
    from accord.demo import occupied
    from accord.demo import seed as seed_demo
    from accord.node import Node, NodeError, default_data_dir

    home = data or default_data_dir()
    try:
        node = Node.open(home, database=database)
    except NodeError:
        node = Node.init(home, name="Northwind Broadband", database=database)
    try:
        held_cases, held_members = occupied(node)
        if (held_cases or held_members) and not force:
            raise fail(
                f"{escape(str(home))} already holds {held_cases} cases and {held_members} "
                "members; the demo would add fake cases and members with a published "
                "password. Use a new --data directory, or --force to seed it anyway."
            )
        with Progress(
            TextColumn("seeding"),
            BarColumn(),
            MofNCompleteColumn(),
            console=common.err,
            transient=True,
        ) as bar:
            task = bar.add_task("cases", total=cases)
            done = seed_demo(
                node,
                cases=cases,
                seed_value=seed,
                now=until.replace(tzinfo=UTC) if until else None,
                progress=lambda n: bar.update(task, completed=n),
            )
    finally:
        node.close()
    common.out.print(
        f"seeded {done.cases} cases ({done.open} still open) and {done.members} members "
        f"into {escape(str(home))}. Members (tom, sara, jo, leo, fay, ravi, ann, mia) log in "
        f"with the password '{escape(done.password)}'; try accord compare --template "
        "billing@v1 --template billing@v2, or /dashboard after accord serve."
    )


def readiness(
    data: DataDir = None, database: DatabaseUrl = None, database_read: DatabaseReadUrl = None
) -> None:
    """Before go-live: data, process, people and infrastructure findings, each with what
    to do next. Exits 1 while any finding must be done (todo)."""
    from accord.outcomes.readiness import readiness as check

    node = open_node(data, database)
    findings = check(node.db, now=_now())
    if not findings:
        common.out.print("ready: nothing found")
        return
    table = Table("area", "", "finding", "what to do next")
    for f in findings:
        table.add_row(f.area, f.severity, escape(f.text), escape(f.action))
    common.out.print(table)
    if any(f.severity == "todo" for f in findings):
        raise typer.Exit(1)


def _practice(node: Node, member: str) -> tuple[Practice, Member]:
    from accord.auth.members import MemberStore
    from accord.node import party_slug
    from accord.templates.practice import Practice

    found = MemberStore(node.db).by_username(member)
    if found is None or found.disabled:
        raise fail(f"no active member {member!r}")
    practice = Practice(
        node_services(node).negotiation,
        party_id=party_slug(node.name),
        party_name=node.name,
        now=_now,
    )
    return practice, found


def _show_run(run: Run) -> None:
    from accord.templates.practice import STEPS

    common.out.print(f"practice case {run.case_id}")
    for step, what in STEPS:
        mark = "done" if run.done[step] else "todo"
        common.out.print(escape(f"  [{mark}] {what}"))
    if run.finished:
        common.out.print("finished: this member has done a practice run")


def practice_start(
    member: Annotated[str, typer.Option(help="Username of the member who practises.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Open a practice case: Pat Practice writes in; work it like a real case (never
    counted in the metrics), then run accord practice check."""
    practice, found = _practice(open_node(data, database), member)
    try:
        _show_run(practice.start(found))
    except ServiceError as exc:
        raise fail(exc.message) from exc


def practice_check(
    member: Annotated[str, typer.Option(help="Username of the member who practises.")],
    data: DataDir = None,
    database: DatabaseUrl = None,
    database_read: DatabaseReadUrl = None,
) -> None:
    """Play the customer's part of the member's latest practice case and show the steps."""
    practice, found = _practice(open_node(data, database), member)
    try:
        _show_run(practice.check(found))
    except ServiceError as exc:
        raise fail(exc.message) from exc


practice_app.command("start")(practice_start)
practice_app.command("check")(practice_check)
template_app.command("apply")(template_apply)
template_app.command("export")(template_export)
template_app.command("diff")(template_diff)
template_app.command("list")(template_list)
template_app.command("open")(template_open)
metrics_app.command("show")(metrics_show)
metrics_app.command("case")(metrics_case)
metrics_app.command("refresh")(metrics_refresh)
metrics_app.command("mark")(metrics_mark)
metrics_app.command("export")(metrics_export)
goal_app.command("add")(goal_add)
goal_app.command("list")(goal_list)
goal_app.command("remove")(goal_remove)
goal_app.command("own")(goal_own)
