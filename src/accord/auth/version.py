"""The version of this node's grants: a value in ``node_settings`` that changes in the
same transaction as every change that can narrow what a credential lets its bearer do
(an API token revoked; a member disabled, or their role or name changed).

Processes that keep authenticated grants for a few seconds (``accord.api.auth``) read it
on every request — one primary-key read instead of the token lookup — and drop what
they keep when it has changed, so a revocation takes effect on the very next request in
every process. A token's expiry needs no version: the kept grant carries its time.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accord.store.database import Database
from accord.store.tables import node_settings

NAME = "auth.version"
_READ = sa.select(node_settings.c.value).where(node_settings.c.name == NAME)
_SET = node_settings.update().where(node_settings.c.name == NAME)


def current(db: Database) -> str | None:
    """The version now (None before the first change ever)."""
    with db.read() as conn:
        return current_in(conn)


def current_in(conn: Connection) -> str | None:
    value: str | None = conn.execute(_READ).scalar_one_or_none()
    return value


def bump(db: Database, conn: Connection) -> None:
    """Give the grants a new version, inside the transaction making the change."""
    conn.execute(db.insert_or_ignore(node_settings), {"name": NAME, "value": ""})
    conn.execute(_SET, {"value": secrets.token_hex(8)})
