"""The agent's desk (issue 20): what the inbox shows for triage, and the members' own
choices.

- ``case_inbox`` gains ``needs_reply`` (the last word is another party's and nobody here
  answered), ``preview`` (one line of the last message), ``messages`` (how many, for the
  read marks), ``last_in_at`` (another party's last message), ``party_name`` and ``via``
  (who the customer is and how they came, for cases without a customer record or a
  channel message). Every row is derived again on first use.
- ``case_reads``: how many messages of a case a member has seen (unread per member).
- ``saved_views``: a member's named inbox queries.
- ``canned_replies``: replies with placeholders, kept by leads.
- ``member_prefs``: the zone and clock a member reads times in.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM case_inbox")  # derived: every row is made again with the new columns
    with op.batch_alter_table("case_inbox") as table:
        table.add_column(
            sa.Column("needs_reply", sa.Boolean, nullable=False, server_default=sa.false())
        )
        table.add_column(sa.Column("messages", sa.Integer, nullable=False, server_default="0"))
        table.add_column(sa.Column("last_in_at", sa.String(32)))
        table.add_column(sa.Column("preview", sa.Text))
        table.add_column(
            sa.Column("preview_ours", sa.Boolean, nullable=False, server_default=sa.false())
        )
        table.add_column(sa.Column("party_name", sa.Text))
        table.add_column(sa.Column("via", sa.String(32)))
    op.create_table(
        "case_reads",
        sa.Column(
            "member_id",
            sa.Integer,
            sa.ForeignKey("members.id", name="fk_case_reads_member", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("case_id", sa.String(71), primary_key=True),
        sa.Column("messages", sa.Integer, nullable=False),
    )
    op.create_table(
        "saved_views",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "member_id",
            sa.Integer,
            sa.ForeignKey("members.id", name="fk_saved_views_member", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("query", sa.String(1000), nullable=False),
        sa.UniqueConstraint("member_id", "name", name="uq_saved_views_member_name"),
    )
    op.create_table(
        "canned_replies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("title", name="uq_canned_replies_title"),
    )
    op.create_table(
        "member_prefs",
        sa.Column(
            "member_id",
            sa.Integer,
            sa.ForeignKey("members.id", name="fk_member_prefs_member", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("zone", sa.String(64)),
        sa.Column("clock", sa.String(3), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("member_prefs")
    op.drop_table("canned_replies")
    op.drop_table("saved_views")
    op.drop_table("case_reads")
    with op.batch_alter_table("case_inbox") as table:
        for column in (
            "via",
            "party_name",
            "preview_ours",
            "preview",
            "last_in_at",
            "messages",
            "needs_reply",
        ):
            table.drop_column(column)
