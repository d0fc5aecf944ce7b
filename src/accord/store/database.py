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

A PostgreSQL node may also read from a streaming replica (``ACCORD_DATABASE_READ_URL``,
or ``read_url`` in the ``[database]`` table of ``accord.toml``): the reads that read much
and write nothing — the inbox's lists, search, dashboards and outcome queries, exports —
ask for ``read_replica()`` and get the replica when it is fresh enough, else the primary.
Writes, and every read inside a write transaction, stay on the primary; ``read()`` is
always the primary. A member sees their own writes: each write transaction made for a
member (``acting_for``) leaves a new mark in ``node_settings`` that replicates with it,
and a member's read goes to the replica only once the replica holds their latest mark.
Other readers may see the replica up to ``max_lag`` seconds behind the primary (5 by
default); beyond that, or with the replica out of reach, reads go to the primary and a
warning is logged.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
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

from accord.ops.config import ConfigError, env_seconds, file_settings

if TYPE_CHECKING:
    from accord.store.secrets import Secrets

ENV_URL = "ACCORD_DATABASE_URL"
ENV_READ_URL = "ACCORD_DATABASE_READ_URL"
ENV_READ_MAX_LAG = "ACCORD_DATABASE_READ_MAX_LAG"
SETTINGS_TABLE = "database"  # accord.toml's [database]: read_url, read_max_lag
READ_MAX_LAG = 5.0  # seconds a replica may be behind the primary and still serve reads
REPLICA_RETRY = 30.0  # seconds a replica that failed is left alone before it is tried again
MARK_PREFIX = "read.mark:"  # node_settings rows: each member's latest write, replicated
APPEND_LOCK = 0x4143434F5244  # "ACCORD": the advisory lock that orders event appends
ENV_CONNECT_TIMEOUT = "ACCORD_DB_CONNECT_TIMEOUT"
ENV_STATEMENT_TIMEOUT = "ACCORD_DB_STATEMENT_TIMEOUT"
ENV_LOCK_TIMEOUT = "ACCORD_DB_LOCK_TIMEOUT"
ENV_BUSY_TIMEOUT = "ACCORD_DB_BUSY_TIMEOUT"
CLIENT_GRACE = 2.0  # the client waits this much longer than statement_timeout

log = logging.getLogger("accord.store")


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
    member: str | None = None
    """Whom these writes are made for (``acting_for``): the key of read-your-writes."""

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


def acting_for(member: str) -> None:
    """Say whom this request (the context ``track_writes`` started) reads and writes for,
    such as ``"member:12"``: its writes leave that member's mark and its replica reads
    wait for it (``Database.read_replica``). Outside a tracked context, starts one."""
    outcome = _outcome.get()
    if outcome is None:
        outcome, _ = track_writes()
    outcome.member = member


_writing: ContextVar[int] = ContextVar("accord_writing", default=0)


@dataclass(frozen=True)
class ReplicaStatus:
    """The read replica as a scrape of ``/metrics`` finds it (``Database.replica_status``).

    ``state`` is ``serving`` (it may serve reads: a standby within ``read_max_lag``),
    ``behind`` (further behind than that: reads go to the primary), ``primary`` (it is not
    a standby) or ``down`` (out of reach). ``lag_seconds`` is 0 when it has replayed all
    the primary has written, else how long ago the last transaction it replayed
    committed; ``behind_bytes`` is the WAL it has yet to replay. Both None when unknown."""

    state: str
    lag_seconds: float | None = None
    behind_bytes: int | None = None


@dataclass
class _Batch:
    """A group commit in progress (``Database.batch``): its connection and what waits for
    its commit."""

    db: Database
    conn: Connection
    after: list[Callable[[], None]]


_batch: ContextVar[_Batch | None] = ContextVar("accord_batch", default=None)
_held: ContextVar[tuple[Database, Connection] | None] = ContextVar("accord_held", default=None)


def resolve_url(data_dir: Path, explicit: str | None = None) -> str:
    """``--database`` wins, then ``$ACCORD_DATABASE_URL``, then SQLite in the data dir."""
    if explicit:
        return _normalise(explicit)
    if env := os.environ.get(ENV_URL):
        return _normalise(env)
    return f"sqlite:///{(data_dir / 'accord.db').resolve()}"


