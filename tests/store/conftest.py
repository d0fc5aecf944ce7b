"""A migrated, empty store on each backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from accord.store import migrate
from accord.store.cases import CaseStore
from accord.store.database import Database


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def store(db: Database) -> CaseStore:
    return CaseStore(db)
