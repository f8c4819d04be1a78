"""Initial schema: results, reference profiles, run log.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "driftline"


def upgrade() -> None:
    op.create_table(
        "results",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("feature", sa.Text, nullable=True),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("details", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "kind IN ('data_drift','concept_drift','performance','data_quality','operational')",
            name="results_kind_valid",
        ),
        sa.CheckConstraint("status IN ('ok','warning','alert','unknown')", name="results_status_valid"),
        schema=SCHEMA,
    )
    op.create_index(
        "results_key",
        "results",
        ["model", "window_start", "kind", "metric", "feature"],
        unique=True,
        schema=SCHEMA,
        postgresql_nulls_not_distinct=True,
    )
    op.create_index("results_model_kind_window", "results", ["model", "kind", "window_start"], schema=SCHEMA)

    op.create_table(
        "reference_profiles",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("reference_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reference_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("profile", postgresql.JSONB, nullable=False),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("reference_profiles_key", "reference_profiles", ["model", "definition"], unique=True, schema=SCHEMA)

    op.create_table(
        "runs",
        sa.Column("model", sa.Text, primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=True),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("flow_run_id", sa.Text, nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('running','succeeded','failed')", name="runs_status_valid"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("runs", schema=SCHEMA)
    op.drop_table("reference_profiles", schema=SCHEMA)
    op.drop_table("results", schema=SCHEMA)
