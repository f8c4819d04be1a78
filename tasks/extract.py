"""Read a model's rows from the prediction log. Identifiers reach SQL only through SQLAlchemy quoting."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from prefect import task
from sqlalchemy.engine import Engine

from driftline.config import ModelConfig
from driftline.errors import SchemaMismatchError
from driftline.tasks._prefect import IO


def _display_table(model: ModelConfig) -> str:
    schema, name = model.schema_and_table
    return f"{schema}.{name}" if schema else name


def log_table(model: ModelConfig) -> sa.TableClause:
    """A lightweight table clause for the model's prediction log (quoted by the dialect)."""
    schema, name = model.schema_and_table
    return sa.table(name, *(sa.column(c) for c in model.columns()), schema=schema)


def verify_columns(engine: Engine, model: ModelConfig) -> None:
    """Raise :class:`SchemaMismatchError` naming the missing table or columns."""
    schema, name = model.schema_and_table
    inspector = sa.inspect(engine)
    if not inspector.has_table(name, schema=schema):
        raise SchemaMismatchError(f"model {model.name!r}: table {_display_table(model)!r} does not exist")
    present = {c["name"] for c in inspector.get_columns(name, schema=schema)}
    missing = [c for c in model.columns() if c not in present]
    if missing:
        raise SchemaMismatchError(
            f"model {model.name!r}: table {_display_table(model)!r} has no column "
            + ", ".join(repr(c) for c in missing)
        )


def read_rows(engine: Engine, model: ModelConfig, start: datetime, end: datetime) -> pd.DataFrame:
    """Rows with ``start <= timestamp < end`` and every configured column."""
    table = log_table(model)
    ts = table.c[model.timestamp_column]
    statement = sa.select(*(table.c[c] for c in model.columns())).where(ts >= start, ts < end)
    with engine.connect() as connection:
        result = connection.execute(statement)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    return frame


verify_columns_task = task(verify_columns, name="verify-columns", **IO)
read_rows_task = task(read_rows, name="read-rows", **IO)
