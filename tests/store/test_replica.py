"""Reads from a real PostgreSQL streaming replica (``Database.read_replica``).

The replica is a hot standby of the test server started by ``tests/replica.py``
(``pg_basebackup -R``). Pausing its replay (``pg_wal_replay_pause()``) makes it stand
still at what it has while the primary moves on, so each rule is seen without timing
anything: a member's own writes, another reader within the bound, a replica beyond it,
one out of reach, one that is not a standby, and reads inside a write.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.ops.config import ConfigError
from accord.store import database
from accord.store.database import (
    ENV_READ_MAX_LAG,
    ENV_READ_URL,
    READ_MAX_LAG,
    Database,
    acting_for,
    resolve_read_max_lag,
    resolve_read_url,
    stop_tracking,
    track_writes,
)
from tests.replica import Replicated, replicated_database

pytestmark = pytest.mark.postgres
HOUR = 3600.0  # a bound no test run comes near: staleness within it is allowed


@pytest.fixture
def tracked() -> Iterator[None]:
    """A request's context, as the HTTP middleware starts one."""
    _, token = track_writes()
    yield
    stop_tracking(token)


def _set(db: Database, value: str) -> None:
    with db.write() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO node_settings (name, value) VALUES ('probe', :v) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
            ),
            {"v": value},
        )


def _seen(conn: Connection) -> tuple[str | None, bool]:
    """The probe's value, and whether the server that answered is the standby."""
    value = conn.execute(sa.text("SELECT value FROM node_settings WHERE name = 'probe'")).scalar()
    standby = bool(conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar())
    return value, standby


def _read(db: Database) -> tuple[str | None, bool]:
    with db.read_replica() as conn:
        return _seen(conn)


def test_reads_that_may_lag_go_to_the_replica_and_writes_to_the_primary(
    replicated: Replicated, tracked: None
) -> None:
    db = replicated_database(replicated, read_max_lag=HOUR)
    try:
        _set(db, "one")
        replicated.replica.catch_up()
        assert _read(db) == ("one", True)
        replicated.replica.pause()
        _set(db, "two")  # no member: nobody's own write
        assert _read(db) == ("one", True)  # the replica, behind within the bound
        with db.read() as conn:
            assert _seen(conn) == ("two", False)  # read() is always the primary
        replicated.replica.resume()
        replicated.replica.catch_up()
        assert _read(db) == ("two", True)
    finally:
        db.dispose()


def test_a_member_sees_their_own_writes_at_once_and_others_within_the_bound(
    replicated: Replicated,
) -> None:
    db = replicated_database(replicated, read_max_lag=HOUR)
    try:
        _set(db, "before")
        replicated.replica.catch_up()
        replicated.replica.pause()

        _, ann = track_writes()
        acting_for("member:1")
        _set(db, "Ann's")
        assert _read(db) == ("Ann's", False)  # her write is not on the replica: the primary
        stop_tracking(ann)

        _, tom = track_writes()
        acting_for("member:2")
        assert _read(db) == ("before", True)  # Tom may see the replica, behind
        stop_tracking(tom)

        replicated.replica.resume()
        replicated.replica.catch_up()
        _, ann = track_writes()
        acting_for("member:1")
        assert _read(db) == ("Ann's", True)  # once it has her write, the replica again
        stop_tracking(ann)
    finally:
        db.dispose()


def test_a_replica_behind_the_bound_is_not_read(
    replicated: Replicated, tracked: None, caplog: pytest.LogCaptureFixture
) -> None:
    db = replicated_database(replicated, read_max_lag=HOUR)
    try:
        _set(db, "one")
        replicated.replica.catch_up()
        assert _read(db) == ("one", True)
        replicated.replica.pause()
        _set(db, "two")  # the replica cannot have replayed it: it is behind, however little
        db.read_max_lag = 0
        with caplog.at_level(logging.WARNING, logger="accord.store"):
            assert _read(db) == ("two", False)
            assert _read(db) == ("two", False)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # once, not at every read
        assert "more than 0 s behind the primary" in warnings[0]
    finally:
        db.dispose()


def test_reads_inside_a_write_stay_on_the_primary(replicated: Replicated, tracked: None) -> None:
    db = replicated_database(replicated, read_max_lag=HOUR)
    try:
        _set(db, "one")
        replicated.replica.catch_up()
        with db.write() as conn:
            conn.execute(sa.text("UPDATE node_settings SET value = 'two' WHERE name = 'probe'"))
            assert _seen(conn) == ("two", False)
            assert _read(db)[1] is False  # not the replica, whatever it holds
    finally:
        db.dispose()


