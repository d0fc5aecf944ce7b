"""Engines and the one place that knows SQLite from PostgreSQL.

SQLite runs in WAL mode; write transactions start with ``BEGIN IMMEDIATE`` so two
writers never deadlock upgrading read locks, and reads use a separate engine that
never takes the write lock. On PostgreSQL one engine serves both and a case row is
locked with ``SELECT … FOR UPDATE``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.expression import Insert

ENV_URL = "ACCORD_DATABASE_URL"


def resolve_url(data_dir: Path, explicit: str | None = None) -> str:
    """``--database`` wins, then ``$ACCORD_DATABASE_URL``, then SQLite in the data dir."""
    if explicit:
        return _normalise(explicit)
    if env := os.environ.get(ENV_URL):
        return _normalise(env)
    return f"sqlite:///{(data_dir / 'accord.db').resolve()}"


def _normalise(url: str) -> str:
    """Accept the usual ``postgresql://`` spellings and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


class Database:
    """The engines for one database URL."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._lock_queries: dict[str, sa.Select[Any]] = {}
        self._ignoring: dict[str, Insert] = {}
        if self.is_sqlite:
            self.reader = _sqlite_engine(url, immediate=False, echo=echo)
            self.writer = _sqlite_engine(url, immediate=True, echo=echo)
        else:
            self.reader = self.writer = sa.create_engine(
                url, echo=echo, pool_pre_ping=True, pool_size=5, max_overflow=10
            )

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (committed on success, rolled back on any error)."""
        with self.writer.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.reader.connect() as conn:
            yield conn

    def lock_case(self, conn: Connection, table: sa.Table, case_id: str) -> Any:
        """Read a case row for update, serialising writers of the same case."""
        query = self._lock_queries.get(table.name)
        if query is None:  # built once per table: every write to a case runs it
            query = sa.select(table).where(table.c.case_id == sa.bindparam("lock_case_id"))
            if not self.is_sqlite:  # SQLite's BEGIN IMMEDIATE already holds the write lock
                query = query.with_for_update()
            self._lock_queries[table.name] = query
        return conn.execute(query, {"lock_case_id": case_id}).mappings().first()

    def insert_or_ignore(self, table: sa.Table) -> Insert:
        """An INSERT that skips rows whose key is already there.

        ``ON CONFLICT DO NOTHING`` on both backends: atomic against concurrent writers,
        and unlike SQLite's ``INSERT OR IGNORE`` it ignores only key conflicts. Add
        ``.returning(…)`` to learn whether the row went in: no row back means it was
        there (psycopg reports no usable rowcount for this statement).
        """
        made = self._ignoring.get(table.name)
        if made is None:
            dialect = sqlite if self.is_sqlite else postgresql
            made = self._ignoring[table.name] = dialect.insert(table).on_conflict_do_nothing()
        return made

    def dispose(self) -> None:
        self.reader.dispose()
        if self.writer is not self.reader:
            self.writer.dispose()


def _sqlite_engine(url: str, *, immediate: bool, echo: bool) -> Engine:
    path = sa.engine.make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, echo=echo, connect_args={"timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let BEGIN below be the only transaction control
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
