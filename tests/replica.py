"""A real PostgreSQL streaming replica of the test server, for the read-replica tests.

``postgres_replica`` (one per test process) copies the primary with ``pg_basebackup -R``
into a temporary directory and starts it as a hot standby on a free port of 127.0.0.1,
as the server's own user when the tests run as root. ``tools/test-services.sh`` makes the
local primary accept replication from loopback and installs the server programs of its
version. ``ACCORD_TEST_REPLICA_URL`` points at a standby of the primary the tests use
instead (its user must be a superuser: the tests pause its replay). A replica that
cannot be made fails the tests that need it, with what to do; they never skip.

Waiting for the replica to replay what the primary wrote polls it, with a deadline; no
test measures how long anything takes.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from accord.store.database import Database

CATCH_UP_SECONDS = 60.0  # the longest the replica may replay nothing while behind
CATCH_UP_LIMIT = 600.0  # and the longest a catch-up may take in all (a loaded machine)
SERVER_USER = "postgres"
# Settings a hot standby needs at least as high as its primary's.
AT_LEAST_PRIMARY = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)
# Settings taken as they are on the primary, so that a query is planned and cached alike
# on both (benchmarks/replica.py compares them).
LIKE_PRIMARY = ("shared_buffers", "work_mem", "effective_cache_size", "random_page_cost")


def _fail(message: str) -> None:
    pytest.fail(message, pytrace=False)


def _bindir(major: int) -> Path:
    """The server programs of the primary's major version (pg_basebackup and pg_ctl must
    match it)."""
    given = os.environ.get("ACCORD_TEST_PG_BINDIR")
    candidates = [Path(given)] if given else []
    candidates.append(Path(f"/usr/lib/postgresql/{major}/bin"))
    found = shutil.which("pg_config")
    if found:
        out = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    for directory in candidates:
        if (directory / "pg_basebackup").exists() and (directory / "pg_ctl").exists():
            return directory
    _fail(
        f"no PostgreSQL {major} server programs (pg_basebackup, pg_ctl) found in "
        f"{', '.join(map(str, candidates))}: run `tools/test-services.sh` as root or "
        f"`apt-get install postgresql-{major}`, or set ACCORD_TEST_PG_BINDIR"
    )
    raise AssertionError  # not reached


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Replica:
    """A hot standby of the test server: URLs on it, and its replay paused or resumed."""

    primary_url: str  # the admin URL of the primary (a superuser)
    url: str  # the same user on the standby, database 'postgres'
    directory: Path | None = None  # None: not started here (ACCORD_TEST_REPLICA_URL)
    bindir: Path | None = None
    as_user: str | None = None
    config: Path | None = None
    running: bool = True
    slot: str | None = None  # its replication slot on the primary (``start_replica``)

    def url_for(self, primary_database_url: str) -> str:
        """The URL of the same database on the replica."""
        own = sa.make_url(self.url)
        database = sa.make_url(primary_database_url).database
        return own.set(database=database).render_as_string(hide_password=False)

    def _scalar(self, url: str, sql: str) -> object:
        return self._row(url, sql)[0]

    def _row(self, url: str, sql: str) -> tuple[object, ...]:
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                return tuple(conn.exec_driver_sql(sql).one())
        finally:
            engine.dispose()

    def catch_up(self) -> None:
        """Wait until the replica has replayed everything the primary wrote so far."""
        position = self._scalar(self.primary_url, "SELECT CAST(pg_current_wal_lsn() AS text)")
        started = time.monotonic()
        stalled, seen = started + CATCH_UP_SECONDS, None
        check = (
            f"SELECT pg_last_wal_replay_lsn() >= CAST('{position}' AS pg_lsn), "
            "CAST(pg_last_wal_replay_lsn() AS text)"
        )
        while True:
            done, at = self._row(self.url, check)
            if done:
                return
            now = time.monotonic()
            if at != seen:  # the whole cluster's WAL replays here, other tests' too: wait
                stalled, seen = now + CATCH_UP_SECONDS, at
            if now > stalled or now > started + CATCH_UP_LIMIT:
                _fail(f"the replica did not replay up to {position}; it is at {self._state()}")
            time.sleep(0.02)

    def _state(self) -> str:
        """Where the replica stands and what holds it up, for a failure's message."""
        found = [
            str(
                self._scalar(
                    self.url,
                    "SELECT concat_ws(' ', pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), "
                    "pg_get_wal_replay_pause_state())",
                )
            )
        ]
        engine = sa.create_engine(
            self.url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        try:
            with engine.connect() as conn:
                found += [
                    " ".join(map(str, row))
                    for row in conn.exec_driver_sql(
                        "SELECT pid, datname, state, wait_event_type, wait_event, "
                        "left(query, 80) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                    )
                ]
        finally:
            engine.dispose()
        if self.directory is not None:
            log = (self.directory / "server.log").read_text(errors="replace").splitlines()
            found += ["server.log:", *log[-15:]]
        return "\n".join(found)

    def pause(self) -> None:
        """Stop replaying (WAL still arrives): the replica stands still at what it has."""
        self._scalar(self.url, "SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while self._scalar(self.url, "SELECT pg_get_wal_replay_pause_state()") != "paused":
            if time.monotonic() > deadline:
                _fail("the replica did not pause its replay")
            time.sleep(0.02)

    def resume(self) -> None:
        self._scalar(self.url, "SELECT pg_wal_replay_resume()")

    def _ctl(self, *args: str) -> None:
        assert self.directory is not None and self.bindir is not None
        log = self.directory / "server.log"
        _run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                "-l",
                str(log),
                *args,
            ],
            self.as_user,
            what=f"pg_ctl {args[-1]} (its log: {log})",
        )

    def stop(self) -> None:
        """Stop the server (a replica out of reach); ``start`` brings it back."""
        if self.directory is None:
            _fail("a replica given by ACCORD_TEST_REPLICA_URL is not stopped by the tests")
        self._ctl("-m", "fast", "-w", "stop")
        self.running = False

    def start(self) -> None:
        options = ["-o", f"-c config_file={self.config}"] if self.config else []
        self._ctl(*options, "-w", "-t", "120", "start")
        self.running = True


def _run(command: Sequence[str], as_user: str | None, *, what: str, attempts: int = 1) -> None:
    """Run ``command`` (as ``as_user`` when given), up to ``attempts`` times; fail the
    test loudly if it never succeeds."""
    full = ["runuser", "-u", as_user, "--", *command] if as_user else list(command)
    for _ in range(attempts):
        done = subprocess.run(full, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return
    _fail(f"{what} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")


SLOT_PREFIX = "accord_test_replica_"


def _admin(primary_url: str, sql: str, **params: object) -> None:
    engine = sa.create_engine(primary_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def _drop_stale_slots(primary_url: str) -> None:
    """Drop the slots of test replicas whose test process is gone (a run that was killed
    before it could drop its own): an unused slot keeps the primary's WAL forever."""
    engine = sa.create_engine(primary_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            names = conn.execute(
                sa.text(
                    "SELECT slot_name FROM pg_replication_slots "
                    "WHERE NOT active AND slot_name LIKE :prefix"
                ),
                {"prefix": SLOT_PREFIX + "%"},
            ).scalars()
            for name in list(names):
                pid = int(name[len(SLOT_PREFIX) :].split("_")[0] or 0)
                try:
                    os.kill(pid, 0)
                    continue  # its process still runs: its replica may only be stopped
                except ProcessLookupError:
                    pass
                except PermissionError:
                    continue
                conn.execute(sa.text("SELECT pg_drop_replication_slot(:n)"), {"n": name})
    finally:
        engine.dispose()


def _drop_slot(primary_url: str, slot: str) -> None:
    """Drop ``slot`` once its replica has let go of it (a stopped standby's walsender may
    take a moment to end)."""
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while True:
        try:
            _admin(
                primary_url,
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = :slot",
                slot=slot,
            )
            return
        except sa.exc.OperationalError:  # still active
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _settings(primary_url: str) -> dict[str, str]:
    engine = sa.create_engine(primary_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return {
                name: str(conn.exec_driver_sql(f"SHOW {name}").scalar())
                for name in ("server_version_num", *AT_LEAST_PRIMARY, *LIKE_PRIMARY)
            }
    finally:
        engine.dispose()


def start_replica(primary_url: str) -> Replica:
    """Copy the primary with ``pg_basebackup -R`` and start it as a hot standby on a free
    loopback port; ``stop_replica`` removes it."""
    primary = sa.make_url(primary_url)
    settings = _settings(primary_url)
    major = int(settings["server_version_num"]) // 10000
    bindir = _bindir(major)
    as_user = SERVER_USER if os.geteuid() == 0 else None
    directory = Path(tempfile.mkdtemp(prefix="accord-replica-"))
    data = directory / "data"
    if as_user:
        account = pwd.getpwnam(as_user)
        os.chown(directory, account.pw_uid, account.pw_gid)
    port = _free_port()
    config = directory / "replica.conf"
    # A slot reserved before the copy: the primary keeps every WAL segment the replica has
    # not received, however far behind it falls (other tests make WAL fast, and their
    # checkpoints recycle it), and no checkpoint can remove what the copy still needs.
    _drop_stale_slots(primary_url)
    slot = f"{SLOT_PREFIX}{os.getpid()}_{port}"
    _admin(primary_url, "SELECT pg_create_physical_replication_slot(:slot, true)", slot=slot)
    replica = Replica(
        primary_url=primary_url,
        url=primary.set(host="127.0.0.1", port=port, database="postgres").render_as_string(
            hide_password=False
        ),
        directory=directory,
        bindir=bindir,
        as_user=as_user,
        config=config,
        running=False,
        slot=slot,
    )
    try:
        _run(
            [
                str(bindir / "pg_basebackup"),
                "-h",
                primary.host or "127.0.0.1",
                "-p",
                str(primary.port or 5432),
                "-U",
                primary.username or SERVER_USER,
                "-D",
                str(data),
                "-R",  # standby.signal, primary_conninfo and primary_slot_name: a replica
                "-S",
                slot,
                "-X",
                "stream",
                "-c",
                "fast",
            ],
            as_user,
            what=f"pg_basebackup from {primary.host}:{primary.port} (tools/test-services.sh "
            "makes the local primary accept replication from loopback)",
            attempts=3,  # the server's other users may end its connections (a restart, a test)
        )
        lines = [
            "listen_addresses = '127.0.0.1'",
            f"port = {port}",
            f"unix_socket_directories = '{directory}'",
            "hot_standby = on",
            "hot_standby_feedback = on",
            "fsync = off",  # a test copy: nothing here needs to survive a power cut
            f"hba_file = '{directory / 'pg_hba.conf'}'",
            f"ident_file = '{directory / 'pg_ident.conf'}'",
            *(f"{name} = '{settings[name]}'" for name in (*AT_LEAST_PRIMARY, *LIKE_PRIMARY)),
        ]
        config.write_text("\n".join(lines) + "\n")
        (directory / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        )
        (directory / "pg_ident.conf").write_text("")
        for path in (config, directory / "pg_hba.conf", directory / "pg_ident.conf"):
            if as_user:
                account = pwd.getpwnam(as_user)
                os.chown(path, account.pw_uid, account.pw_gid)
        # The copy's own postgresql.conf (if the primary keeps one in its data directory)
        # names the primary's port: this one replaces it.
        (data / "postgresql.conf").unlink(missing_ok=True)
        replica.start()
    except BaseException:
        stop_replica(replica)  # its files, and the slot, which would keep WAL forever
        raise
    return replica


def stop_replica(replica: Replica) -> None:
    """Stop a replica ``start_replica`` made, remove its files and drop its slot."""
    if replica.directory is None:
        return
    try:
        if replica.running:
            replica._ctl("-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(replica.directory, ignore_errors=True)
        if replica.slot is not None:
            _drop_slot(replica.primary_url, replica.slot)


@pytest.fixture(scope="session")
def postgres_replica(postgres_admin_url: str) -> Iterator[Replica]:
    """A hot standby of the test server (one per test process), or the one
    ``ACCORD_TEST_REPLICA_URL`` names."""
    given = os.environ.get("ACCORD_TEST_REPLICA_URL")
    if given:
        replica = Replica(primary_url=postgres_admin_url, url=given)
        if not replica._scalar(given, "SELECT pg_is_in_recovery()"):
            _fail(f"ACCORD_TEST_REPLICA_URL ({given}) is not a standby")
        yield replica
        return
    replica = start_replica(postgres_admin_url)
    try:
        yield replica
    finally:
        stop_replica(replica)


@dataclass(frozen=True)
class Replicated:
    """One test's database on the primary and the same database on the replica."""

    url: str
    read_url: str
    replica: Replica


@pytest.fixture
def replicated(
    postgres_replica: Replica, postgres_admin_url: str, postgres_template: str
) -> Iterator[Replicated]:
    """A migrated, empty PostgreSQL database of this test's own, already on the replica;
    the replica replays again when the test ends, however it left it."""
    name = f"accord_r_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    url = sa.make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
        postgres_replica.catch_up()
        yield Replicated(url, postgres_replica.url_for(url), postgres_replica)
    finally:
        if not postgres_replica.running:
            postgres_replica.start()
        postgres_replica.resume()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def replicated_database(given: Replicated, **options: float) -> Database:
    """The node's ``Database`` on the primary with the replica as its read URL."""
    return Database(given.url, read_url=given.read_url, **options)
