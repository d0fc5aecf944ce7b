"""Shared fixtures: a database URL for each backend Accord supports (SQLite, PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


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


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database, on SQLite or on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'accord.db'}"
        return

    admin_url: str = request.getfixturevalue("postgres_admin_url")
    name = f"accord_t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
