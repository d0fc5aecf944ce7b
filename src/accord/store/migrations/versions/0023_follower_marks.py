"""Followers of the case log: one read mark per follower.

Every follower this revision knows starts at the end of the log as it stands, so an
upgrade does not replay a node's history to webhooks, mail or timers (what happened before
it was handled by the listeners this revision replaces). A follower added later adds its
own row in its own revision.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# The followers as of this revision (``accord.service.followers``); copied, not imported.
FOLLOWERS = (
    "webhooks",
    "customer-notices",
    "callback-timers",
    "response-targets",
    "member-notices",
    "outcome-facts",
)


def upgrade() -> None:
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    marks = op.create_table(
        "follower_marks",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("position", big, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("retry_at", sa.DateTime(timezone=True)),
    )
    end = op.get_bind().execute(sa.text("SELECT COALESCE(MAX(pos), 0) FROM events")).scalar()
    op.bulk_insert(
        marks, [{"name": name, "position": int(end or 0), "failures": 0} for name in FOLLOWERS]
    )


def downgrade() -> None:
    op.drop_table("follower_marks")
