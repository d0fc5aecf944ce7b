"""A migrated store on each backend, a clock the tests move, and a queue on both."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from accord.jobs.queue import JobQueue
from accord.store import migrate
from accord.store.database import Database
from tests.clocks import FakeClock

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Clock(FakeClock):
    """``tests.clocks.FakeClock`` starting at this package's ``START``."""

    def __init__(self, start: datetime = START) -> None:
        super().__init__(start)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(db: Database, clock: Clock) -> JobQueue:
    return JobQueue(db, now=clock)
