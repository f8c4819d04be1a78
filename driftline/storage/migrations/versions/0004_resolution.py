"""Multi-resolution: a `resolution` on results (hour, day, week) and stored hourly window profiles.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "driftline"


def upgrade() -> None:
    op.add_column("results", sa.Column("resolution", sa.Text, nullable=False, server_default="hour"), schema=SCHEMA)
    op.drop_index("results_key", table_name="results", schema=SCHEMA)
    op.create_index(
        "results_key",
        "results",
        ["model", "resolution", "window_start", "kind", "metric", "feature"],
        unique=True,
        schema=SCHEMA,
        postgresql_nulls_not_distinct=True,
    )
    op.create_check_constraint("results_resolution_valid", "results", "resolution IN ('hour','day','week')",
                               schema=SCHEMA)
    op.create_table(
        "window_profiles",
        sa.Column("model", sa.Text, primary_key=True),
        sa.Column("definition", sa.Text, primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("profile", postgresql.JSONB, nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("window_profiles", schema=SCHEMA)
    op.drop_constraint("results_resolution_valid", "results", schema=SCHEMA)
    op.drop_index("results_key", table_name="results", schema=SCHEMA)
    op.create_index("results_key", "results", ["model", "window_start", "kind", "metric", "feature"], unique=True,
                    schema=SCHEMA, postgresql_nulls_not_distinct=True)
    op.drop_column("results", "resolution", schema=SCHEMA)
