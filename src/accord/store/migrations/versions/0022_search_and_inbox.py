"""Full-text search over cases (FTS5 on SQLite, tsvector on PostgreSQL), the members'
inbox row per case (both derived: they fill themselves on first use), and an index on
cases by last change (the inbox's order, and how it knows nothing changed).

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from accord.store import search

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in search.create_sql(op.get_bind().dialect.name):
        op.execute(statement)
    op.create_table(
        "case_inbox",
        sa.Column("case_id", sa.String(71), primary_key=True),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("next_due", sa.String(32)),
        sa.Column("waiting", sa.Boolean, nullable=False),
        sa.Column("last_message_at", sa.String(32)),
        sa.Column("last_reply_at", sa.String(32)),
    )
    op.create_index("ix_case_inbox_next_due", "case_inbox", ["next_due"])
    op.create_index("ix_cases_updated_at", "cases", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_cases_updated_at", table_name="cases")
    op.drop_index("ix_case_inbox_next_due", table_name="case_inbox")
    op.drop_table("case_inbox")
    for statement in search.drop_sql():
        op.execute(statement)
