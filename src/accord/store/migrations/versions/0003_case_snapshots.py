"""Checkpoints of the case fold, so a late concurrent event re-folds only a tail.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_snapshots",
        sa.Column("case_id", sa.String(71), primary_key=True),
        sa.Column("depth", sa.Integer, primary_key=True),
        sa.Column("event_id", sa.String(71), primary_key=True),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("auth_len", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("case_snapshots")
