"""Web sessions for members: a random cookie token, stored only as its SHA-256.

A session ends at its absolute expiry (``ttl`` from login) or after ``idle`` without
use, whichever comes first; each use slides ``last_seen_at`` forward, written at most
once a minute so that reading pages does not mean a write per request. Every session
has its own CSRF token for the forms of the web pages. Disabling a member or changing
their password deletes their sessions (``MemberStore``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta
from typing import NamedTuple

import sqlalchemy as sa

from accord.auth.clock import Clock, aware, now_utc, system_clock
from accord.auth.errors import MemberDisabledError, UnknownMemberError
from accord.auth.members import Member, member_from_row
from accord.store.database import Database
from accord.store.tables import members, web_sessions

DEFAULT_TTL = timedelta(hours=12)  # one working day, then log in again
DEFAULT_IDLE = timedelta(hours=2)
TOUCH_EVERY = timedelta(minutes=1)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


class NewSession(NamedTuple):
    """The cookie value and the CSRF token of a new session (shown once)."""

    token: str
    csrf: str


class SessionGrant(NamedTuple):
    """Who a live session belongs to, and the CSRF token its forms must carry."""

    member: Member
    csrf: str


def csrf_matches(expected: str, given: str | None) -> bool:
    """Compare a submitted CSRF token in constant time."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """Create, look up, end and purge web sessions."""

    def __init__(
        self,
        db: Database,
        *,
        now: Clock = system_clock,
        idle: timedelta | None = DEFAULT_IDLE,
    ) -> None:
        self.db = db
        self.now = now
        self.idle = idle

    def create(self, member_id: int, ttl: timedelta = DEFAULT_TTL) -> NewSession:
        """Start a session for an enabled member (after a successful login)."""
        if ttl <= timedelta(0):
            raise ValueError("a session's ttl must be positive")
        now = now_utc(self.now)
        session = NewSession(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        with self.db.write() as conn:
            row = conn.execute(sa.select(members).where(members.c.id == member_id)).first()
            if row is None:
                raise UnknownMemberError(f"no member with id {member_id}")
            if row.disabled_at is not None:
                raise MemberDisabledError(f"member {row.username!r} is disabled")
            conn.execute(
                web_sessions.insert().values(
                    token_hash=_hash(session.token),
                    member_id=member_id,
                    created_at=now,
                    expires_at=now + ttl,
                    last_seen_at=now,
                    csrf_token=session.csrf,
                )
            )
        return session

    def lookup(self, token: str) -> SessionGrant | None:
        """The member and CSRF token of a live session, else ``None``."""
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            return None
        now = now_utc(self.now)
        query = (
            sa.select(
                web_sessions.c.token_hash,
                web_sessions.c.expires_at,
                web_sessions.c.last_seen_at,
                web_sessions.c.csrf_token,
                members,
            )
            .join(members, members.c.id == web_sessions.c.member_id)
            .where(web_sessions.c.token_hash == _hash(token))
        )
        with self.db.read() as conn:
            row = conn.execute(query).first()
        if row is None or row.disabled_at is not None or aware(row.expires_at) <= now:
            return None
        last_seen = aware(row.last_seen_at)
        if self.idle is not None and now - last_seen >= self.idle:
            return None
        if now - last_seen >= TOUCH_EVERY:
            with self.db.write() as conn:
                conn.execute(
                    web_sessions.update()
                    .where(web_sessions.c.token_hash == row.token_hash)
                    .values(last_seen_at=now)
                )
        return SessionGrant(member_from_row(row), row.csrf_token)

    def delete(self, token: str) -> bool:
        """Log out: end this session. ``False`` if there was none."""
        with self.db.write() as conn:
            done = conn.execute(
                web_sessions.delete().where(web_sessions.c.token_hash == _hash(token))
            )
        return done.rowcount > 0

    def purge_expired(self) -> int:
        """Delete sessions past their expiry or idle limit; returns how many."""
        now = now_utc(self.now)
        dead = web_sessions.c.expires_at <= now
        if self.idle is not None:
            dead = sa.or_(dead, web_sessions.c.last_seen_at <= now - self.idle)
        with self.db.write() as conn:
            return conn.execute(web_sessions.delete().where(dead)).rowcount
