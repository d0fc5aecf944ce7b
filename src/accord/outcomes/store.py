"""Outcome facts per case, kept in ``case_metrics`` and refreshed from the log.

A case's row is recomputed when its event count or its number of marks differs from
what the row was computed from (``refresh_stale``, run before every dashboard query and
by ``accord metrics refresh``); a changed business calendar needs ``refresh --all``.
Handoffs write ``owner.named`` into the log, so a transfer also makes the row stale.

Finding and refreshing stale rows reads and writes the primary; the figures (``rows``,
``cohort``, ``backlog``, ``dimensions``) are then read where a read replica may serve
them (``Database.read_replica``): the refresh a member's request made is theirs, so they
see it at once, and anyone else's within the replica's bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.core.events import load_trusted
from accord.outcomes.facts import CaseFacts, Logged, Private, case_facts
from accord.outcomes.measures import Cohort
from accord.service import settings
from accord.service.calendar import BusinessCalendar
from accord.service.errors import Invalid, NotFound
from accord.store.database import Database
from accord.store.tables import (
    case_marks,
    case_metrics,
    case_owners,
    case_templates,
    cases,
    events,
    member_routing,
    practice_runs,
    template_cases,
)
from accord.templates.spec import TemplateSpec

MARK_KINDS = ("identify", "repeat", "rating")
REFRESH_BATCH = 500
COHORT_NUMBERS = (
    "first_response_s",
    "agreement_s",
    "resolution_s",
    "transfers",
    "repeats",
    "callbacks_promised",
    "callbacks_kept",
    "activities_promised",
    "activities_kept",
    "rounds",
    "reopenings",
    "rating",
    "deviations",
)


@dataclass(frozen=True)
class Filter:
    """Which cases a figure is about: opened in ``[start, end)`` and the rest equal."""

    start: datetime | None = None
    end: datetime | None = None
    template: str | None = None
    version: int | None = None
    team_id: int | None = None
    member_id: int | None = None
    channel: str | None = None

    def where(self) -> list[Any]:
        c = case_metrics.c
        out: list[Any] = []
        if self.start is not None:
            out.append(c.opened_at >= self.start)
        if self.end is not None:
            out.append(c.opened_at < self.end)
        for column, value in (
            (c.template, self.template),
            (c.template_version, self.version),
            (c.team_id, self.team_id),
            (c.member_id, self.member_id),
            (c.channel, self.channel),
        ):
            if value is not None:
                out.append(column == value)
        return out


FACT_COLUMNS = (
    "case_id",
    "opened_at",
    "resolved_at",
    "first_response_s",
    "agreement_s",
    "resolution_s",
    "transfers",
    "repeats",
    "callbacks_promised",
    "callbacks_kept",
    "activities_promised",
    "activities_kept",
    "rounds",
    "reopenings",
    "rating",
    "deviations",
)


class MetricsStore:
    def __init__(self, db: Database, public_key: str, *, now: Callable[[], datetime]) -> None:
        self.db = db
        self.public_key = public_key
        self.now = now

    # -- marks ------------------------------------------------------------------------

    def mark(
        self,
        case_id: str,
        kind: str,
        *,
        member_id: int,
        note: str | None = None,
        value: int | None = None,
        party: str | None = None,
    ) -> int:
        """Record that the customer was asked to identify again or to repeat something
        (or a rating taken outside the case); returns the mark's id."""
        if kind not in MARK_KINDS:
            raise Invalid(f"a mark is one of {', '.join(MARK_KINDS)}", field="kind")
        if kind == "rating" and (value is None or not 1 <= value <= 5):
            raise Invalid("a rating is 1 to 5", field="value")
        if kind != "rating" and value is not None:
            raise Invalid("only a rating has a value", field="value")
        with self.db.write() as conn:
            if (
                conn.execute(sa.select(cases.c.case_id).where(cases.c.case_id == case_id)).first()
                is None
            ):
                raise NotFound(f"no case {case_id} on this node")
            mark_id = conn.execute(
                case_marks.insert()
                .values(
                    case_id=case_id,
                    kind=kind,
                    party=party,
                    value=value,
                    member_id=member_id,
                    note=note,
                    at=self.now(),
                )
                .returning(case_marks.c.id)
            ).scalar_one()
        self.refresh([case_id])
        return int(mark_id)

    def marks(self, case_id: str) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(case_marks)
                .where(case_marks.c.case_id == case_id)
                .order_by(case_marks.c.id)
            ).mappings()
            return [
                {
                    "id": r["id"],
                    "kind": r["kind"],
                    "party": r["party"],
                    "value": r["value"],
                    "member_id": r["member_id"],
                    "note": r["note"],
                    "at": _aware(r["at"]).isoformat(),
                }
                for r in rows
            ]

    # -- refreshing -------------------------------------------------------------------

    def stale(self, *, everything: bool = False) -> list[str]:
        """Cases whose facts are missing or were computed from fewer events or marks."""
        marks = (
            sa.select(case_marks.c.case_id, sa.func.count().label("n"))
            .group_by(case_marks.c.case_id)
            .subquery()
        )
        query = (
            sa.select(cases.c.case_id)
            .outerjoin(case_metrics, case_metrics.c.case_id == cases.c.case_id)
            .where(cases.c.case_id.not_in(sa.select(practice_runs.c.case_id)))
        )
        if not everything:
            query = query.outerjoin(marks, marks.c.case_id == cases.c.case_id).where(
                sa.or_(
                    case_metrics.c.case_id.is_(None),
                    case_metrics.c.event_count != cases.c.event_count,
                    case_metrics.c.marks != sa.func.coalesce(marks.c.n, 0),
                )
            )
        with self.db.read() as conn:
            return list(conn.execute(query).scalars())

    def refresh_stale(self, *, everything: bool = False) -> int:
        ids = self.stale(everything=everything)
        for i in range(0, len(ids), REFRESH_BATCH):
            self.refresh(ids[i : i + REFRESH_BATCH])
        return len(ids)

    def refresh(
        self, case_ids: Sequence[str], *, conn: Connection | None = None
    ) -> list[CaseFacts]:
        """Recompute and store the facts of these cases (in ``conn``'s transaction if
        given: the ``outcome-facts`` follower's)."""
        if conn is None:
            with self.db.write() as own:
                return self.refresh(case_ids, conn=own)
        calendar = settings.calendar(self.db)
        now = self.now()
        out = []
        specs: dict[tuple[str, int], frozenset[str]] = {}
        for case_id in case_ids:
            facts = self._compute(conn, case_id, calendar, now, specs)
            if facts is None:
                continue
            values = {**facts.row(), "computed_at": now}
            conn.execute(case_metrics.delete().where(case_metrics.c.case_id == case_id))
            conn.execute(case_metrics.insert().values(values))
            out.append(facts)
        return out

    def facts(self, case_id: str) -> CaseFacts:
        with self.db.read() as conn:
            found = self._compute(conn, case_id, settings.calendar(self.db), self.now(), {})
        if found is None:
            raise NotFound(f"no case {case_id} on this node")
        return found

    def _compute(
        self,
        conn: Connection,
        case_id: str,
        calendar: BusinessCalendar,
        now: datetime,
        specs: dict[tuple[str, int], frozenset[str]],
    ) -> CaseFacts | None:
        raw_state = conn.execute(
            sa.select(cases.c.state).where(
                cases.c.case_id == case_id,
                cases.c.case_id.not_in(sa.select(practice_runs.c.case_id)),
            )
        ).scalar_one_or_none()
        if raw_state is None:
            return None  # no such case, or a practice case (never measured)
        state = orjson.loads(raw_state)
        logged: list[Logged] = [
            (load_trusted(r.raw, r.sig, r.event_id), r.party, r.verdict is None)
            for r in conn.execute(
                sa.select(
                    events.c.raw, events.c.sig, events.c.event_id, events.c.party, events.c.verdict
                )
                .where(events.c.case_id == case_id)
                .order_by(events.c.depth, events.c.event_id)
            )
        ]
        us = next(
            (pid for pid, p in state["parties"].items() if p["node"] == self.public_key), None
        )
        owner = conn.execute(
            sa.select(case_owners.c.member_id, case_owners.c.transfers, member_routing.c.team_id)
            .outerjoin(member_routing, member_routing.c.member_id == case_owners.c.member_id)
            .where(case_owners.c.case_id == case_id)
        ).first()
        mark_rows = conn.execute(
            sa.select(case_marks.c.kind, case_marks.c.value).where(case_marks.c.case_id == case_id)
        ).all()
        ratings = [m.value for m in mark_rows if m.kind == "rating"]
        tv = conn.execute(
            sa.select(template_cases.c.name, template_cases.c.version).where(
                template_cases.c.case_id == case_id
            )
        ).first()
        expected = None
        if tv is not None:
            key = (tv.name, tv.version)
            if key not in specs:
                spec = conn.execute(
                    sa.select(case_templates.c.spec).where(
                        case_templates.c.name == tv.name, case_templates.c.version == tv.version
                    )
                ).scalar_one()
                specs[key] = TemplateSpec(tv.name, orjson.loads(spec)).items
            expected = specs[key]
        private = Private(
            transfers=owner.transfers if owner else 0,
            repeats=sum(1 for m in mark_rows if m.kind != "rating"),
            marks=len(mark_rows),
            rating=sum(ratings) / len(ratings) if ratings else None,
            template=tv.name if tv else None,
            version=tv.version if tv else None,
            expected=expected,
            member_id=owner.member_id if owner else None,
            team_id=owner.team_id if owner else None,
        )
        return case_facts(logged, state, us=us, calendar=calendar, now=now, private=private)

    # -- reading ----------------------------------------------------------------------

    def rows(self, where: Filter, columns: Iterable[str] = FACT_COLUMNS) -> list[Any]:
        """The facts of the cases ``where`` selects, oldest first."""
        query = sa.select(*(case_metrics.c[name] for name in columns)).where(*where.where())
        with self.db.read_replica() as conn:
            return list(conn.execute(query.order_by(case_metrics.c.opened_at)))

    def cohort(self, where: Filter, template: str | None = None) -> Cohort:
        """The facts of the cases ``where`` selects (narrowed to ``template`` if given) as
        columns: one query whose every value is a number (times as epoch seconds, none as
        -1) loaded into one NumPy matrix, so that 100,000 cases load without a Python
        object per value; sorted by opening time here rather than by the database."""
        if template is not None:
            if where.template not in (None, template):
                return Cohort.empty(COHORT_NUMBERS)
            where = replace(where, template=template)
        c = case_metrics.c
        with self.db.read_replica() as conn:
            names = list(
                conn.execute(sa.select(case_templates.c.name).distinct().order_by("name")).scalars()
            )
        code = (
            sa.case({n: i for i, n in enumerate(names)}, value=c.template, else_=-1)
            if names
            else sa.literal(-1)
        )
        query = sa.select(
            self._epoch(c.opened_at),
            sa.case((c.resolved_at.is_(None), 0), else_=1),
            code,
            *(sa.func.coalesce(c[name], -1) for name in COHORT_NUMBERS),
        ).where(*where.where())
        rows = self._numbers(query)
        if not rows:
            return Cohort.empty(COHORT_NUMBERS)
        matrix = np.array(rows, dtype=float)
        matrix = matrix[np.argsort(matrix[:, 0], kind="stable")]
        out: dict[str, np.ndarray] = {"resolved": matrix[:, 1] > 0, "template": matrix[:, 2]}
        for i, name in enumerate(COHORT_NUMBERS):
            values = matrix[:, 3 + i]
            values[values < 0] = np.nan
            out[name] = values
        return Cohort(out, matrix[:, 0].copy(), {n: i for i, n in enumerate(names)})

    def _epoch(self, column: Any) -> Any:
        """Seconds since 1970 of a stored UTC time: the one database-specific expression."""
        if self.db.is_sqlite:  # stored as ISO text without an offset, in UTC
            return (sa.func.julianday(column) - 2440587.5) * 86400.0
        return sa.cast(sa.extract("epoch", column), sa.Float)

    def backlog(self, where: Filter, at: datetime) -> np.ndarray:
        """When (epoch seconds) each case open at ``at`` was opened, whatever the period:
        the backlog and its ageing."""
        c = case_metrics.c
        scope = replace(where, start=None, end=None)
        query = sa.select(self._epoch(c.opened_at)).where(
            *scope.where(), c.opened_at < at, sa.or_(c.resolved_at.is_(None), c.resolved_at > at)
        )
        return np.array([r[0] for r in self._numbers(query)], dtype=float)

    def _numbers(self, query: Any) -> list[tuple[Any, ...]]:
        """The driver's tuples of a query whose every value is a plain number, read
        without building a Row object per result row."""
        with self.db.read_replica() as conn:
            result = conn.execute(query)
            rows = list(result.cursor.fetchall()) if result.cursor is not None else []
            result.close()
        return rows

    def dimensions(self) -> dict[str, list[Any]]:
        """The values each filter can take, for forms."""
        c = case_metrics.c
        with self.db.read_replica() as conn:
            templates = conn.execute(
                sa.select(c.template, c.template_version)
                .where(c.template.is_not(None))
                .distinct()
                .order_by(c.template, c.template_version)
            ).all()
            channels = conn.execute(sa.select(c.channel).distinct().order_by(c.channel)).scalars()
            return {
                "templates": [f"{t}@v{v}" if v is not None else str(t) for t, v in templates],
                "channels": list(channels),
            }


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
