"""Alembic environment: runs on the connection handed over by :func:`driftline.storage.migrate.upgrade`."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from driftline.storage.models import SCHEMA, Base

connection = context.config.attributes["connection"]
# Two processes upgrading at once (two `driftline run`s) must not race on CREATE TABLE.
connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('driftline-migrations'))"))
# CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even when the schema exists: a role that
# only owns a pre-created `driftline` schema could not upgrade. Create it only when it is missing.
exists = connection.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": SCHEMA}).first()
if exists is None:
    connection.execute(sa.text(f'CREATE SCHEMA "{SCHEMA}"'))
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table_schema=SCHEMA,
    include_schemas=True,
)
with context.begin_transaction():
    context.run_migrations()
