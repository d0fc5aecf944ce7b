"""Invitations: a one-time, expiring link that lets another node join a case.

A link reads ``<inviting node URL>/federation/v1/invites?case=…&fp=…&secret=…&exp=…``:
the case id, the inviting node's key fingerprint (the joiner checks that the case's
own events name a party with that key), a one-time secret and the expiry. The node
keeps only the secret's SHA-256, and a secret works once.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import sqlalchemy as sa

from accord.core.crypto import is_event_id
from accord.store.database import Database
from accord.store.tables import invites

INVITE_PATH = "/federation/v1/invites"
MAX_TTL = timedelta(days=30)


class InviteError(Exception):
    """An invitation link is malformed, unknown, expired or already used."""


@dataclass(frozen=True)
class InviteLink:
    node_url: str
    case_id: str
    fingerprint: str
    secret: str
    expires: datetime

    def __str__(self) -> str:
        query = urlencode(
            {
                "case": self.case_id,
                "fp": self.fingerprint,
                "secret": self.secret,
                "exp": int(self.expires.timestamp()),
            }
        )
        return f"{self.node_url}{INVITE_PATH}?{query}"

    @classmethod
    def parse(cls, text: str) -> InviteLink:
        parts = urlsplit(text.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InviteError("an invite link starts with the inviting node's http(s) URL")
        if not parts.path.endswith(INVITE_PATH):
            raise InviteError(f"an invite link's path ends with {INVITE_PATH}")
        query = parse_qs(parts.query)
        try:
            case_id, fp, secret, exp = (query[k][0] for k in ("case", "fp", "secret", "exp"))
            expires = datetime.fromtimestamp(int(exp), UTC)
        except (KeyError, IndexError, ValueError, OverflowError) as exc:
            raise InviteError("the invite link lacks its case, fp, secret or exp") from exc
        if not is_event_id(case_id):
            raise InviteError("the invite link's case is not a case id")
        base = f"{parts.scheme}://{parts.netloc}{parts.path[: -len(INVITE_PATH)]}"
        return cls(base.rstrip("/"), case_id, fp, secret, expires)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class InviteStore:
    def __init__(self, db: Database, *, now: Callable[[], datetime]) -> None:
        self.db = db
        self.now = now

    def create(self, case_id: str, created_by: str, ttl: timedelta) -> tuple[str, datetime]:
        """A new one-time secret for ``case_id`` and when it expires."""
        if not timedelta(0) < ttl <= MAX_TTL:
            raise InviteError(f"an invitation lasts at most {MAX_TTL.days} days")
        secret = secrets.token_urlsafe(32)
        created = self.now()
        expires = (created + ttl).replace(microsecond=0)
        with self.db.write() as conn:
            conn.execute(
                invites.insert().values(
                    secret_hash=_hash(secret),
                    case_id=case_id,
                    created_by=created_by,
                    created_at=created,
                    expires_at=expires,
                )
            )
        return secret, expires

    def consume(self, case_id: str, secret: str, node_key: str) -> None:
        """Use the secret once for ``node_key``; ``InviteError`` says why it cannot be."""
        now = self.now()
        with self.db.write() as conn:
            row = conn.execute(
                sa.select(invites.c.case_id, invites.c.expires_at, invites.c.used_at)
                .where(invites.c.secret_hash == _hash(secret))
                .with_for_update()
            ).first()
            if row is None or row.case_id != case_id:
                raise InviteError("this invitation is not known for that case")
            if row.used_at is not None:
                raise InviteError("this invitation has already been used")
            expires = (
                row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
            )
            if expires <= now:
                raise InviteError("this invitation has expired; ask for a new one")
            conn.execute(
                invites.update()
                .where(invites.c.secret_hash == _hash(secret))
                .values(used_at=now, used_by=node_key)
            )
