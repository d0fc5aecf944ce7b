"""Shared fixtures: a database URL for each backend Accord supports (SQLite, PostgreSQL)."""

from __future__ import annotations

import gc
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import time_machine

from accord.store import migrate
from accord.store.database import Database

pytest_plugins = ["tests.browser", "tests.replica"]  # `chromium`; `postgres_replica`, `replicated`

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# Tests run their peers on 127.0.0.1 (in-process and as `accord serve` subprocesses, which
# inherit this): allow peers on private and loopback addresses, which production refuses
# (accord.federation.client). tests/security/test_federation.py turns it off again.
os.environ.setdefault("ACCORD_ALLOW_PRIVATE_PEERS", "1")
CLOCK_OFFSET = "ACCORD_TEST_CLOCK_OFFSET_DAYS"


def pytest_configure(config: pytest.Config) -> None:
    """With ``ACCORD_TEST_CLOCK_OFFSET_DAYS=N`` the process clock runs N days ahead.

    CI runs the clock-sensitive modules once more a year ahead: a test that passes a
    literal date to something reading the real clock fails there, today rather than on
    the day that date passes (``tests/clocks.py``).
    """
    days = os.environ.get(CLOCK_OFFSET)
    if days:
        ahead = datetime.now(UTC) + timedelta(days=int(days))
        traveller = time_machine.travel(ahead, tick=True)
        traveller.start()
        config.add_cleanup(traveller.stop)


def pytest_report_header(config: pytest.Config) -> str | None:
    days = os.environ.get(CLOCK_OFFSET)
    return f"the process clock runs {days} days ahead ({CLOCK_OFFSET})" if days else None


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """URL of a PostgreSQL database whose user may CREATE and DROP databases.

    Set ACCORD_TEST_POSTGRES_URL to point elsewhere. Only ACCORD_TEST_NO_POSTGRES=1 skips
    PostgreSQL tests; an unreachable server is a failure, never a silent skip.
    """
    if os.environ.get("ACCORD_TEST_NO_POSTGRES") == "1":
        pytest.skip("PostgreSQL tests disabled by ACCORD_TEST_NO_POSTGRES=1")
    url = os.environ.get("ACCORD_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    engine = sa.create_engine(url)
    error: Exception | None = None
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        error = exc.orig or exc
    finally:
        engine.dispose()
    if error is not None:
        shown = sa.make_url(url).render_as_string(hide_password=True)
        pytest.fail(
            f"PostgreSQL at {shown} is unreachable: {error}\nStart it, point "
            "ACCORD_TEST_POSTGRES_URL at a server, or set ACCORD_TEST_NO_POSTGRES=1 to skip.",
            pytrace=False,
        )
    return url


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str) -> Iterator[str]:
    """One migrated PostgreSQL database per test process, copied for each test.

    ``CREATE DATABASE … TEMPLATE`` copies the files of a database that already holds the
    whole schema, instead of running every migration again for each test.
    """
    name = f"accord_tpl_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        url = sa.make_url(postgres_admin_url).set(database=name)
        database = Database(url.render_as_string(hide_password=False))
        try:
            migrate.upgrade(database)
        finally:
            database.dispose()
        yield name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per test process, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "accord.db"
    database = Database(f"sqlite:///{path}")
    try:
        migrate.upgrade(database)
    finally:
        database.dispose()
    return path


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to a database holding the current schema and no data, on SQLite or on a
    PostgreSQL database of its own."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "accord.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return

    admin_url: str = request.getfixturevalue("postgres_admin_url")
    source: str = request.getfixturevalue("postgres_template")
    name = f"accord_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        # A connection this test left open is reported now, at this test, not whenever
        # the garbage collector happens to find it during another one.
        gc.collect()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
