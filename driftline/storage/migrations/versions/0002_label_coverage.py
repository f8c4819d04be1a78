"""Label coverage per window: how many labelled rows its performance rows rest on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "driftline"


def upgrade() -> None:
    op.add_column("runs", sa.Column("labelled_rows", sa.BigInteger, nullable=True), schema=SCHEMA)
    op.add_column("runs", sa.Column("labels_checked_at", sa.DateTime(timezone=True), nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("runs", "labels_checked_at", schema=SCHEMA)
    op.drop_column("runs", "labelled_rows", schema=SCHEMA)
