"""Migration 0028 gives the inbound API's earlier messages their Idempotency-Key back
(the first of any race keeps it), leaves every other message without one, and makes the
key unique per channel."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from accord.store import migrate
from accord.store.database import Database
from accord.store.tables import channel_messages
from tests.clocks import START


def row(channel: str, external_id: str, flags: str, key: str, **extra: Any) -> dict[str, Any]:
    return {
        "channel": channel,
        "direction": "in",
        "external_id": external_id,
        "dedupe_key": key,
        "status": "stored",
        "kind": "message",
        "sender": "+447700900123",
        "recipients": "[]",
        "subject": "",
        "thread": "[]",
        "size": 1,
        "flags": flags,
        "attempts": 0,
        "created_at": START,
        **extra,
    }


def test_0028_backfills_the_api_keys_and_makes_them_unique(db: Database) -> None:
    config = migrate._config(db)
    with db.write() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0027")
    with db.read() as conn:  # the table as 0027 left it
        before = sa.insert(sa.Table("channel_messages", sa.MetaData(), autoload_with=conn))
    with db.write() as conn:
        conn.execute(
            before,
            [
                row("api", "till:call-1", '["system:till"]', "a"),
                row("api", "till:call-1", '["system:till"]', "b"),  # a race the old check lost
                row("api", "till:call-2", '["system:till", "new-case"]', "c"),
                row("email", "<m1@example.net>", "[]", "d"),
                row("api", "till:call-3", '["system:till"]', "e", direction="out"),
            ],
        )
    migrate.upgrade(db)
    with db.read() as conn:
        query = sa.select(channel_messages.c.dedupe_key, channel_messages.c.idempotency_key)
        keys = {str(r[0]): r[1] for r in conn.execute(query)}
    assert keys == {"a": "till:call-1", "b": None, "c": "till:call-2", "d": None, "e": None}
    with pytest.raises(sa.exc.IntegrityError), db.write() as conn:
        conn.execute(
            sa.insert(channel_messages).values(
                row("api", "till:call-2", '["system:till"]', "f", idempotency_key="till:call-2")
            )
        )
