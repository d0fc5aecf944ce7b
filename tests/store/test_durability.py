"""What a node acknowledges is on disk first: SQLite commits with ``synchronous=FULL``,
blobs are fsynced (file and directory) before their row commits, backups are owner-only;
and the database's timeouts are read from the environment and reach the server."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from accord.channels.blobs import node_blobs
from accord.node import Node
from accord.ops.backup import backup
from accord.ops.config import ConfigError
from accord.store import database
from accord.store.database import Database, Timeouts
from accord.wiring import Services
from tests.clocks import START, FakeClock, cheap_passwords


def test_sqlite_commits_are_fsynced_and_wait_less_than_http_clients(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'accord.db'}", timeouts=Timeouts(busy=4))
    try:
        with db.write() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 4000
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    finally:
        db.dispose()


def test_a_nodes_write_engine_is_full(tmp_path: Path) -> None:
    node = Node.init(tmp_path / "n", name="Northwind", database=f"sqlite:///{tmp_path / 'n.db'}")
    try:
        with node.db.write() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
        assert node.db.timeouts.busy == Timeouts().busy < 10  # under any HTTP timeout
    finally:
        node.close()


def test_blobs_are_fsynced_file_and_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    store = node_blobs(tmp_path)
    digest = store.put(b"Received: by mx.example\r\n\r\nHello")
    assert store.get(digest).startswith(b"Received")
    # the parents of the three new directories (blobs/, ab/, cd/), the file, its directory
    assert len(synced) == 5
    store.put(b"Received: by mx.example\r\n\r\nHello")
    assert len(synced) == 5  # already there: nothing to write
    same_shard = next(
        data
        for n in range(2_000_000)
        if store.path(hashlib.sha256(data := f"mail {n}".encode()).hexdigest()).parent
        == store.path(digest).parent
    )
    store.put(same_shard)
    assert len(synced) == 7  # a known directory: the file and the rename only


def test_the_mail_channel_stores_durable_blobs_on_sqlite(tmp_path: Path) -> None:
    node = Node.init(tmp_path / "n", name="Northwind", database=f"sqlite:///{tmp_path / 'n.db'}")
    services = Services.build(node, now=FakeClock(START), passwords=cheap_passwords())
    try:
        assert node_blobs(node.data_dir).fsync
        assert services.mail.blobs.fsync
    finally:
        services.close()
        node.close()


def test_a_backup_and_its_partial_file_are_owner_only(tmp_path: Path) -> None:
    node = Node.init(tmp_path / "n", name="Northwind", database=f"sqlite:///{tmp_path / 'n.db'}")
    target = tmp_path / "out" / "northwind.tar.gz"
    partial_modes: list[int] = []

    def progress(_what: str, _count: int) -> None:
        partial = target.with_name(f".{target.name}.partial")
        partial_modes.append(stat.S_IMODE(partial.stat().st_mode))

    before = os.umask(0o022)
    try:
        backup(node, target, progress)
    finally:
        os.umask(before)
        node.close()
    assert partial_modes and set(partial_modes) == {0o600}
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not target.with_name(f".{target.name}.partial").exists()


def test_timeouts_come_from_the_environment() -> None:
    environ = {
        database.ENV_STATEMENT_TIMEOUT: "2.5",
        database.ENV_LOCK_TIMEOUT: "0",
        database.ENV_CONNECT_TIMEOUT: "",
    }
    timeouts = Timeouts.from_env(environ)
    assert timeouts == Timeouts(connect=5, statement=2.5, lock=0, busy=5)
    assert timeouts.client == 2.5 + database.CLIENT_GRACE
    assert Timeouts(statement=0).client is None
    with pytest.raises(ConfigError, match="ACCORD_DB_LOCK_TIMEOUT"):
        Timeouts.from_env({database.ENV_LOCK_TIMEOUT: "soon"})
    with pytest.raises(ConfigError, match="ACCORD_DB_CONNECT_TIMEOUT"):
        Timeouts.from_env({database.ENV_CONNECT_TIMEOUT: "0"})


@pytest.mark.postgres
def test_postgres_sessions_carry_the_statement_and_lock_timeouts(postgres_admin_url: str) -> None:
    db = Database(postgres_admin_url, timeouts=Timeouts(statement=7, lock=3))
    try:
        with db.read() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "7s"
            assert conn.execute(sa.text("SHOW lock_timeout")).scalar() == "3s"
    finally:
        db.dispose()
    short = Database(postgres_admin_url, timeouts=Timeouts(statement=0.2))
    try:
        with (
            pytest.raises(sa.exc.OperationalError, match="statement timeout"),
            short.read() as conn,
        ):
            conn.execute(sa.text("SELECT pg_sleep(1)"))
        with short.write() as conn, database.unbounded(conn):  # as migrations run
            conn.execute(sa.text("SELECT pg_sleep(0.5)"))
        with short.read() as conn:  # the lift ended with its transaction
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "200ms"
    finally:
        short.dispose()
