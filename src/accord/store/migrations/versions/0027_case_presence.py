"""Who has a case open (issue 20, item 2): ``case_presence``, one row per member and case,
refreshed by the case page while it is open (``seen_at``) and while the member types a
reply (``typing_at``). A row older than the presence TTL means nobody: it is kept in the
database, not in a process's memory, so every process of ``accord serve --workers N``
sees the same members.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_presence",
        sa.Column("case_id", sa.String(71), primary_key=True),
        sa.Column(
            "member_id",
            sa.Integer,
            sa.ForeignKey("members.id", name="fk_case_presence_member", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("typing_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    op.drop_table("case_presence")
