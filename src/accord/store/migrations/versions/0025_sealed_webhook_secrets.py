"""Webhook secrets are sealed at rest (issue 22, row 6): ``webhooks.secret`` becomes text.

A sealed secret (``enc:v1:<key id>:<base64url>``, ``accord.store.secrets``) is longer than
the 64 characters the column allowed. The values themselves are sealed by ``Node.open``,
which can read the secrets key file; a migration cannot.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhooks") as table:
        table.alter_column("secret", type_=sa.Text, existing_type=sa.String(64))


def downgrade() -> None:
    with op.batch_alter_table("webhooks") as table:
        table.alter_column("secret", type_=sa.String(64), existing_type=sa.Text)
