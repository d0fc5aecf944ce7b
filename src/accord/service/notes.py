"""Internal notes: node-private remarks on a case.

They live in their own table, which nothing that exports or replicates ever reads,
so a note can never reach the shared log, a bundle or a peer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from accord.service.errors import Invalid, NotFound
from accord.store.cases import CaseStore
from accord.store.tables import notes

MAX_NOTE = 20_000


@dataclass(frozen=True)
class Note:
    id: int
    case_id: str
    member: str
    text: str
    created_at: datetime


class Notes:
    def __init__(self, cases: CaseStore, *, now: Callable[[], datetime] | None = None) -> None:
        self.cases = cases
        self.now = now or (lambda: datetime.now(UTC))

    def add(self, case_id: str, member: str, text: str) -> Note:
        if self.cases.state_hash(case_id) is None:
            raise NotFound(f"no case {case_id} on this node")
        if not text.strip():
            raise Invalid("a note needs some text", field="text")
        if len(text) > MAX_NOTE:
            raise Invalid(f"a note is at most {MAX_NOTE} characters", field="text")
        created = self.now()
        with self.cases.db.write() as conn:
            note_id = conn.execute(
                notes.insert()
                .values(case_id=case_id, member=member, text=text, created_at=created)
                .returning(notes.c.id)
            ).scalar_one()
        return Note(note_id, case_id, member, text, created)

    def list(self, case_id: str) -> list[Note]:
        with self.cases.db.read() as conn:
            rows = conn.execute(
                sa.select(
                    notes.c.id, notes.c.case_id, notes.c.member, notes.c.text, notes.c.created_at
                )
                .where(notes.c.case_id == case_id)
                .order_by(notes.c.id)
            ).all()
        return [
            Note(i, c, m, t, at if at.tzinfo else at.replace(tzinfo=UTC)) for i, c, m, t, at in rows
        ]
