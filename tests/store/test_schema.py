"""The migrations build exactly the tables ``accord.store.tables`` describes."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from accord.store import migrate
from accord.store.database import Database
from accord.store.tables import metadata

AUTH_TABLES = {"members", "web_sessions", "api_tokens", "node_secrets"}


def _not_search(name: str | None, kind: str, _parents: object) -> bool:
    """The search index (``accord.store.search``) is derived and outside the metadata."""
    return not (kind == "table" and name is not None and name.startswith("search_"))


def test_migrations_match_the_tables(db: Database) -> None:
    with db.read() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": _not_search})
        diff = compare_metadata(context, metadata)
    assert diff == []
    with db.read() as conn:
        names = set(sa.inspect(conn).get_table_names())
    assert {"search_docs", "search_marks"} <= names


def test_downgrade_to_0001_removes_only_the_auth_tables(db: Database) -> None:
    config = migrate._config(db)
    with db.write() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    with db.read() as conn:
        names = set(sa.inspect(conn).get_table_names())
    assert not names & AUTH_TABLES and {"cases", "events", "notes"} <= names
    migrate.upgrade(db)
    assert migrate.current(db) == migrate.head()
