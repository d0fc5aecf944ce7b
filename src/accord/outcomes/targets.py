"""Targets: a goal for one statistic of one metric, each with an accountable owner.

"median time to agreement under 4 business hours" is ``agreement median <= 4``;
"no more than one transfer per case" is ``transfers mean <= 1``; "98% of callbacks on
time" is ``callbacks_on_time rate >= 98``. A target may be narrowed to one template.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from accord.outcomes.measures import METRICS, STATS, Figure
from accord.service.errors import Invalid, NotFound
from accord.store.database import Database
from accord.store.tables import members, metric_targets

OPS = ("<=", ">=")


@dataclass(frozen=True)
class Target:
    id: int
    name: str
    metric: str
    stat: str
    op: str
    threshold: float
    owner: str | None  # the owner's username
    owner_name: str | None
    template: str | None

    def met(self, figure: Figure) -> bool | None:
        """Whether ``figure`` meets the target; None when there is nothing to judge."""
        if figure.value is None:
            return None
        if self.op == "<=":
            return figure.value <= self.threshold
        return figure.value >= self.threshold

    def describe(self) -> str:
        metric = METRICS[self.metric]
        unit = {"duration": " business hours", "rate": "%", "count": "", "score": ""}[metric.kind]
        word = "at most" if self.op == "<=" else "at least"
        return f"{self.stat} {metric.label.lower()} {word} {self.threshold:g}{unit}"

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "metric": self.metric,
            "stat": self.stat,
            "op": self.op,
            "threshold": self.threshold,
            "owner": self.owner,
            "owner_name": self.owner_name,
            "template": self.template,
            "describe": self.describe(),
        }


class Targets:
    def __init__(self, db: Database, *, now: Callable[[], datetime]) -> None:
        self.db = db
        self.now = now

    def add(
        self,
        *,
        name: str,
        metric: str,
        op: str,
        threshold: float,
        stat: str | None = None,
        owner: str | None = None,
        template: str | None = None,
    ) -> Target:
        if metric not in METRICS:
            raise Invalid(f"metric is one of {', '.join(METRICS)}", field="metric")
        m = METRICS[metric]
        stat = stat or m.stat
        if m.kind == "rate" and stat != "rate":
            raise Invalid(f"{metric} is a rate: its statistic is 'rate'", field="stat")
        if m.kind != "rate" and stat not in STATS[:-1]:
            raise Invalid(f"stat is one of {', '.join(STATS[:-1])}", field="stat")
        if op not in OPS:
            raise Invalid("op is <= (at most) or >= (at least)", field="op")
        name = name.strip()
        if not name or len(name) > 200:
            raise Invalid("a target's name is 1 to 200 characters", field="name")
        with self.db.write() as conn:
            owner_id = None
            if owner:
                owner_id = conn.execute(
                    sa.select(members.c.id).where(
                        members.c.username == owner, members.c.disabled_at.is_(None)
                    )
                ).scalar_one_or_none()
                if owner_id is None:
                    raise NotFound(f"no active member {owner!r}", field="owner")
            new_id = conn.execute(
                metric_targets.insert()
                .values(
                    name=name,
                    metric=metric,
                    stat=stat,
                    op=op,
                    threshold=float(threshold),
                    owner_member_id=owner_id,
                    template=template or None,
                    created_at=self.now(),
                )
                .returning(metric_targets.c.id)
            ).scalar_one()
        return self.get(int(new_id))

    def get(self, target_id: int) -> Target:
        for target in self.list():
            if target.id == target_id:
                return target
        raise NotFound(f"no target {target_id}")

    def list(self) -> list[Target]:
        query = (
            sa.select(metric_targets, members.c.username, members.c.display_name)
            .outerjoin(members, members.c.id == metric_targets.c.owner_member_id)
            .order_by(metric_targets.c.id)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Target(
                r["id"],
                r["name"],
                r["metric"],
                r["stat"],
                r["op"],
                r["threshold"],
                r["username"],
                r["display_name"],
                r["template"],
            )
            for r in rows
        ]

    def remove(self, target_id: int) -> None:
        with self.db.write() as conn:
            if not conn.execute(
                metric_targets.delete().where(metric_targets.c.id == target_id)
            ).rowcount:
                raise NotFound(f"no target {target_id}")

    def set_owner(self, target_id: int, owner: str) -> Target:
        with self.db.write() as conn:
            owner_id = conn.execute(
                sa.select(members.c.id).where(members.c.username == owner)
            ).scalar_one_or_none()
            if owner_id is None:
                raise NotFound(f"no member {owner!r}", field="owner")
            if not conn.execute(
                metric_targets.update()
                .where(metric_targets.c.id == target_id)
                .values(owner_member_id=owner_id)
            ).rowcount:
                raise NotFound(f"no target {target_id}")
        return self.get(target_id)


def utc_now() -> datetime:
    return datetime.now(UTC)
