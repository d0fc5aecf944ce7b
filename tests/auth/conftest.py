"""A migrated, empty node database on each backend, a clock tests move, cheap hashing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from accord.auth.members import Member, MemberStore
from accord.auth.passwords import Passwords
from accord.store import migrate
from accord.store.database import Database

from .helpers import PASSWORD, FakeClock


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def passwords() -> Passwords:
    """The cheapest argon2id parameters: correct, and fast enough for a test suite."""
    return Passwords(PasswordHasher.from_parameters(CHEAPEST))


@pytest.fixture
def member_store(db: Database, passwords: Passwords, clock: FakeClock) -> MemberStore:
    return MemberStore(db, passwords=passwords, now=clock)


@pytest.fixture
def agent(member_store: MemberStore) -> Member:
    return member_store.create("tom.baker", PASSWORD, role="agent", display_name="Tom Baker")


@pytest.fixture
def admin(member_store: MemberStore) -> Member:
    return member_store.create("ada", PASSWORD, role="admin", display_name="Ada Admin")
