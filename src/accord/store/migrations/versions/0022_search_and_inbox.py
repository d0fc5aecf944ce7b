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

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

# The index's tables as this revision made them (once ``accord.store.search.create_sql``;
# a migration imports no application code, so a later edit there cannot change it).
_MARKS = (
    "CREATE TABLE search_marks (case_id VARCHAR(71) PRIMARY KEY, events INTEGER NOT NULL, "
    "pos BIGINT NOT NULL, notes INTEGER NOT NULL)"
)
_SEARCH_SQLITE = [
    "CREATE VIRTUAL TABLE search_docs USING fts5("
    "case_id UNINDEXED, kind UNINDEXED, body, "
    "tokenize = 'unicode61 remove_diacritics 2')",
    _MARKS,
]
_SEARCH_POSTGRESQL = [
    "CREATE TABLE search_docs (id BIGSERIAL PRIMARY KEY, case_id VARCHAR(71) NOT NULL, "
    "kind VARCHAR(16) NOT NULL, body TEXT NOT NULL, folded TEXT NOT NULL, "
    "tsv TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', folded)) STORED)",
    "CREATE INDEX ix_search_docs_tsv ON search_docs USING GIN (tsv)",
    "CREATE INDEX ix_search_docs_case ON search_docs (case_id)",
    _MARKS,
]
_DROP_SEARCH = ["DROP TABLE IF EXISTS search_docs", "DROP TABLE IF EXISTS search_marks"]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in _SEARCH_SQLITE if sqlite else _SEARCH_POSTGRESQL:
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
    for statement in _DROP_SEARCH:
        op.execute(statement)
