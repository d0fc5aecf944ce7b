"""The signed case log, materialised case state, node identity and internal notes.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(71), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("state_hash", sa.String(71), nullable=False),
        sa.Column("auth_ids", sa.LargeBinary, nullable=False),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("last_depth", sa.Integer, nullable=False),
        sa.Column("resolved", sa.Boolean, nullable=False),
        sa.Column("opened_at", sa.String(32), nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("pos", BigId, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(71), nullable=False),
        sa.Column("event_id", sa.String(71), nullable=False),
        sa.Column("author", sa.String(51), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("sig", sa.String(86), nullable=False),
        sa.Column("clock", sa.LargeBinary, nullable=False),
        sa.Column("auth", sa.Text, nullable=False),
        sa.Column("party", sa.String(64)),
        sa.Column("verdict", sa.Text),
        sa.Column("received_at", Stamp, nullable=False),
        sa.UniqueConstraint("case_id", "event_id", name="uq_events_case_event"),
    )
    op.create_index("ix_events_case_author_seq", "events", ["case_id", "author", "seq"])
    op.create_index("ix_events_case_order", "events", ["case_id", "depth", "event_id"])
    op.create_table(
        "node_info",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("public_key", sa.String(51), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("url", sa.Text),
        sa.Column("personal", sa.Boolean, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
    )
    op.create_table(
        "known_nodes",
        sa.Column("public_key", sa.String(51), primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("url", sa.Text),
        sa.Column("first_seen", Stamp, nullable=False),
    )
    op.create_table(
        "notes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(71), nullable=False),
        sa.Column("member", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
    )
    op.create_index("ix_notes_case_id", "notes", ["case_id"])


def downgrade() -> None:
    for table in ("notes", "known_nodes", "node_info", "events", "cases"):
        op.drop_table(table)
