"""Time indexes: `window_start` on results, runs and window profiles, for retention and fleet-wide reads.

Every earlier index leads with `model`, so a question about a time range across all models — "what
alerted in the last 24 hours", or `driftline db prune` deleting the windows of one old day — had
to read the whole table (at a year's size, ~100 GB of results). B-tree rather than BRIN: rows arrive
in time order, but once retention frees old pages new rows land in them and BRIN ranges widen for
good; hourly timestamps repeat for every row of every model, so deduplication keeps the B-tree at a
few bytes per row. `IF NOT EXISTS`: idempotent, and safe on an existing populated store (the build
reads the table once and blocks writes to it meanwhile; docs/scale.md gives the time at size).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "driftline"
INDEXES = (
    ("results_window_start", "results"),
    ("runs_window_start", "runs"),
    ("window_profiles_window_start", "window_profiles"),
)


def upgrade() -> None:
    for name, table in INDEXES:
        op.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{SCHEMA}"."{table}" (window_start)')


def downgrade() -> None:
    for name, _table in INDEXES:
        op.execute(f'DROP INDEX IF EXISTS "{SCHEMA}"."{name}"')
