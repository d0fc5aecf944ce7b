"""Invitations into cases and the state of syncing each case with each peer.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "invites",
        sa.Column("secret_hash", sa.String(64), primary_key=True),
        sa.Column("case_id", sa.String(71), nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("expires_at", Stamp, nullable=False),
        sa.Column("used_at", Stamp),
        sa.Column("used_by", sa.String(51)),
    )
    op.create_index("ix_invites_case_id", "invites", ["case_id"])
    op.create_table(
        "peer_sync",
        sa.Column("peer", sa.String(51), primary_key=True),
        sa.Column("case_id", sa.String(71), primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("last_attempt_at", Stamp),
        sa.Column("last_sync_at", Stamp),
        sa.Column("last_error", sa.Text),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", Stamp),
        sa.Column("events_received", sa.Integer, nullable=False),
        sa.Column("bytes_received", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("peer_sync")
    op.drop_index("ix_invites_case_id", "invites")
    op.drop_table("invites")
