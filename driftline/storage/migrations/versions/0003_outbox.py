"""Notifications and retraining: open incidents, the delivery outbox, model versions, reference
overrides and the retrain log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "driftline"


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default="open"),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("opened_window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminders", sa.Integer, nullable=False, server_default="0"),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("state IN ('open','resolved')", name="incidents_state_valid"),
        sa.CheckConstraint("severity IN ('warning','alert')", name="incidents_severity_valid"),
        schema=SCHEMA,
    )
    op.create_index(
        "incidents_one_open", "incidents", ["model", "kind"], unique=True, schema=SCHEMA,
        postgresql_where=sa.text("state = 'open'"),
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("dedupe_key", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("transition", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("payload", postgresql.JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("incident_id", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending','delivered','failed')", name="outbox_status_valid"),
        sa.CheckConstraint("channel IN ('slack','email','webhook','event')", name="outbox_channel_valid"),
        schema=SCHEMA,
    )
    op.create_index("outbox_dedupe", "outbox", ["dedupe_key"], unique=True, schema=SCHEMA)
    op.create_index(
        "outbox_pending", "outbox", ["model", "next_attempt_at"], schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )

    op.create_table(
        "model_versions",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("estimator", sa.Text, nullable=False),
        sa.Column("artifact", sa.LargeBinary, nullable=True),
        sa.Column("features", postgresql.JSONB, nullable=False),
        sa.Column("train_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("train_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("baseline_score", sa.Float, nullable=True),
        sa.Column("baseline_source", sa.Text, nullable=True),
        sa.Column("metrics", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("flow_run_id", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=SCHEMA,
    )
    op.create_index("model_versions_key", "model_versions", ["model", "version"], unique=True, schema=SCHEMA)

    op.create_table(
        "reference_overrides",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("reference_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reference_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("config_reference", postgresql.JSONB, nullable=False),
        sa.Column("model_version_id", sa.BigInteger, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("reference_start < reference_end", name="reference_overrides_ordered"),
        schema=SCHEMA,
    )
    op.create_index("reference_overrides_latest", "reference_overrides", ["model", "id"], schema=SCHEMA)

    op.create_table(
        "retrain_runs",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("flow_run_id", sa.Text, nullable=True),
        sa.Column("details", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('running','promoted','rejected','skipped','failed')", name="retrain_runs_status_valid"
        ),
        schema=SCHEMA,
    )
    op.create_index("retrain_runs_model_started", "retrain_runs", ["model", "started_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("retrain_runs", schema=SCHEMA)
    op.drop_table("reference_overrides", schema=SCHEMA)
    op.drop_table("model_versions", schema=SCHEMA)
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("incidents", schema=SCHEMA)