def resolve_read_url(data_dir: Path, explicit: str | None = None) -> str | None:
    """The read replica's URL: ``--database-read``, then ``$ACCORD_DATABASE_READ_URL``,
    then ``read_url`` in ``[database]`` of the data directory's ``accord.toml``; None for
    none (every read on the primary)."""
    if explicit:
        return _normalise(explicit)
    if env := os.environ.get(ENV_READ_URL):
        return _normalise(env)
    found = file_settings(data_dir, SETTINGS_TABLE).get("read_url")
    if found is None or found == "":
        return None
    if not isinstance(found, str):
        raise ConfigError(f"{data_dir / 'accord.toml'}: [database] read_url must be a string")
    return _normalise(found)


def resolve_read_max_lag(data_dir: Path, environ: Mapping[str, str] = os.environ) -> float:
    """How far behind (seconds) the replica may be and still serve reads:
    ``$ACCORD_DATABASE_READ_MAX_LAG``, then ``read_max_lag`` in ``[database]`` of
    ``accord.toml``, then ``READ_MAX_LAG``."""
    if environ.get(ENV_READ_MAX_LAG, "").strip():
        return env_seconds(ENV_READ_MAX_LAG, READ_MAX_LAG, environ)
    found = file_settings(data_dir, SETTINGS_TABLE).get("read_max_lag")
    if found is None:
        return READ_MAX_LAG
    if isinstance(found, bool) or not isinstance(found, int | float) or not found >= 0:
        raise ConfigError(
            f"{data_dir / 'accord.toml'}: [database] read_max_lag must be a number of "
            f"seconds, at least 0, not {found!r}"
        )
    return float(found)


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
    """The engines for one database URL, and the read replica's when there is one."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        timeouts: Timeouts | None = None,
        read_url: str | None = None,
        read_max_lag: float = READ_MAX_LAG,
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.timeouts = timeouts or Timeouts.from_env()
        self.read_url = read_url
        self.read_max_lag = read_max_lag
        self.replica: Engine | None = None
        """The read replica's engine (``read_replica``); None: every read on the primary."""
        self._replica_down_until = 0.0
        self._replica_state = "unknown"  # what was last logged about it: not logged twice
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
        if read_url:
            if self.is_sqlite or not read_url.startswith("postgresql"):
                raise ConfigError(
                    f"a read replica ({redact(read_url)}) is for a PostgreSQL primary and a "
                    "PostgreSQL streaming replica of it; unset ACCORD_DATABASE_READ_URL "
                    "(or [database] read_url in accord.toml)"
                )
            self.replica = _postgres_engine(read_url, self.timeouts, echo=echo)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (committed on success, rolled back on any error).

        A commit that fails is counted as uncertain in the request's ``WriteOutcome``:
        the server may have committed before the answer was lost. With a read replica,
        the transaction also leaves a new mark of the member it is made for
        (``acting_for``), which their replica reads wait for. Inside ``batch`` it is a
        savepoint of the batch's transaction: an error undoes this write alone."""
        batch = self._batch()
        if batch is not None:
            with batch.conn.begin_nested():
                yield batch.conn
            return
        with self.writer.connect() as conn:
            transaction = conn.begin()
            writing = _writing.set(_writing.get() + 1)
            try:
                yield conn
                outcome = _outcome.get()
                if (
                    self.replica is not None
                    and transaction.is_active
                    and outcome is not None
                    and outcome.member
                ):
                    conn.execute(_MARK, {"name": _mark_name(outcome.member), "value": _token()})
            except BaseException:
                if transaction.is_active:
                    transaction.rollback()
                raise
            finally:
                _writing.reset(writing)
            if not transaction.is_active:  # the caller rolled back on purpose
                return
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
        """A read on the primary (SQLite: its reading engine); inside ``batch``, on the
        batch's connection, which sees what the batch wrote so far."""
        batch = self._batch()
        if batch is not None:
            yield batch.conn
            return
        held = _held.get()
        if held is not None and held[0] is self:
            yield held[1]
            return
        with self.reader.connect() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Every ``read`` on the primary made in this context (this thread, this
        database) shares one connection: one checkout from the pool, one transaction.

        For a request made of several small reads, such as a case read (the token's grant
        version, then the case): on PostgreSQL each ``read`` of its own costs a pool
        checkout with its ping, a ``BEGIN`` and a ``ROLLBACK``, more than a primary-key
        read itself. Each statement still sees what was committed before it began (READ
        COMMITTED), as separate reads did; writes are untouched (their own connection). A
        ``reading`` inside a ``batch`` or another ``reading`` joins it. On SQLite it
        changes nothing: a checkout there is cheap, and a held connection would keep one
        snapshot, hiding this thread's own writes from its next read."""
        held = _held.get()
        if (
            self.reader.dialect.name != "postgresql"
            or self._batch() is not None
            or (held is not None and held[0] is self)
        ):
            yield
            return
        with self.reader.connect() as conn:
            token = _held.set((self, conn))
            try:
                yield
            finally:
                _held.reset(token)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for a burst of writes: a group commit.

        Mail arriving together (an SMTP listener's concurrent sessions, an IMAP fetch) is
        stored in one transaction, so one commit — one fsync of the log — carries them all
        instead of one each. Every ``write`` made in this context (this thread, this
        database) is a savepoint of the batch, so a write that fails undoes itself and
        leaves the others; every ``read`` uses the batch's connection and sees them. The
        batch commits when the context ends, or rolls back as a whole when it raises:
        nothing inside is durable, nor may be acknowledged, before then. ``after_commit``
        holds what must wait for the commit. A batch inside a batch joins it."""
        if self._batch() is not None:
            yield
            return
        after: list[Callable[[], None]] = []
        with self.write() as conn:
            token = _batch.set(_Batch(self, conn, after))
            try:
                yield
            finally:
                _batch.reset(token)
        for then in after:
            then()

    def after_commit(self, then: Callable[[], None]) -> None:
        """Run ``then`` once what was written so far is committed: at once outside a
        ``batch``, when the batch commits inside one (never, if it rolls back)."""
        batch = self._batch()
        if batch is None:
            then()
        else:
            batch.after.append(then)

    def _batch(self) -> _Batch | None:
        batch = _batch.get()
        return batch if batch is not None and batch.db is self else None

    @contextmanager
    def read_replica(self) -> Iterator[Connection]:
        """A read that the read replica may serve: the inbox's lists, search, dashboards,
        outcome queries, exports.

        The replica serves it when the node has one, the caller is not inside a write
        transaction, the replica answers, is a standby, holds the latest mark of the
        member this request acts for (their own writes) and is at most ``read_max_lag``
        seconds behind the primary; otherwise the primary does (``read``). Every
        statement on the connection sees at least what that check saw. A replica that
        fails is logged once and left alone for ``REPLICA_RETRY`` seconds."""
        chosen = None
        if self.replica is not None and not _writing.get():
            chosen = self._replica_connection()
        if chosen is None:
            with self.read() as conn:
                yield conn
            return
        try:
            yield chosen
        finally:
            chosen.close()

    def _replica_connection(self) -> Connection | None:
        """A connection to the replica if it may serve this read now, else None."""
        assert self.replica is not None
        if time.monotonic() < self._replica_down_until:
            return None
        outcome = _outcome.get()
        name = _mark_name(outcome.member) if outcome is not None and outcome.member else ""
        with self.read() as conn:  # the primary's position first: the replica only lags it
            position, mark = conn.execute(_PRIMARY_POSITION, {"name": name}).one()
        try:
            replica = self.replica.connect()
        except sa.exc.SQLAlchemyError as exc:
            self._replica_failed(exc)
            return None
        try:
            standby, caught_up, age, replica_mark = replica.execute(
                _REPLICA_POSITION, {"position": position, "name": name}
            ).one()
        except sa.exc.SQLAlchemyError as exc:
            replica.close()
            self._replica_failed(exc)
            return None
        lag = None if age is None else max(0.0, float(age))
        state = self._judge(standby, caught_up, lag)
        if state == "primary":
            self._note(
                "primary",
                "the read replica %s is not a standby (pg_is_in_recovery() "
                "is false): reading from the primary",
            )
        elif state == "behind":
            self._note(
                "behind",
                "the read replica %s is more than %g s behind the primary: "
                "reading from the primary until it catches up",
                self.read_max_lag,
            )
        elif mark is not None and replica_mark != mark:
            replica.close()  # the member's latest write has not reached it yet: normal
            return None
        else:
            self._note("serving", "the read replica %s serves reads again")
            return replica
        replica.close()
        return None

    def _judge(self, standby: bool, caught_up: bool, lag: float | None) -> str:
        """Whether a replica may serve reads: the one rule for routing and for metrics."""
        if not standby:
            return "primary"
        if not caught_up and (lag is None or lag > self.read_max_lag):
            return "behind"
        return "serving"

    def replica_status(self) -> ReplicaStatus | None:
        """The replica's state now, for ``/metrics`` (None when the node has none).

        Asked afresh (the primary's position, then the replica's), whether or not a read
        went to it lately, except while a failed replica is left alone (``down``, without
        waiting for a connection to time out at every scrape); asking changes no
        routing."""
        if self.replica is None:
            return None
        if time.monotonic() < self._replica_down_until:
            return ReplicaStatus("down")
        with self.read() as conn:
            position = conn.execute(_PRIMARY_POSITION, {"name": ""}).one()[0]
        try:
            with self.replica.connect() as replica:
                standby, caught_up, age, behind = replica.execute(
                    _REPLICA_STATUS, {"position": position}
                ).one()
        except sa.exc.SQLAlchemyError:
            return ReplicaStatus("down")
        lag = 0.0 if caught_up else (None if age is None else max(0.0, float(age)))
        return ReplicaStatus(
            self._judge(bool(standby), bool(caught_up), lag),
            lag_seconds=lag if standby else None,
            behind_bytes=None if behind is None or not standby else max(0, int(behind)),
        )

    def _replica_failed(self, exc: Exception) -> None:
        self._replica_down_until = time.monotonic() + REPLICA_RETRY
        self._replica_state = "down"
        log.warning(
            "the read replica %s is out of reach (%s): reading from the primary, trying it "
            "again in %g s",
            redact(self.read_url or ""),
            type(getattr(exc, "orig", None) or exc).__name__,
            REPLICA_RETRY,
        )

    def _note(self, state: str, message: str, *args: Any) -> None:
        """Log a change of the replica's state once (a warning unless it is serving again)."""
        if state == self._replica_state:
            return
        before, self._replica_state = self._replica_state, state
        if state != "serving":
            log.warning(message, redact(self.read_url or ""), *args)
        elif before != "unknown":
            log.info(message, redact(self.read_url or ""), *args)

    def replica_retry_now(self) -> None:
        """Try the replica on the next read, even if it failed less than
        ``REPLICA_RETRY`` seconds ago (after it was repaired)."""
        self._replica_down_until = 0.0

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
        if self.replica is not None:
            self.replica.dispose()


# Read-your-writes (``Database.write``, ``Database.read_replica``): a member's mark is a
# random token rewritten by each write transaction made for them, so the replica holds
# the primary's value only once it has replayed their latest write.
_MARK = sa.text(
    "INSERT INTO node_settings (name, value) VALUES (:name, :value) "
    "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)
_PRIMARY_POSITION = sa.text(
    "SELECT CAST(pg_current_wal_lsn() AS text), "
    "(SELECT value FROM node_settings WHERE name = :name)"
)
# On the replica: whether it is a standby, whether it has replayed up to the primary's
# position just read, how long ago the last transaction it replayed committed (its lag
# when it has not), and the member's mark as it holds it.
_REPLICA_POSITION = sa.text(
    "SELECT pg_is_in_recovery(), "
    "COALESCE(pg_last_wal_replay_lsn() >= CAST(:position AS pg_lsn), false), "
    "EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())), "
    "(SELECT value FROM node_settings WHERE name = :name)"
)

# For /metrics: the same, and how many bytes of WAL it has yet to replay.
_REPLICA_STATUS = sa.text(
    "SELECT pg_is_in_recovery(), "
    "COALESCE(pg_last_wal_replay_lsn() >= CAST(:position AS pg_lsn), false), "
    "EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())), "
    "pg_wal_lsn_diff(CAST(:position AS pg_lsn), pg_last_wal_replay_lsn())"
)


def _mark_name(member: str) -> str:
    return (MARK_PREFIX + member)[:64]  # node_settings.name is 64 characters


def _token() -> str:
    return secrets.token_hex(8)


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
