"""A checksum of each window's labels in the run log, so a corrected label is seen even when the
labelled-row count stays the same (issue #19).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = "driftline"


def upgrade() -> None:
    # Additive: NULL for windows recorded before, which the refresh then compares by count alone.
    op.add_column("runs", sa.Column("label_checksum", sa.Text, nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("runs", "label_checksum", schema=SCHEMA)
