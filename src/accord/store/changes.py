"""Whether anything changed: the latest case change and the latest note, two index
lookups. Derived read models (the inbox rows, the search index) skip their staleness
scans while this mark stands still, and the pages poll it for live updates."""

from __future__ import annotations

import time
from datetime import datetime

import sqlalchemy as sa

from accord.store.database import Database
from accord.store.tables import cases, notes

Mark = tuple[datetime | None, int | None]
FULL_CHECK_SECONDS = 30.0


def latest_change(db: Database) -> Mark:
    """The latest ``cases.updated_at`` and the latest note id."""
    with db.read() as conn:
        updated = conn.execute(sa.select(sa.func.max(cases.c.updated_at))).scalar()
        last_note = conn.execute(sa.select(sa.func.max(notes.c.id))).scalar()
    return updated, last_note


class Unchanged:
    """Tells a derived model it may skip its scan: the mark has not moved since the last
    full check, which was less than ``FULL_CHECK_SECONDS`` ago (a bound for clocks that
    step back, or two writes within one clock tick)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._seen: Mark | None = None
        self._checked = 0.0

    def check(self) -> tuple[bool, Mark, float]:
        """(whether the scan may be skipped, the mark now, the time now)."""
        mark, clock = latest_change(self.db), time.monotonic()
        return mark == self._seen and clock - self._checked < FULL_CHECK_SECONDS, mark, clock

    def checked(self, mark: Mark, clock: float) -> None:
        """Record a full check that began at ``mark`` and ``clock``."""
        self._seen, self._checked = mark, clock
