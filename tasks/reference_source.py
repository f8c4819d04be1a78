"""Where a reference's rows come from: a range of the prediction log, or a table, query or file.

``reference: {table: ml.churn_training}``, ``{query: "SELECT ..."}`` or ``{file: train.parquet}``
read the rows once when the profile is fitted (the profile is then stored like a range reference's).
The source must hold every feature column; a missing target (prediction, score, label, latency,
error — training data rarely has predictions) is left empty, so its reference profile has no values
and its checks say so. A query runs as one statement in a READ ONLY transaction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from driftline.config.monitors import JOINED_LABEL, ModelConfig
from driftline.core.errors import ReferenceDataError
from driftline.core.window import Window
from driftline.tasks.extract import read_rows, with_derived


def read_reference_rows(data_engine: Engine, model_config: ModelConfig, span: Window) -> pd.DataFrame:
    """The reference's rows: ``span`` of the log, or the configured table, query or file."""
    source = model_config.reference.source
    if source is None:
        return read_rows(data_engine, model_config, span.start, span.end)
    kind, value = source
    frame = _read_source(data_engine, kind, value)
    features = [c for c, _ in model_config.features.items()]
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ReferenceDataError(f"the reference {kind} has no column " + ", ".join(map(repr, missing)))
    wanted = model_config.columns()
    if model_config.labels is not None:  # ground truth from a separate table: the source names it after that table
        frame[JOINED_LABEL] = (
            frame[model_config.labels.label_column] if model_config.labels.label_column in frame else np.nan
        )
        wanted = [*wanted, JOINED_LABEL]
    for column in wanted:
        if column not in frame.columns:
            frame[column] = np.nan  # e.g. no predictions in a training table: that profile stays empty
    frame = frame[wanted].copy()
    frame[model_config.timestamp_column] = pd.to_datetime(
        frame[model_config.timestamp_column], utc=True, errors="coerce"
    )
    return with_derived(frame, model_config)


def _read_source(engine: Engine, kind: str, value: str) -> pd.DataFrame:
    from driftline.tasks.compare import load_source, read_only_query

    if kind == "query":
        return read_only_query(engine, value)
    if kind == "file":
        return load_source(value)
    schema, dot, name = value.partition(".")
    table = sa.table(name if dot else value, schema=schema if dot else None)
    try:
        columns = [c["name"] for c in sa.inspect(engine).get_columns(table.name, schema=table.schema)]
    except sa.exc.NoSuchTableError:
        raise ReferenceDataError(f"reference table {value!r} does not exist") from None
    statement = sa.select(*(sa.column(c) for c in columns)).select_from(table)
    with engine.connect() as connection:
        result = connection.execute(statement)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
