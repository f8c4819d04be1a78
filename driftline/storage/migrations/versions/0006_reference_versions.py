"""Versioned references: `reference_versions`, and the reference version each hourly run was judged against.

A promotion used to move the reference for every window, past ones included (`reference_overrides`,
the latest row wins). Now each version has an `effective_from`: a window is judged against the
version in effect at its start. Existing overrides become versions effective from the moment they
were recorded (`created_at`), in their order, so the hours after a promotion keep the promoted
reference and the hours before it go back to the one they were judged against.
`runs.reference_version` records which version a window's stored verdicts rest on (0: the
configured reference; NULL: recorded before this migration), so the late-label refresh re-judges a
window against the same version.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = "driftline"


def upgrade() -> None:
    op.create_table(
        "reference_versions",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("reference_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reference_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("warmup", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("model_version", sa.Text, nullable=True),
        sa.Column("model_version_id", sa.BigInteger, nullable=True),
        sa.Column("config_reference", postgresql.JSONB, nullable=False),
        sa.Column("source", sa.Text, nullable=False, server_default="promotion"),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("promoted_by", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("reference_start < reference_end", name="reference_versions_ordered"),
        sa.CheckConstraint("version > 0", name="reference_versions_positive"),
        schema=SCHEMA,
    )
    op.create_index("reference_versions_key", "reference_versions", ["model", "version"], unique=True, schema=SCHEMA)
    op.create_index("reference_versions_effective", "reference_versions", ["model", "effective_from"], schema=SCHEMA)
    # Every override becomes a version, effective from when it was recorded, numbered in its order.
    op.execute(
        f"""
        INSERT INTO "{SCHEMA}".reference_versions
            (model, version, reference_start, reference_end, effective_from, model_version, model_version_id,
             config_reference, source, note, created_at)
        SELECT o.model,
               row_number() OVER (PARTITION BY o.model ORDER BY o.id),
               o.reference_start, o.reference_end, o.created_at,
               mv.version::text, o.model_version_id, o.config_reference, 'reference_override', o.reason, o.created_at
        FROM "{SCHEMA}".reference_overrides o
        LEFT JOIN "{SCHEMA}".model_versions mv ON mv.id = o.model_version_id
        """
    )
    op.add_column("runs", sa.Column("reference_version", sa.Integer, nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("runs", "reference_version", schema=SCHEMA)
    op.drop_table("reference_versions", schema=SCHEMA)
