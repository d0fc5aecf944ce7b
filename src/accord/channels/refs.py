"""Case numbers and direct lines: how a customer's message finds its case again.

Each case that meets a channel gets a short number (``[Accord #12]`` in subjects) and a
random direct-line token (``support+<token>@example.com``, the Reply-To of everything
Accord sends). Both are node-private. The token is 60 random bits: a customer can only
learn it from a message of their case, so a mail to a made-up token is just unknown.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.store.database import Database
from accord.store.tables import case_refs

TOKEN_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no l, o, 0, 1: read aloud safely
assert len(TOKEN_ALPHABET) == 32  # new_token takes a byte modulo 32
TOKEN = re.compile(rf"[{TOKEN_ALPHABET}]{{12}}")
SUBJECT_TAG = re.compile(r"\[Accord #(\d{1,9})\]", re.IGNORECASE)


def new_token() -> str:
    """A fresh direct-line token: twelve random bytes, each taken modulo the alphabet's
    32 letters (uniform, since 32 divides 256): 60 random bits. One call to the system's
    generator, not one a letter (``secrets.choice`` cost 12 s for 100,000 cases)."""
    return "".join(TOKEN_ALPHABET[b & 31] for b in secrets.token_bytes(12))


@dataclass(frozen=True)
class CaseRef:
    case_id: str
    number: int
    token: str


_OF_CASE = sa.select(case_refs).where(case_refs.c.case_id == sa.bindparam("case_id"))


class CaseRefs:
    def __init__(self, db: Database, *, now: Callable[[], datetime]) -> None:
        self.db = db
        self.now = now

    def ensure(self, conn: Connection, case_id: str) -> CaseRef:
        """The case's number and token, made on first use (idempotent)."""
        found = self.of_case(conn, case_id)
        if found is not None:
            return found
        conn.execute(
            self.db.insert_or_ignore(case_refs),
            {"case_id": case_id, "token": new_token(), "created_at": self.now()},
        )
        made = self.of_case(conn, case_id)
        assert made is not None
        return made

    def of_case(self, conn: Connection, case_id: str) -> CaseRef | None:
        row = conn.execute(_OF_CASE, {"case_id": case_id}).first()
        return None if row is None else CaseRef(row.case_id, int(row.number), row.token)

    def by_token(self, conn: Connection, token: str) -> CaseRef | None:
        if not TOKEN.fullmatch(token):
            return None
        row = conn.execute(sa.select(case_refs).where(case_refs.c.token == token)).first()
        return None if row is None else CaseRef(row.case_id, int(row.number), row.token)

    def by_number(self, conn: Connection, number: int) -> CaseRef | None:
        row = conn.execute(sa.select(case_refs).where(case_refs.c.number == number)).first()
        return None if row is None else CaseRef(row.case_id, int(row.number), row.token)


def subject_number(subject: str) -> int | None:
    """The case number tagged in a subject (``[Accord #12]``), if any."""
    found = SUBJECT_TAG.search(subject)
    return int(found.group(1)) if found else None


def tagged(subject: str, number: int) -> str:
    """``subject`` with the case's tag, once."""
    subject = SUBJECT_TAG.sub("", subject).strip()
    return f"{subject} [Accord #{number}]".strip()
