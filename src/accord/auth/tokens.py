"""API tokens for programs: bearer secrets with scopes, stored only as their SHA-256.

A token is ``acc_`` + 43 url-safe characters (256 random bits from ``secrets``); the
prefix lets secret scanners and people recognise one. It is shown once, when made; the
database keeps its SHA-256 (a fast hash is enough for a secret this random, and lets
a lookup use the unique index). A token never holds more than its member's role: that
is checked when it is made, and its scopes are intersected with the role's current
scopes each time it is used.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from accord.auth import version as grants
from accord.auth.clock import Clock, aware, now_utc, system_clock, utc
from accord.auth.errors import (
    MemberDisabledError,
    ScopeError,
    ScopeNotAllowed,
    TokenRequestError,
    UnknownMemberError,
    UnknownTokenError,
)
from accord.auth.members import Member, member_from_row
from accord.auth.scopes import SCOPES, role_scopes
from accord.store.database import Database
from accord.store.tables import api_tokens, members

PREFIX = "acc_"
TOKEN = re.compile(r"acc_[A-Za-z0-9_-]{43}")
MAX_NAME = 100
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at precision: at most one write a minute


def token_hash(token: str) -> str:
    """What the database keeps of a token (hex SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """Known scopes, deduplicated and sorted; ``ScopeError`` for none or an unknown one."""
    chosen = tuple(sorted(set(scopes)))
    if not chosen:
        raise ScopeError(f"name at least one scope: {', '.join(SCOPES)}")
    if unknown := [s for s in chosen if s not in SCOPES]:
        raise ScopeError(f"unknown scope {unknown[0]!r}; the scopes are {', '.join(SCOPES)}")
    return chosen


@dataclass(frozen=True)
class CreatedToken:
    """A new token: ``token`` is the only copy of the secret there will ever be."""

    id: int
    token: str = field(repr=False)
    scopes: tuple[str, ...]
    expires_at: datetime | None


@dataclass(frozen=True)
class TokenGrant:
    """What an authenticated token lets its bearer do."""

    member: Member
    scopes: frozenset[str]
    token_id: int
    expires_at: datetime | None = None  # so that a kept grant expires on time

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: everything but the secret, which is not kept."""

    id: int
    member_id: int
    username: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def status(self, now: datetime) -> str:
        """``revoked``, ``expired`` or ``active`` at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


TokenList = list[TokenInfo]  # spelled before TokenStore, whose ``list`` method shadows it


class TokenStore:
    """Make, authenticate, list and revoke API tokens."""

    def __init__(self, db: Database, *, now: Clock = system_clock) -> None:
        self.db = db
        self.now = now

    def create(
        self,
        member_id: int,
        name: str,
        scopes: Iterable[str],
        expires_at: datetime | None = None,
    ) -> CreatedToken:
        """Make a token for a member; the plaintext is in the result and nowhere else.

        Raises ``TokenRequestError`` (name, expiry), ``ScopeError`` / ``ScopeNotAllowed``,
        ``UnknownMemberError`` or ``MemberDisabledError``.
        """
        label = _check_name(name)
        chosen = check_scopes(scopes)
        now = now_utc(self.now)
        expires = None if expires_at is None else utc(expires_at)
        if expires is not None and expires <= now:
            raise TokenRequestError("the expiry time must be in the future")
        token = PREFIX + secrets.token_urlsafe(32)
        with self.db.write() as conn:
            row = conn.execute(sa.select(members).where(members.c.id == member_id)).first()
            if row is None:
                raise UnknownMemberError(f"no member with id {member_id}")
            member = member_from_row(row)
            if member.disabled:
                raise MemberDisabledError(f"member {member.username!r} is disabled")
            if beyond := [s for s in chosen if s not in role_scopes(member.role)]:
                raise ScopeNotAllowed(member.role, beyond)
            token_id = conn.execute(
                api_tokens.insert()
                .values(
                    member_id=member_id,
                    name=label,
                    token_hash=token_hash(token),
                    scopes=orjson.dumps(list(chosen)).decode(),
                    created_at=now,
                    expires_at=expires,
                )
                .returning(api_tokens.c.id)
            ).scalar_one()
        return CreatedToken(token_id, token, chosen, expires)

    def authenticate(self, token: str) -> TokenGrant | None:
        """The grant of a live token; ``None`` if unknown, revoked, expired, or its member
        is disabled (never saying which)."""
        if not isinstance(token, str) or not TOKEN.fullmatch(token):
            return None
        now = now_utc(self.now)
        query = (
            sa.select(
                api_tokens.c.id.label("token_id"),
                api_tokens.c.scopes,
                api_tokens.c.expires_at,
                api_tokens.c.revoked_at,
                api_tokens.c.last_used_at,
                members,
            )
            .join(members, members.c.id == api_tokens.c.member_id)
            .where(api_tokens.c.token_hash == token_hash(token))
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        if row is None or row.revoked_at is not None or row.disabled_at is not None:
            return None
        if row.expires_at is not None and aware(row.expires_at) <= now:
            return None
        if row.last_used_at is None or now - aware(row.last_used_at) >= TOUCH_EVERY:
            with self.db.write() as conn:
                conn.execute(
                    api_tokens.update()
                    .where(api_tokens.c.id == row.token_id)
                    .values(last_used_at=now)
                )
        member = member_from_row(row)
        return TokenGrant(
            member,
            frozenset(orjson.loads(row.scopes)) & member.scopes,
            row.token_id,
            None if row.expires_at is None else aware(row.expires_at),
        )

    def get(self, token_id: int) -> TokenInfo | None:
        found = self._select(api_tokens.c.id == token_id)
        return found[0] if found else None

    def list(self, member_id: int | None = None) -> TokenList:
        """Every token (of one member if given), oldest first; never the secrets."""
        return self._select(None if member_id is None else api_tokens.c.member_id == member_id)

    def revoke(self, token_id: int) -> TokenInfo:
        """Revoke for good (idempotent: the first revocation time stays)."""
        with self.db.write() as conn:
            conn.execute(
                api_tokens.update()
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now_utc(self.now))
            )
            grants.bump(self.db, conn)  # processes keeping this grant drop it now
        info = self.get(token_id)
        if info is None:
            raise UnknownTokenError(f"no API token with id {token_id}")
        return info

    def _select(self, condition: sa.ColumnElement[bool] | None) -> TokenList:
        query = (
            sa.select(
                *(c for c in api_tokens.c if c.name != "token_hash"),
                members.c.username,
            )
            .join(members, members.c.id == api_tokens.c.member_id)
            .order_by(api_tokens.c.id)
        )
        if condition is not None:
            query = query.where(condition)
        with self.db.read() as conn:
            return [_info(row) for row in conn.execute(query).mappings()]


def _check_name(name: str) -> str:
    label = unicodedata.normalize("NFC", name.strip())
    if not label or len(label) > MAX_NAME:
        raise TokenRequestError(f"a token name needs 1 to {MAX_NAME} characters")
    if any(unicodedata.category(c).startswith("C") for c in label):
        raise TokenRequestError("a token name must not contain control characters")
    return label


def _info(row: Any) -> TokenInfo:
    def when(value: datetime | None) -> datetime | None:
        return None if value is None else aware(value)

    return TokenInfo(
        id=row["id"],
        member_id=row["member_id"],
        username=row["username"],
        name=row["name"],
        scopes=tuple(orjson.loads(row["scopes"])),
        created_at=aware(row["created_at"]),
        expires_at=when(row["expires_at"]),
        revoked_at=when(row["revoked_at"]),
        last_used_at=when(row["last_used_at"]),
    )
