"""Channels: customers and their identities, case numbers and direct lines, mailboxes,
and every message in or out.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Stamp = sa.DateTime(timezone=True)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column(
            "merged_into", sa.Integer, sa.ForeignKey("customers.id", name="fk_customers_merged")
        ),
    )
    op.create_table(
        "customer_identities",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "customer_id",
            sa.Integer,
            sa.ForeignKey("customers.id", name="fk_customer_identities_customer"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("value", sa.String(320), nullable=False),
        sa.Column("verified", sa.Boolean, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.UniqueConstraint("kind", "value", name="uq_customer_identities_kind_value"),
    )
    op.create_index("ix_customer_identities_customer_id", "customer_identities", ["customer_id"])
    op.create_table(
        "case_customers",
        sa.Column("case_id", sa.String(71), primary_key=True),
        sa.Column("party_id", sa.String(64), primary_key=True),
        sa.Column(
            "customer_id",
            sa.Integer,
            sa.ForeignKey("customers.id", name="fk_case_customers_customer"),
            nullable=False,
        ),
    )
    op.create_index("ix_case_customers_customer_id", "case_customers", ["customer_id"])
    op.create_table(
        "case_refs",
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.String(71), nullable=False, unique=True),
        sa.Column("token", sa.String(32), nullable=False, unique=True),
        sa.Column("created_at", Stamp, nullable=False),
    )
    op.create_table(
        "mailboxes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("address", sa.String(320), nullable=False, unique=True),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("settings", sa.LargeBinary, nullable=False),
        sa.Column("secrets", sa.LargeBinary, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("imap_uidvalidity", sa.BigInteger),
        sa.Column("imap_last_uid", sa.BigInteger),
        sa.Column("created_at", Stamp, nullable=False),
    )
    op.create_table(
        "channel_messages",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column(
            "mailbox_id",
            sa.Integer,
            sa.ForeignKey("mailboxes.id", name="fk_channel_messages_mailbox"),
        ),
        sa.Column("external_id", sa.Text, nullable=False),
        sa.Column("dedupe_key", sa.String(80), unique=True),
        sa.Column("case_id", sa.String(71)),
        sa.Column("customer_id", sa.Integer),
        sa.Column("event_id", sa.String(71)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("sender", sa.Text, nullable=False),
        sa.Column("recipients", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary),
        sa.Column("thread", sa.Text, nullable=False),
        sa.Column("raw_sha256", sa.String(64)),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("flags", sa.Text, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("done_at", Stamp),
    )
    op.create_index("ix_channel_messages_case_id", "channel_messages", ["case_id"])
    op.create_index("ix_channel_messages_external", "channel_messages", ["channel", "external_id"])
    op.create_index(
        "ix_channel_messages_sender", "channel_messages", ["channel", "sender", "created_at"]
    )


def downgrade() -> None:
    for table in (
        "channel_messages",
        "mailboxes",
        "case_refs",
        "case_customers",
        "customer_identities",
        "customers",
    ):
        op.drop_table(table)
