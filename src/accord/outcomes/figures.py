"""What the dashboard, the comparison and the CLI ask for, in one place.

Every read first brings stale case facts up to date (`MetricsStore.refresh_stale`), so
figures always match the logs; then it is one query over ``case_metrics`` per cohort,
where a read replica may serve it (``accord.outcomes.store``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from accord.outcomes import measures
from accord.outcomes.measures import METRICS, Comparison, Figure
from accord.outcomes.store import FACT_COLUMNS, Filter, MetricsStore
from accord.outcomes.targets import Target, Targets
from accord.service.errors import Invalid, NotFound
from accord.store.database import Database
from accord.store.tables import case_metrics, case_templates, members, teams
from accord.templates.spec import TemplateError, parse_ref

_PERIOD = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")
GROUP_KINDS = ("template", "period", "team", "channel", "member")


@dataclass(frozen=True)
class TargetStatus:
    target: Target
    current: Figure
    met: bool | None
    series: list[tuple[datetime, Figure]]


@dataclass(frozen=True)
class Dashboard:
    where: Filter
    bucket: str
    cases: int
    open: int
    summary: dict[str, Figure]
    targets: list[TargetStatus]
    series: dict[str, list[tuple[datetime, Figure]]]
    backlog: int
    ageing: dict[str, int]
    at: datetime


class Outcomes:
    def __init__(self, db: Database, public_key: str, *, now: Callable[[], datetime]) -> None:
        self.db = db
        self.now = now
        self.store = MetricsStore(db, public_key, now=now)
        self.targets = Targets(db, now=now)

    def dashboard(self, where: Filter, *, bucket: str = "week") -> Dashboard:
        self.store.refresh_stale()
        at = min(where.end, self.now()) if where.end else self.now()
        rows = self.store.cohort(where)
        status = []
        for target in self.targets.list():
            scoped = rows.of_template(target.template) if target.template else rows
            current = measures.figure(target.metric, scoped, target.stat)
            status.append(
                TargetStatus(
                    target,
                    current,
                    target.met(current),
                    measures.series(target.metric, scoped, bucket, target.stat),
                )
            )
        opened = self.store.backlog(where, at)
        return Dashboard(
            where=where,
            bucket=bucket,
            cases=len(rows),
            open=rows.open_count,
            summary=measures.summary(rows),
            targets=status,
            series={key: measures.series(key, rows, bucket) for key in METRICS},
            backlog=len(opened),
            ageing=measures.ageing(opened, at),
            at=at,
        )

    def compare(self, a: Filter, b: Filter) -> list[Comparison]:
        self.store.refresh_stale()
        return measures.compare(self.store.cohort(a), self.store.cohort(b))

    def group(self, spec: str, base: Filter | None = None) -> tuple[str, Filter]:
        """A cohort from ``kind:value``: ``template:billing@v2``, ``period:2026-10-01..
        2026-11-01``, ``team:Billing``, ``channel:email``, ``member:tom``."""
        base = base or Filter()
        kind, _, value = spec.partition(":")
        value = value.strip()
        if kind not in GROUP_KINDS or not value:
            raise Invalid(
                f"a group is kind:value with kind one of {', '.join(GROUP_KINDS)}", field="group"
            )
        if kind == "template":
            try:
                name, version = parse_ref(value)
            except TemplateError as exc:
                raise Invalid(str(exc), field="group") from exc
            self._known_template(name, version)
            return spec, replace(base, template=name, version=version)
        if kind == "period":
            m = _PERIOD.fullmatch(value)
            if m is None:
                raise Invalid("a period is YYYY-MM-DD..YYYY-MM-DD", field="group")
            try:
                start, end = (day_start(date.fromisoformat(g)) for g in m.groups())
            except ValueError as exc:
                raise Invalid(f"a period is two real dates: {exc}", field="group") from exc
            if end <= start:
                raise Invalid("a period ends after it starts", field="group")
            return spec, replace(base, start=start, end=end)
        if kind == "channel":
            return spec, replace(base, channel=value)
        with self.db.read() as conn:
            if kind == "team":
                found = conn.execute(
                    sa.select(teams.c.id).where(teams.c.name == value)
                ).scalar_one_or_none()
                if found is None:
                    raise NotFound(f"no team {value!r}", field="group")
                return spec, replace(base, team_id=int(found))
            found = conn.execute(
                sa.select(members.c.id).where(members.c.username == value)
            ).scalar_one_or_none()
            if found is None:
                raise NotFound(f"no member {value!r}", field="group")
            return spec, replace(base, member_id=int(found))

    def _known_template(self, name: str, version: int | None) -> None:
        """Refuse a template (or a version of it) this node never had: comparing it would
        only say "not enough data"."""
        query = sa.select(case_templates.c.version).where(case_templates.c.name == name)
        with self.db.read() as conn:
            versions = set(conn.execute(query).scalars())
        if not versions:
            raise NotFound(f"no template {name!r}", field="group")
        if version is not None and version not in versions:
            known = ", ".join(f"v{v}" for v in sorted(versions))
            raise NotFound(f"template {name!r} has no version {version} ({known})", field="group")

    def export_csv(self, where: Filter) -> str:
        """The facts of every case ``where`` selects, one row each (durations in seconds
        of business time)."""
        self.store.refresh_stale()
        columns = (
            "case_id",
            "template",
            "template_version",
            "channel",
            "member_id",
            "team_id",
            *FACT_COLUMNS[1:],
        )
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in self.store.rows(where, columns):
            writer.writerow(
                [
                    v.isoformat() if isinstance(v, datetime) else ("" if v is None else v)
                    for v in row
                ]
            )
        return out.getvalue()

    def series_csv(self, board: Dashboard) -> str:
        """Each metric per bucket: bucket start, metric, statistic, value, cases."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("bucket", "metric", "stat", "value", "cases"))
        for key, points in board.series.items():
            for start, fig in points:
                value = "" if fig.value is None else f"{fig.value:.4f}"
                writer.writerow((start.date().isoformat(), key, fig.stat, value, fig.n))
        return out.getvalue()

    def case_count(self) -> int:
        with self.db.read_replica() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(case_metrics)).scalar_one()
            )


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def filter_from(
    outcomes_: Outcomes,
    *,
    start: date | None = None,
    end: date | None = None,
    template: str | None = None,
    team: str | None = None,
    channel: str | None = None,
    member: str | None = None,
) -> Filter:
    """A filter from the parameters the API, pages and CLI take (``end`` inclusive)."""
    where = Filter(
        start=day_start(start) if start else None,
        end=day_start(end) + timedelta(days=1) if end else None,
        channel=channel or None,
    )
    if template:
        where = outcomes_.group(f"template:{template}", where)[1]
    if team:
        where = outcomes_.group(f"team:{team}", where)[1]
    if member:
        where = outcomes_.group(f"member:{member}", where)[1]
    return where


def comparison_json(label_a: str, label_b: str, found: list[Comparison]) -> dict[str, Any]:
    return {
        "a": label_a,
        "b": label_b,
        "alpha": measures.ALPHA,
        "summary": measures.verdict_sentence(label_b, label_a, found),
        "metrics": [
            {
                "metric": c.metric,
                "label": METRICS[c.metric].label,
                "stat": c.a.stat,
                "a": {"value": c.a.value, "cases": c.a.n, "shown": c.a.shown()},
                "b": {"value": c.b.value, "cases": c.b.n, "shown": c.b.shown()},
                "test": c.test,
                "p_value": c.p_value,
                "verdict": c.verdict,
            }
            for c in found
        ],
    }


def figure_json(fig: Figure) -> dict[str, Any]:
    return {"stat": fig.stat, "value": fig.value, "cases": fig.n, "shown": fig.shown()}
