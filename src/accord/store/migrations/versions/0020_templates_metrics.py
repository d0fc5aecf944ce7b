"""Templates (versioned case types), outcome facts per case, members' marks, targets and
practice runs.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "case_templates",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
    )
    op.create_table(
        "template_cases",
        sa.Column("case_id", sa.String(71), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "case_marks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(71), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("party", sa.String(64)),
        sa.Column("value", sa.Integer),
        sa.Column("member_id", sa.Integer, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("at", Stamp, nullable=False),
        sa.CheckConstraint("kind IN ('identify', 'repeat', 'rating')", name="ck_case_marks_kind"),
    )
    op.create_index("ix_case_marks_case_id", "case_marks", ["case_id"])
    op.create_table(
        "case_metrics",
        sa.Column("case_id", sa.String(71), primary_key=True),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("marks", sa.Integer, nullable=False),
        sa.Column("template", sa.String(64)),
        sa.Column("template_version", sa.Integer),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("member_id", sa.Integer),
        sa.Column("team_id", sa.Integer),
        sa.Column("opened_at", Stamp, nullable=False),
        sa.Column("first_response_at", Stamp),
        sa.Column("first_agreement_at", Stamp),
        sa.Column("resolved_at", Stamp),
        sa.Column("first_response_s", sa.Integer),
        sa.Column("agreement_s", sa.Integer),
        sa.Column("resolution_s", sa.Integer),
        sa.Column("transfers", sa.Integer, nullable=False),
        sa.Column("repeats", sa.Integer, nullable=False),
        sa.Column("callbacks_promised", sa.Integer, nullable=False),
        sa.Column("callbacks_kept", sa.Integer, nullable=False),
        sa.Column("activities_promised", sa.Integer, nullable=False),
        sa.Column("activities_kept", sa.Integer, nullable=False),
        sa.Column("rounds", sa.Integer, nullable=False),
        sa.Column("reopenings", sa.Integer, nullable=False),
        sa.Column("rating", sa.Float),
        sa.Column("deviations", sa.Integer),
        sa.Column("computed_at", Stamp, nullable=False),
    )
    op.create_index("ix_case_metrics_opened", "case_metrics", ["opened_at"])
    op.create_index(
        "ix_case_metrics_template",
        "case_metrics",
        ["template", "template_version", "opened_at"],
    )
    op.create_table(
        "metric_targets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("stat", sa.String(16), nullable=False),
        sa.Column("op", sa.String(2), nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column(
            "owner_member_id",
            sa.Integer,
            sa.ForeignKey("members.id", name="fk_metric_targets_owner"),
        ),
        sa.Column("template", sa.String(64)),
        sa.Column("created_at", Stamp, nullable=False),
    )
    op.create_table(
        "practice_runs",
        sa.Column("case_id", sa.String(71), primary_key=True),
        sa.Column(
            "member_id",
            sa.Integer,
            sa.ForeignKey("members.id", name="fk_practice_runs_member", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("started_at", Stamp, nullable=False),
        sa.Column("finished_at", Stamp),
    )
    op.create_index("ix_practice_runs_member_id", "practice_runs", ["member_id"])


def downgrade() -> None:
    op.drop_index("ix_practice_runs_member_id", table_name="practice_runs")
    op.drop_table("practice_runs")
    op.drop_table("metric_targets")
    op.drop_index("ix_case_metrics_template", table_name="case_metrics")
    op.drop_index("ix_case_metrics_opened", table_name="case_metrics")
    op.drop_table("case_metrics")
    op.drop_index("ix_case_marks_case_id", table_name="case_marks")
    op.drop_table("case_marks")
    op.drop_table("template_cases")
    op.drop_table("case_templates")
