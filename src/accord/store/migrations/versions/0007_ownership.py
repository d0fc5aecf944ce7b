"""Owners, routing, handoff history, notifications and node settings.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("lead_member_id", sa.Integer, sa.ForeignKey("members.id", name="fk_teams_lead")),
        sa.Column("created_at", Stamp, nullable=False),
        sa.UniqueConstraint("name", name="uq_teams_name"),
    )
    op.create_table(
        "member_routing",
        sa.Column(
            "member_id",
            sa.Integer,
            sa.ForeignKey("members.id", name="fk_member_routing_member", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id", name="fk_member_routing_team")),
        sa.Column("skills", sa.Text, nullable=False),
        sa.Column("availability", sa.String(16), nullable=False),
        sa.Column("max_load", sa.Integer),
        sa.Column("last_assigned_at", Stamp),
        sa.Column("updated_at", Stamp, nullable=False),
    )
    op.create_table(
        "routing_rules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("template", sa.String(100)),
        sa.Column("topic", sa.String(64)),
        sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id", name="fk_routing_rules_team")),
        sa.Column("skill", sa.String(64)),
        sa.Column("created_at", Stamp, nullable=False),
    )
    op.create_table(
        "case_owners",
        sa.Column("case_id", sa.String(71), primary_key=True),
        sa.Column(
            "member_id",
            sa.Integer,
            sa.ForeignKey("members.id", name="fk_case_owners_member"),
            nullable=False,
            index=True,
        ),
        sa.Column("assigned_at", Stamp, nullable=False),
        sa.Column("transfers", sa.Integer, nullable=False),
    )
    op.create_table(
        "assignment_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(71), nullable=False, index=True),
        sa.Column("from_member_id", sa.Integer),
        sa.Column("to_member_id", sa.Integer, nullable=False),
        sa.Column("by_member_id", sa.Integer),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("summary", sa.Text),
        sa.Column("at", Stamp, nullable=False),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "member_id",
            sa.Integer,
            sa.ForeignKey("members.id", name="fk_notifications_member", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("case_id", sa.String(71)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("read_at", Stamp),
    )
    op.create_table(
        "node_settings",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "node_settings",
        "notifications",
        "assignment_history",
        "case_owners",
        "routing_rules",
        "member_routing",
        "teams",
    ):
        op.drop_table(table)
