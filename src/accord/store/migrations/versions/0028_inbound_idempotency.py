"""The inbound API's Idempotency-Key kept by the database: ``channel_messages.idempotency_key``
with a unique index on (channel, idempotency_key).

``POST /api/v1/inbound/{channel}`` used to look the key up before the intake transaction
and act afterwards, so two requests with one key at once could both pass. Now the key is
written with the message, in the intake's transaction, and the unique index refuses the
second row: one message, one case. Mail, chat and platform messages leave it empty (NULLs
never collide). Messages the API stored before this migration get their key back (their
``external_id``, which the API made ``<channel>:<key>``); where a race had already stored
two, the first keeps it.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

_FROM_API = "direction = 'in' AND flags LIKE '%\"system:%'"


def upgrade() -> None:
    with op.batch_alter_table("channel_messages") as table:
        table.add_column(sa.Column("idempotency_key", sa.String(240)))
    op.execute(
        "UPDATE channel_messages SET idempotency_key = external_id "
        f"WHERE {_FROM_API} AND id IN ("
        f"SELECT MIN(id) FROM channel_messages WHERE {_FROM_API} GROUP BY channel, external_id)"
    )
    op.create_index(
        "ux_channel_messages_idempotency",
        "channel_messages",
        ["channel", "idempotency_key"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ux_channel_messages_idempotency", table_name="channel_messages")
    with op.batch_alter_table("channel_messages") as table:
        table.drop_column("idempotency_key")
