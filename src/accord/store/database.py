"""Engines and the one place that knows SQLite from PostgreSQL.

SQLite runs in WAL mode; write transactions start with ``BEGIN IMMEDIATE`` so two
writers never deadlock upgrading read locks, and reads use a separate engine that
never takes the write lock. On PostgreSQL one engine serves both and a case row is
locked with ``SELECT … FOR UPDATE``.

Nothing waits on the database without a limit (``Timeouts``, from ``ACCORD_DB_*``
variables): PostgreSQL gets a connect timeout, a ``statement_timeout`` and a
``lock_timeout``, and the client stops waiting for a server that does not answer at all
(frozen, or a network that drops packets) a little after the statement timeout; SQLite's
busy timeout is shorter than any HTTP client waits for an answer. What a node
acknowledges is on disk first: SQLite runs with ``synchronous=FULL`` (PostgreSQL's
commits are fsynced by the server), and ``write()`` records, for the request it serves,
whether a commit went through or failed mid-way (``track_writes``), so an error answer
can say honestly whether anything was changed.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.expression import Insert

from accord.ops.config import env_seconds

if TYPE_CHECKING:
    from accord.store.secrets import Secrets

ENV_URL = "ACCORD_DATABASE_URL"
APPEND_LOCK = 0x4143434F5244  # "ACCORD": the advisory lock that orders event appends
ENV_CONNECT_TIMEOUT = "ACCORD_DB_CONNECT_TIMEOUT"
ENV_STATEMENT_TIMEOUT = "ACCORD_DB_STATEMENT_TIMEOUT"
ENV_LOCK_TIMEOUT = "ACCORD_DB_LOCK_TIMEOUT"
ENV_BUSY_TIMEOUT = "ACCORD_DB_BUSY_TIMEOUT"
CLIENT_GRACE = 2.0  # the client waits this much longer than statement_timeout


@dataclass(frozen=True)
class Timeouts:
    """How long anything may wait on the database, in seconds.

    The defaults keep a request that meets a stuck database well inside what HTTP clients
    wait for an answer: Accord's own peers wait 30 s (``federation.client.TIMEOUT``), the
    messaging providers that call its webhooks typically 10 to 20 s, and ``accord serve``
    (uvicorn) has no request timeout of its own. ``statement`` (10 s) bounds one statement
    on PostgreSQL (``statement_timeout``; the client gives up ``CLIENT_GRACE`` later if the
    server says nothing at all); ``lock`` (5 s) one wait for a row lock
    (``lock_timeout``); ``connect`` (5 s) opening a connection, and waiting for a free one
    in the pool; ``busy`` (5 s) how long SQLite waits for the write lock before "database
    is locked" — well under those HTTP timeouts, where it was 30 s before. 0 turns a
    limit off (``statement``, ``lock``) — for maintenance, not for a serving node.
    """

    connect: float = 5.0
    statement: float = 10.0
    lock: float = 5.0
    busy: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Timeouts:
        """``$ACCORD_DB_CONNECT_TIMEOUT``, ``…_STATEMENT_TIMEOUT``, ``…_LOCK_TIMEOUT``,
        ``…_BUSY_TIMEOUT`` (seconds), each defaulting to the value above."""
        return cls(
            connect=env_seconds(ENV_CONNECT_TIMEOUT, cls.connect, environ, minimum=1),
            statement=env_seconds(ENV_STATEMENT_TIMEOUT, cls.statement, environ),
            lock=env_seconds(ENV_LOCK_TIMEOUT, cls.lock, environ),
            busy=env_seconds(ENV_BUSY_TIMEOUT, cls.busy, environ),
        )

    @property
    def client(self) -> float | None:
        """How long the client waits for any one answer from PostgreSQL (None: forever)."""
        if not self.statement:
            return None
        return max(self.statement, self.lock) + CLIENT_GRACE


@dataclass
class WriteOutcome:
    """What the write transactions of one request did (see ``track_writes``)."""

    committed: int = 0
    uncertain: int = 0  # commits that failed on the way: they may or may not have happened

    @property
    def nothing_changed(self) -> bool:
        return not self.committed and not self.uncertain


_outcome: ContextVar[WriteOutcome | None] = ContextVar("accord_write_outcome", default=None)


def track_writes() -> tuple[WriteOutcome, Token[WriteOutcome | None]]:
    """Start recording the commits of ``Database.write`` in this context (a request);
    pass the token to ``_outcome.reset`` via ``stop_tracking`` when it ends."""
    outcome = WriteOutcome()
    return outcome, _outcome.set(outcome)


def stop_tracking(token: Token[WriteOutcome | None]) -> None:
    _outcome.reset(token)


def tracked_writes() -> WriteOutcome | None:
    """The outcome being recorded in this context, if any."""
    return _outcome.get()


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

    def __init__(self, url: str, *, echo: bool = False, timeouts: Timeouts | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.timeouts = timeouts or Timeouts.from_env()
        self._lock_queries: dict[str, sa.Select[Any]] = {}
        self._ignoring: dict[str, Insert] = {}
        self._ping_lock = threading.Lock()
        self._ping: Future[bool] | None = None
        self.secrets: Secrets | None = None
        """The node's secrets key (``accord.store.secrets``), set by ``Node.open``."""
        if self.is_sqlite:
            self.reader = _sqlite_engine(url, self.timeouts, immediate=False, echo=echo)
            self.writer = _sqlite_engine(url, self.timeouts, immediate=True, echo=echo)
        else:
            self.reader = self.writer = _postgres_engine(url, self.timeouts, echo=echo)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (committed on success, rolled back on any error).

        A commit that fails is counted as uncertain in the request's ``WriteOutcome``:
        the server may have committed before the answer was lost."""
        with self.writer.connect() as conn:
            transaction = conn.begin()
            try:
                yield conn
            except BaseException:
                if transaction.is_active:
                    transaction.rollback()
                raise
            if not transaction.is_active:  # the caller rolled back on purpose
                return
            outcome = _outcome.get()
            try:
                transaction.commit()
            except BaseException:
                if outcome is not None:
                    outcome.uncertain += 1
                raise
            if outcome is not None:
                outcome.committed += 1

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.reader.connect() as conn:
            yield conn

    def lock_case(self, conn: Connection, table: sa.Table, case_id: str) -> Any:
        """Read a case row for update, serialising writers of the same case.

        On PostgreSQL the append lock (``serialise_appends``) comes first: a case write
        usually appends events, and taking that lock before any row lock gives every
        writer one lock order."""
        self.serialise_appends(conn)
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

    def ping(self, deadline: float = 1.0) -> bool:
        """Whether the database answers ``SELECT 1`` within ``deadline`` seconds.

        The check runs in its own thread, so a database that hangs costs the caller only
        the deadline; while one check is still waiting, later callers wait on it rather
        than start another (a frozen database never piles up threads)."""
        with self._ping_lock:
            pending = self._ping
            if pending is None or pending.done():
                pending = self._ping = Future()
                threading.Thread(
                    target=self._run_ping, args=(pending,), name="accord-db-ping", daemon=True
                ).start()
        try:
            return pending.result(timeout=deadline)
        except FutureTimeout:
            return False

    def _run_ping(self, pending: Future[bool]) -> None:
        try:
            with self.read() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception:  # any failure means "not ready"
            pending.set_result(False)
        else:
            pending.set_result(True)

    def serialise_appends(self, conn: Connection) -> None:
        """Make event positions commit in the order they were drawn.

        Followers of the log (``accord.jobs.follow``) read ``events.pos`` past their mark.
        On PostgreSQL two transactions can draw positions 7 and 8 and commit 8 first: a
        follower would pass 7 and never see it. A transaction-scoped advisory lock taken
        before the insert orders the appends of all cases (each is a few milliseconds);
        SQLite's ``BEGIN IMMEDIATE`` already lets one writer in at a time.
        """
        if not self.is_sqlite:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({APPEND_LOCK})")

    def dispose(self) -> None:
        self.reader.dispose()
        if self.writer is not self.reader:
            self.writer.dispose()


@contextmanager
def unbounded(conn: Connection) -> Iterator[None]:
    """Lift the statement and lock timeouts for the rest of ``conn``'s transaction
    (migrations, which may rebuild large tables): ``SET LOCAL`` on the server, and no
    client-side limit. A no-op on SQLite."""
    if conn.dialect.name != "postgresql":
        yield
        return
    conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
    conn.exec_driver_sql("SET LOCAL lock_timeout = 0")
    raw: Any = conn.connection.dbapi_connection
    before = getattr(raw, "io_timeout", None)
    if before is not None:
        raw.io_timeout = None
    try:
        yield
    finally:
        if before is not None:
            raw.io_timeout = before


def _postgres_engine(url: str, timeouts: Timeouts, *, echo: bool) -> Engine:
    engine = sa.create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        pool_timeout=timeouts.connect,
    )
    settings = []
    if timeouts.statement:
        settings.append(f"-c statement_timeout={round(timeouts.statement * 1000)}")
    if timeouts.lock:
        settings.append(f"-c lock_timeout={round(timeouts.lock * 1000)}")

    @sa.event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        from accord.store._pgconn import BoundedConnection

        cparams.setdefault("connect_timeout", max(2, math.ceil(timeouts.connect)))
        if settings:  # after any options the URL gives, so these win
            cparams["options"] = " ".join([cparams.get("options", ""), *settings]).strip()
        conn = BoundedConnection.connect(*cargs, **cparams)
        conn.io_timeout = timeouts.client
        return conn

    return engine


def _sqlite_engine(url: str, timeouts: Timeouts, *, immediate: bool, echo: bool) -> Engine:
    path = sa.engine.make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    busy = timeouts.busy
    engine = sa.create_engine(url, echo=echo, connect_args={"timeout": busy})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let BEGIN below be the only transaction control
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk (the WAL fsynced) before it returns, so what the node
        # acknowledged survives a power cut; NORMAL only survives a killed process.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={round(busy * 1000)}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
