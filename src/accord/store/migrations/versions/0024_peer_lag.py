"""How far behind each peer and case is: the last comparison of heads in ``peer_sync``.

Pushes to peers follow the log from a mark per peer (``follower_marks`` rows named
``peer:<key>``, created by ``accord.federation.push`` as peers are found: no rows here).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("peer_sync") as table:
        table.add_column(sa.Column("we_lack", sa.Integer))
        table.add_column(sa.Column("they_lack", sa.Integer))
        table.add_column(sa.Column("compared_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("peer_sync") as table:
        table.drop_column("compared_at")
        table.drop_column("they_lack")
        table.drop_column("we_lack")
