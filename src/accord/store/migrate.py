"""Schema migrations with Alembic, run from the installed package (no alembic.ini needed).

Opening a node only compares the database's revision with the newest one shipped, so
``current`` and ``head`` answer without loading Alembic (about 0.2 s of imports, a
third of a command's start): ``current`` reads Alembic's version table itself and
``head`` reads the ``revision``/``down_revision`` lines of the migration files, falling
back to Alembic when those lines are not the plain form every file here uses.
tests/ops/test_startup.py checks both against Alembic's own answers.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.store.database import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"  # Alembic's default, which env.py keeps
_REVISION = re.compile(r"^revision = ([\"'])([^\"']+)\1$", re.M)
_DOWN_REVISION = re.compile(r"^down_revision = (None|([\"'])([^\"']+)\2)$", re.M)


def _config(db: Database) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return config


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema up to ``revision``; a no-op when it is already there."""
    from alembic import command

    config = _config(db)
    with db.write() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def current(db: Database) -> str | None:
    with db.read() as conn:
        return current_in(conn)


def current_in(conn: Connection) -> str | None:
    """``current`` inside the caller's transaction (a backup's snapshot): the revision in
    Alembic's version table, None when there is none (an empty database)."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    found = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(found) > 1:
        raise RuntimeError(
            f"the database's {VERSION_TABLE} table holds {len(found)} revisions "
            f"({', '.join(sorted(found))}); Accord's migrations have a single line"
        )
    return str(found[0]) if found else None


@functools.cache
def head() -> str | None:
    """The newest revision shipped: the one no other migration names as its parent."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        revision, down = _REVISION.findall(text), _DOWN_REVISION.findall(text)
        if len(revision) != 1 or len(down) != 1:
            return _alembic_head()  # not the plain form: let Alembic read it
        revisions.add(revision[0][1])
        if down[0][2]:
            parents.add(down[0][2])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else _alembic_head()


def _alembic_head() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()
