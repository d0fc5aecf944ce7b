"""``Database.reading``: several reads of one request on one connection (issue 23).

A case read checks the token's grant version and then reads the case; on PostgreSQL each
``read`` of its own paid a pool checkout with its ping, a ``BEGIN`` and a ``ROLLBACK``.
Inside ``reading`` they share one checkout, and nothing else changes: writes keep their
own connection and commit, and a read after a write in the same context sees it. SQLite,
where a checkout is cheap, keeps a connection a read.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa

from accord.store.database import Database
from accord.store.tables import node_settings


def checkouts(db: Database) -> list[int]:
    """Count the connections the reading engine hands out from now on."""
    seen: list[int] = []
    sa.event.listen(db.reader, "checkout", lambda *_: seen.append(1))
    return seen


def setting(db: Database, name: str) -> str | None:
    with db.read() as conn:
        return conn.execute(
            sa.select(node_settings.c.value).where(node_settings.c.name == name)
        ).scalar_one_or_none()


def test_reads_inside_share_one_connection(db: Database) -> None:
    seen = checkouts(db)
    setting(db, "a")
    setting(db, "b")
    assert len(seen) == 2
    with db.reading():
        with db.read() as first, db.read() as second:
            assert (first is second) == on_postgresql(db)
        setting(db, "a")
        with db.reading():  # nested: joins
            setting(db, "b")
    assert len(seen) == (3 if on_postgresql(db) else 6)


def on_postgresql(db: Database) -> bool:
    return db.reader.dialect.name == "postgresql"


def test_a_write_inside_is_its_own_and_is_seen(db: Database) -> None:
    with db.reading():
        assert setting(db, "motto") is None
        with db.write() as conn:
            conn.execute(sa.insert(node_settings).values(name="motto", value="agree"))
        assert setting(db, "motto") == "agree"
    assert setting(db, "motto") == "agree"


def test_other_threads_are_not_joined(db: Database) -> None:
    seen = checkouts(db)
    found: list[str | None] = []
    with db.reading():
        setting(db, "a")
        worker = threading.Thread(target=lambda: found.append(setting(db, "a")))
        worker.start()
        worker.join()
    assert found == [None]
    assert len(seen) == 2  # the thread's own read, and this one's


def test_another_database_is_not_joined(db: Database, database_url: str) -> None:
    other = Database(database_url)
    try:
        seen = checkouts(other)
        with db.reading():
            setting(other, "a")
            setting(other, "a")
        assert len(seen) == 2
    finally:
        other.dispose()
