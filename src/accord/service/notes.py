"""Internal notes: node-private remarks on a case.

They live in their own table, which nothing that exports or replicates ever reads,
so a note can never reach the shared log, a bundle or a peer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from accord.service.errors import Invalid, NotFound
from accord.store.cases import CaseStore
from accord.store.tables import members, notes

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from accord.service.ownership import Ownership

MAX_NOTE = 20_000
# ``@username`` in a note (a username: 2 to 64 of a-z, 0-9, '.', '_', '-'), not inside an
# address such as ann@example.com; a trailing full stop ends the sentence, not the name.
MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9._-]{2,64})")


@dataclass(frozen=True)
class Note:
    id: int
    case_id: str
    member: str
    text: str
    created_at: datetime


def mentioned(text: str) -> list[str]:
    """The usernames a note mentions with ``@username``, each once, in order."""
    found: list[str] = []
    for match in MENTION.finditer(text):
        name = match.group(1).rstrip(".-_").lower()
        if len(name) >= 2 and name not in found:
            found.append(name)
    return found


class Notes:
    """Internal notes; with ``ownership``, a note that mentions ``@username`` notifies that
    active member (kind ``mention``) in the note's own transaction."""

    def __init__(
        self,
        cases: CaseStore,
        *,
        now: Callable[[], datetime] | None = None,
        ownership: Ownership | None = None,
    ) -> None:
        self.cases = cases
        self.now = now or (lambda: datetime.now(UTC))
        self.ownership = ownership

    def add(self, case_id: str, member: str, text: str) -> Note:
        if self.cases.state_hash(case_id) is None:
            raise NotFound(f"no case {case_id} on this node")
        if not text.strip():
            raise Invalid("a note needs some text", field="text")
        if len(text) > MAX_NOTE:
            raise Invalid(f"a note is at most {MAX_NOTE} characters", field="text")
        names = mentioned(text) if self.ownership is not None else []
        # the case's title for the notices, read before the note's transaction opens
        state = self.cases.state(case_id) if names else None
        title = str(state["title"] or "a case") if state is not None else "a case"
        created = self.now()
        with self.cases.db.write() as conn:
            note_id = conn.execute(
                notes.insert()
                .values(case_id=case_id, member=member, text=text, created_at=created)
                .returning(notes.c.id)
            ).scalar_one()
            if names:
                self._mention(conn, case_id, member, text, names, title)
        return Note(note_id, case_id, member, text, created)

    def _mention(
        self,
        conn: Connection,
        case_id: str,
        author: str,
        text: str,
        names: list[str],
        title: str,
    ) -> None:
        assert self.ownership is not None
        rows = conn.execute(
            sa.select(members.c.id, members.c.display_name).where(
                members.c.username.in_(names), members.c.disabled_at.is_(None)
            )
        ).all()
        if not rows:
            return
        line = " ".join(text.split())
        short = line if len(line) <= 120 else line[:119] + "…"
        for member_id, display_name in rows:
            if display_name == author:
                continue  # a member who mentions themself needs no notice
            self.ownership.notify(
                conn,
                int(member_id),
                case_id,
                "mention",
                f"{author} mentioned you in a note on “{title}”: {short}",
            )

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
