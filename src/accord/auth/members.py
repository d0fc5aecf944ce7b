"""Members: the people acting for this node's party, with a role and a password.

Members are node-private and never replicated; events name them only by display name.
A member is never deleted, only disabled, so that what they did stays attributable;
disabling also ends their web sessions, and their API tokens stop working with it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.auth import version as grants
from accord.auth.clock import Clock, now_utc, system_clock
from accord.auth.errors import DuplicateMemberError, InvalidMemberError, UnknownMemberError
from accord.auth.passwords import Passwords
from accord.auth.scopes import ROLES, role_scopes
from accord.store.database import Database
from accord.store.tables import members, web_sessions

USERNAME = re.compile(r"[a-z0-9._-]{2,64}")
MAX_DISPLAY_NAME = 200


@dataclass(frozen=True)
class Member:
    id: int
    username: str
    display_name: str
    role: str
    disabled: bool

    @property
    def scopes(self) -> frozenset[str]:
        """What this member may do now: their role's scopes, none once disabled."""
        return frozenset() if self.disabled else role_scopes(self.role)


def normal_username(username: str) -> str:
    """Usernames are compared lowercase, so ``Tom.Baker`` and ``tom.baker`` are one."""
    return username.strip().lower()


def check_username(username: str) -> str:
    name = normal_username(username)
    if not USERNAME.fullmatch(name):
        raise InvalidMemberError(
            "username", "use 2 to 64 of a-z, 0-9, '.', '_' and '-' (for example tom.baker)"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidMemberError("role", f"must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def check_display_name(display_name: str) -> str:
    name = unicodedata.normalize("NFC", display_name.strip())
    if not name:
        raise InvalidMemberError("display_name", "must not be empty")
    if len(name) > MAX_DISPLAY_NAME:
        raise InvalidMemberError("display_name", f"must be at most {MAX_DISPLAY_NAME} characters")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidMemberError("display_name", "must not contain control characters")
    return name


def member_from_row(row: Any) -> Member:
    """A ``Member`` from a row holding the ``members`` columns (also used by joins)."""
    return Member(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=row.role,
        disabled=row.disabled_at is not None,
    )


class MemberStore:
    """Create, find, change and authenticate members."""

    def __init__(
        self, db: Database, *, passwords: Passwords | None = None, now: Clock = system_clock
    ) -> None:
        self.db = db
        self.passwords = passwords or Passwords()
        self.now = now

    def create(self, username: str, password: str, *, role: str, display_name: str) -> Member:
        """Add a member; raises ``InvalidMemberError``, ``PasswordPolicyError`` or
        ``DuplicateMemberError`` and then stores nothing."""
        name = check_username(username)
        check_role(role)
        shown = check_display_name(display_name)
        password_hash = self.passwords.hash(password)  # slow: outside the write lock
        try:
            with self.db.write() as conn:
                if _row(conn, members.c.username == name) is not None:
                    raise DuplicateMemberError(f"a member named {name!r} already exists")
                member_id = conn.execute(
                    members.insert()
                    .values(
                        username=name,
                        display_name=shown,
                        role=role,
                        password_hash=password_hash,
                        created_at=now_utc(self.now),
                    )
                    .returning(members.c.id)
                ).scalar_one()
        except sa.exc.IntegrityError as exc:  # a concurrent create won the race
            raise DuplicateMemberError(f"a member named {name!r} already exists") from exc
        return Member(member_id, name, shown, role, False)

    def get(self, member_id: int) -> Member | None:
        with self.db.read() as conn:
            row = _row(conn, members.c.id == member_id)
        return None if row is None else member_from_row(row)

    def by_username(self, username: str) -> Member | None:
        with self.db.read() as conn:
            row = _row(conn, members.c.username == normal_username(username))
        return None if row is None else member_from_row(row)

    def require(self, username: str) -> Member:
        """The member called ``username``, or ``UnknownMemberError``."""
        member = self.by_username(username)
        if member is None:
            raise UnknownMemberError(f"no member named {normal_username(username)!r}")
        return member

    def list(self, *, include_disabled: bool = True) -> list[Member]:
        query = sa.select(members).order_by(members.c.username)
        if not include_disabled:
            query = query.where(members.c.disabled_at.is_(None))
        with self.db.read() as conn:
            return [member_from_row(row) for row in conn.execute(query)]

    def set_role(self, member_id: int, role: str) -> Member:
        check_role(role)
        return self._update(member_id, role=role)

    def set_password(self, member_id: int, password: str) -> Member:
        """Replace the password (policy checked) and end the member's web sessions."""
        password_hash = self.passwords.hash(password)
        with self.db.write() as conn:
            conn.execute(web_sessions.delete().where(web_sessions.c.member_id == member_id))
            return self._update(member_id, conn=conn, password_hash=password_hash)

    def disable(self, member_id: int) -> Member:
        """Disable for good (idempotent): no login, no token, no session works any more."""
        with self.db.write() as conn:
            row = _row(conn, members.c.id == member_id)
            if row is None:
                raise UnknownMemberError(f"no member with id {member_id}")
            conn.execute(web_sessions.delete().where(web_sessions.c.member_id == member_id))
            if row.disabled_at is not None:
                return member_from_row(row)
            return self._update(member_id, conn=conn, disabled_at=now_utc(self.now))

    def authenticate(self, username: str, password: str) -> Member | None:
        """The member if the password is right and the member enabled, else ``None``.

        Takes about one argon2 verification whatever the outcome, so timing does not
        tell whether a username exists. Upgrades the stored hash when the parameters
        have changed since it was made.
        """
        name = normal_username(username)
        row = None
        if USERNAME.fullmatch(name):
            with self.db.read() as conn:
                row = _row(conn, members.c.username == name)
        if row is None:
            self.passwords.verify_dummy(password)
            return None
        if not self.passwords.verify(row.password_hash, password) or row.disabled_at is not None:
            return None
        if self.passwords.needs_rehash(row.password_hash):
            fresh = self.passwords.rehash(password)
            with self.db.write() as conn:  # only if nobody changed the password meanwhile
                conn.execute(
                    members.update()
                    .where(members.c.id == row.id, members.c.password_hash == row.password_hash)
                    .values(password_hash=fresh)
                )
        return member_from_row(row)

    def _update(self, member_id: int, *, conn: Connection | None = None, **values: Any) -> Member:
        if conn is None:
            with self.db.write() as own:
                return self._update(member_id, conn=own, **values)
        done = conn.execute(members.update().where(members.c.id == member_id).values(**values))
        if done.rowcount != 1:
            raise UnknownMemberError(f"no member with id {member_id}")
        grants.bump(self.db, conn)  # kept grants of this member are stale now
        row = _row(conn, members.c.id == member_id)
        return member_from_row(row)


def _row(conn: Connection, condition: sa.ColumnElement[bool]) -> Any:
    return conn.execute(sa.select(members).where(condition)).first()