def test_a_replica_out_of_reach_leaves_reads_on_the_primary(
    replicated: Replicated,
    tracked: None,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(database, "REPLICA_RETRY", HOUR)  # however long the restart takes
    db = replicated_database(replicated, read_max_lag=HOUR)
    try:
        _set(db, "one")
        replicated.replica.catch_up()
        assert _read(db) == ("one", True)
        replicated.replica.stop()
        with caplog.at_level(logging.WARNING, logger="accord.store"):
            assert _read(db) == ("one", False)
        (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert "out of reach" in warning and "reading from the primary" in warning
        assert str(replicated.replica.url_for(replicated.url).split("@")[1]) in warning
        replicated.replica.start()
        assert _read(db)[1] is False  # left alone for a while after it failed
        db.replica_retry_now()
        assert _read(db) == ("one", True)
    finally:
        db.dispose()


def test_a_read_url_that_is_not_a_standby_is_not_used(
    replicated: Replicated, tracked: None, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(replicated.url, read_url=replicated.url)
    try:
        _set(db, "one")
        with caplog.at_level(logging.WARNING, logger="accord.store"):
            assert _read(db) == ("one", False)
        assert any("is not a standby" in r.getMessage() for r in caplog.records)
    finally:
        db.dispose()


def test_without_a_read_url_every_read_is_the_primary(replicated: Replicated) -> None:
    db = Database(replicated.url)
    try:
        assert db.replica is None
        _set(db, "one")
        assert _read(db) == ("one", False)
    finally:
        db.dispose()


# -- where the read URL comes from -----------------------------------------------------


def test_the_read_url_from_the_option_the_environment_or_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_READ_URL, raising=False)
    monkeypatch.delenv(ENV_READ_MAX_LAG, raising=False)
    assert resolve_read_url(tmp_path) is None
    assert resolve_read_max_lag(tmp_path) == READ_MAX_LAG
    (tmp_path / "accord.toml").write_text(
        '[database]\nread_url = "postgresql://reader@10.0.0.2/accord"\nread_max_lag = 2.5\n'
    )
    assert resolve_read_url(tmp_path) == "postgresql+psycopg://reader@10.0.0.2/accord"
    assert resolve_read_max_lag(tmp_path) == 2.5
    monkeypatch.setenv(ENV_READ_URL, "postgres://env@10.0.0.3/accord")
    monkeypatch.setenv(ENV_READ_MAX_LAG, "1")
    assert resolve_read_url(tmp_path) == "postgresql+psycopg://env@10.0.0.3/accord"
    assert resolve_read_max_lag(tmp_path) == 1.0
    assert resolve_read_url(tmp_path, "postgresql://given@h/db") == (
        "postgresql+psycopg://given@h/db"
    )


def test_a_wrong_read_setting_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_READ_MAX_LAG, raising=False)
    (tmp_path / "accord.toml").write_text('[database]\nread_max_lag = "soon"\n')
    with pytest.raises(ConfigError, match="read_max_lag"):
        resolve_read_max_lag(tmp_path)
    monkeypatch.setenv(ENV_READ_MAX_LAG, "-1")
    with pytest.raises(ConfigError, match=ENV_READ_MAX_LAG):
        resolve_read_max_lag(tmp_path)
    with pytest.raises(ConfigError, match="PostgreSQL"):
        Database(f"sqlite:///{tmp_path / 'a.db'}", read_url="postgresql+psycopg://h/db")


def test_the_replica_as_metrics_show_it(replicated: Replicated) -> None:
    """``/metrics`` shows the replica's state, lag and WAL still to replay, by the same
    rule that routes reads (``Database.replica_status``)."""
    from accord.ops.metrics import render

    db = replicated_database(replicated, read_max_lag=HOUR)
    try:
        _set(db, "one")
        replicated.replica.catch_up()
        # other databases on the server write too: "caught up" may be a moment old
        caught_up = db.replica_status()
        assert caught_up is not None and caught_up.state == "serving"
        assert caught_up.lag_seconds is not None and caught_up.behind_bytes is not None
        replicated.replica.pause()
        _set(db, "two")
        behind = db.replica_status()
        assert behind is not None
        assert behind.state == "serving"  # behind, within the bound
        assert behind.behind_bytes is not None and behind.behind_bytes > 0
        assert behind.lag_seconds is not None and behind.lag_seconds >= 0
        db.read_max_lag = 0
        status = db.replica_status()
        assert status is not None and status.state == "behind"
        text = render(db).decode()
        assert 'accord_replica_state{state="behind"} 1.0' in text
        assert 'accord_replica_state{state="serving"} 0.0' in text
        (shown,) = re.findall(r"^accord_replica_behind_bytes (\S+)$", text, re.M)
        assert float(shown) > 0
        assert "accord_replica_lag_seconds " in text
        with db.read_replica() as conn:  # asking changed nothing: reads still judged anew
            assert _seen(conn) == ("two", False)
    finally:
        db.dispose()


def test_a_replica_out_of_reach_or_not_a_standby_as_metrics_show_it(
    replicated: Replicated,
) -> None:
    from accord.ops.metrics import render
    from tests.servers import free_port

    closed = sa.make_url(replicated.url).set(host="127.0.0.1", port=free_port())
    cases = {
        "down": Database(replicated.url, read_url=closed.render_as_string(hide_password=False)),
        "primary": Database(replicated.url, read_url=replicated.url),
    }
    try:
        for state, db in cases.items():
            assert db.replica_status() == database.ReplicaStatus(state)
            text = render(db).decode()
            assert f'accord_replica_state{{state="{state}"}} 1.0' in text
            assert "accord_replica_lag_seconds" not in text
            assert "accord_replica_behind_bytes" not in text
        alone = Database(replicated.url)
        assert alone.replica_status() is None
        assert "accord_replica" not in render(alone).decode()
        alone.dispose()
    finally:
        for db in cases.values():
            db.dispose()
