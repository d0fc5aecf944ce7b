"""A migrated store on each backend, a clock the tests move, and a queue on both."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from accord.jobs.queue import JobQueue
from accord.store import migrate
from accord.store.database import Database

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Clock:
    """Stands still until a test moves it."""

    def __init__(self, start: datetime = START) -> None:
        self.moment = start

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> datetime:
        self.moment += timedelta(**delta)
        return self.moment


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
