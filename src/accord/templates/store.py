"""Template versions and which version each case came from (node-private tables)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.service.errors import NotFound
from accord.store.database import Database
from accord.store.tables import case_templates, template_cases
from accord.templates.spec import TemplateSpec


@dataclass(frozen=True)
class Version:
    name: str
    version: int
    spec: TemplateSpec
    created_at: datetime
    created_by: str


class TemplateStore:
    def __init__(self, db: Database, *, now: Callable[[], datetime]) -> None:
        self.db = db
        self.now = now

    def add(self, spec: TemplateSpec, *, by: str) -> tuple[Version, bool]:
        """Store ``spec`` as the next version of its name, unless it equals the latest
        version (then that one is returned and False: nothing changed)."""
        with self.db.write() as conn:
            latest = self._latest(conn, spec.name)
            if latest is not None and latest.spec.canonical() == spec.canonical():
                return latest, False
            version = 1 if latest is None else latest.version + 1
            now = self.now()
            conn.execute(
                case_templates.insert().values(
                    name=spec.name,
                    version=version,
                    spec=spec.canonical(),
                    created_at=now,
                    created_by=by,
                )
            )
        return Version(spec.name, version, spec, now, by), True

    def get(self, name: str, version: int | None = None) -> Version:
        with self.db.read() as conn:
            if version is None:
                found = self._latest(conn, name)
            else:
                row = conn.execute(
                    sa.select(case_templates).where(
                        case_templates.c.name == name, case_templates.c.version == version
                    )
                ).first()
                found = _version(row) if row else None
        if found is None:
            raise NotFound(
                f"no template {name}" + (f"@v{version}" if version else ""), field="template"
            )
        return found

    def list(self) -> list[dict[str, Any]]:
        """Each template name with its latest version, title and number of cases."""
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(case_templates).order_by(case_templates.c.name, case_templates.c.version)
            ).all()
            counts = {
                (r.name, r.version): r.n
                for r in conn.execute(
                    sa.select(
                        template_cases.c.name,
                        template_cases.c.version,
                        sa.func.count().label("n"),
                    ).group_by(template_cases.c.name, template_cases.c.version)
                )
            }
        out: dict[str, dict[str, Any]] = {}
        for row in rows:
            v = _version(row)
            entry = out.setdefault(v.name, {"name": v.name, "versions": []})
            entry.update(latest=v.version, title=v.spec.data["title"])
            entry["versions"].append(
                {
                    "version": v.version,
                    "created_at": v.created_at.isoformat(),
                    "created_by": v.created_by,
                    "cases": counts.get((v.name, v.version), 0),
                }
            )
        return list(out.values())

    def record_case(self, conn: Connection, case_id: str, name: str, version: int) -> None:
        conn.execute(template_cases.insert().values(case_id=case_id, name=name, version=version))

    def of_case(self, case_id: str) -> tuple[str, int] | None:
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(template_cases.c.name, template_cases.c.version).where(
                    template_cases.c.case_id == case_id
                )
            ).first()
        return (row.name, row.version) if row else None

    def _latest(self, conn: Connection, name: str) -> Version | None:
        row = conn.execute(
            sa.select(case_templates)
            .where(case_templates.c.name == name)
            .order_by(case_templates.c.version.desc())
            .limit(1)
        ).first()
        return _version(row) if row else None


def _version(row: Any) -> Version:
    at = row.created_at
    return Version(
        row.name,
        row.version,
        TemplateSpec(row.name, orjson.loads(row.spec)),
        at if at.tzinfo else at.replace(tzinfo=UTC),
        row.created_by,
    )
