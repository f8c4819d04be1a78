"""A lease on running windows: a `running` row whose lease has passed is abandoned (its process was
killed or lost the database) and is marked failed by the next claim of that model's windows.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SCHEMA = "driftline"


def upgrade() -> None:
    op.add_column("runs", sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True), schema=SCHEMA)
    # Only running rows are swept: a small partial index, whatever the size of the run log.
    op.execute(f"CREATE INDEX IF NOT EXISTS runs_running ON {SCHEMA}.runs (model) WHERE status = 'running'")


def downgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {SCHEMA}.runs_running")
    op.drop_column("runs", "lease_until", schema=SCHEMA)
