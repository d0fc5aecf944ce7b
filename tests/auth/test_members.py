"""Members: creation rules, roles, disabling and password authentication."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from accord.auth.clock import aware
from accord.auth.errors import (
    DuplicateMemberError,
    InvalidMemberError,
    PasswordPolicyError,
    UnknownMemberError,
)
from accord.auth.members import Member, MemberStore
from accord.auth.passwords import Passwords
from accord.auth.scopes import ROLE_SCOPES, SCOPES
from accord.store.database import Database
from accord.store.tables import members

from .helpers import PASSWORD, FakeClock


def test_create_and_find(member_store: MemberStore) -> None:
    made = member_store.create("Tom.Baker", PASSWORD, role="lead", display_name="  Tom Baker  ")
    assert made == Member(made.id, "tom.baker", "Tom Baker", "lead", False)
    assert member_store.get(made.id) == made
    assert member_store.by_username("TOM.BAKER") == made
    assert member_store.by_username("nobody") is None and member_store.get(999) is None
    assert member_store.list() == [made]
    assert made.scopes == ROLE_SCOPES["lead"]


def test_duplicate_usernames_are_refused_whatever_the_case(
    member_store: MemberStore, agent: Member
) -> None:
    with pytest.raises(DuplicateMemberError, match="already exists"):
        member_store.create("Tom.Baker", PASSWORD, role="admin", display_name="Other Tom")
    assert member_store.list() == [agent]


@pytest.mark.parametrize(
    ("username", "role", "display_name", "field"),
    [
        ("t", "agent", "Tom", "username"),
        ("tom baker", "agent", "Tom", "username"),
        ("tom@example.com", "agent", "Tom", "username"),
        ("x" * 65, "agent", "Tom", "username"),
        ("tom", "owner", "Tom", "role"),
        ("tom", "agent", "   ", "display_name"),
        ("tom", "agent", "Tom\x00Baker", "display_name"),
        ("tom", "agent", "T" * 201, "display_name"),
    ],
)
def test_invalid_fields_name_the_field(
    member_store: MemberStore, username: str, role: str, display_name: str, field: str
) -> None:
    with pytest.raises(InvalidMemberError) as caught:
        member_store.create(username, PASSWORD, role=role, display_name=display_name)
    assert caught.value.field == field
    assert member_store.list() == []


def test_weak_password_stores_nothing(member_store: MemberStore) -> None:
    with pytest.raises(PasswordPolicyError, match="12 characters"):
        member_store.create("tom", "tooshort", role="agent", display_name="Tom")
    assert member_store.list() == []


def test_authenticate(member_store: MemberStore, agent: Member) -> None:
    assert member_store.authenticate("tom.baker", PASSWORD) == agent
    assert member_store.authenticate("  Tom.Baker ", PASSWORD) == agent
    assert member_store.authenticate("tom.baker", PASSWORD + "!") is None
    assert member_store.authenticate("tom.baker", "") is None
    assert member_store.authenticate("nobody", PASSWORD) is None
    assert member_store.authenticate("not a valid name!", PASSWORD) is None


class CountingPasswords(Passwords):
    """Counts argon2 verifications, to show unknown users cost one too."""

    def __init__(self) -> None:
        super().__init__(PasswordHasher.from_parameters(CHEAPEST))
        self.verified = 0

    def verify(self, password_hash: str, password: str) -> bool:
        self.verified += 1
        return super().verify(password_hash, password)


def test_every_outcome_costs_one_verification(db: Database, clock: FakeClock) -> None:
    counting = CountingPasswords()
    store = MemberStore(db, passwords=counting, now=clock)
    agent = store.create("tom", PASSWORD, role="agent", display_name="Tom")
    for username, password in [("tom", PASSWORD), ("tom", "wrong"), ("ghost", PASSWORD)]:
        before = counting.verified
        store.authenticate(username, password)
        assert counting.verified == before + 1, (username, password)
    store.disable(agent.id)
    before = counting.verified
    assert store.authenticate("tom", PASSWORD) is None
    assert counting.verified == before + 1


def test_disabled_members_never_authenticate(
    member_store: MemberStore, agent: Member, clock: FakeClock
) -> None:
    disabled = member_store.disable(agent.id)
    assert disabled.disabled and disabled.scopes == frozenset()
    assert member_store.authenticate("tom.baker", PASSWORD) is None
    assert member_store.disable(agent.id) == disabled  # idempotent
    assert member_store.list(include_disabled=False) == []
    assert member_store.list() == [disabled]
    with pytest.raises(UnknownMemberError):
        member_store.disable(999)


def test_set_role_and_password(member_store: MemberStore, agent: Member) -> None:
    promoted = member_store.set_role(agent.id, "admin")
    assert promoted.role == "admin" and promoted.scopes == frozenset(SCOPES)
    with pytest.raises(InvalidMemberError):
        member_store.set_role(agent.id, "owner")
    with pytest.raises(UnknownMemberError):
        member_store.set_role(999, "lead")
    member_store.set_password(agent.id, "a whole new passphrase")
    assert member_store.authenticate("tom.baker", PASSWORD) is None
    assert member_store.authenticate("tom.baker", "a whole new passphrase") == promoted
    with pytest.raises(PasswordPolicyError):
        member_store.set_password(agent.id, "short")


def test_login_rehashes_when_the_parameters_changed(
    db: Database, member_store: MemberStore, agent: Member, clock: FakeClock
) -> None:
    def stored_hash() -> str:
        with db.read() as conn:
            return str(conn.execute(sa.select(members.c.password_hash)).scalar_one())

    old = stored_hash()
    assert "t=1" in old
    stronger = Passwords(PasswordHasher.from_parameters(replace(CHEAPEST, time_cost=2)))
    upgraded = MemberStore(db, passwords=stronger, now=clock)
    assert upgraded.authenticate("tom.baker", "wrong password") is None
    assert stored_hash() == old  # a failed login changes nothing
    assert upgraded.authenticate("tom.baker", PASSWORD) == agent
    new = stored_hash()
    assert new != old and "t=2" in new and not stronger.needs_rehash(new)
    assert upgraded.authenticate("tom.baker", PASSWORD) == agent
    assert stored_hash() == new  # no rehash when nothing changed


def test_created_at_is_stored_in_utc(db: Database, member_store: MemberStore) -> None:
    member_store.create("tom", PASSWORD, role="agent", display_name="Tom")
    with db.read() as conn:
        created = conn.execute(sa.select(members.c.created_at)).scalar_one()
    assert aware(created) == member_store.now()
