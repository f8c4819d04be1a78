"""Read a model's rows from the prediction log. Identifiers reach SQL only through SQLAlchemy quoting."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from prefect import task
from sqlalchemy.engine import Engine

from driftline.config.monitors import JOINED_LABEL, RESIDUAL, ModelConfig
from driftline.core.errors import SchemaMismatchError
from driftline.tasks._prefect import RETRY_TRANSIENT


def _display_table(model_config: ModelConfig) -> str:
    schema, name = model_config.schema_and_table
    return f"{schema}.{name}" if schema else name


def log_table(model_config: ModelConfig) -> sa.TableClause:
    """A lightweight table clause for the model's prediction log (quoted by the dialect)."""
    schema, name = model_config.schema_and_table
    return sa.table(name, *(sa.column(c) for c in model_config.columns()), schema=schema)


def verify_columns(engine: Engine, model_config: ModelConfig) -> None:
    """Raise :class:`SchemaMismatchError` naming the missing table or columns."""
    schema, name = model_config.schema_and_table
    inspector = sa.inspect(engine)
    if not inspector.has_table(name, schema=schema):
        raise SchemaMismatchError(f"model {model_config.name!r}: table {_display_table(model_config)!r} does not exist")
    present = {c["name"] for c in inspector.get_columns(name, schema=schema)}
    missing = [c for c in model_config.columns() if c not in present]
    if missing:
        raise SchemaMismatchError(
            f"model {model_config.name!r}: table {_display_table(model_config)!r} has no column "
            + ", ".join(repr(c) for c in missing)
        )
    if model_config.labels is not None:
        label_schema, label_name = model_config.labels.schema_and_table
        shown = f"{label_schema}.{label_name}" if label_schema else label_name
        if not inspector.has_table(label_name, schema=label_schema):
            raise SchemaMismatchError(f"model {model_config.name!r}: labels table {shown!r} does not exist")
        label_present = {c["name"] for c in inspector.get_columns(label_name, schema=label_schema)}
        label_missing = [
            c for c in (model_config.labels.id_column, model_config.labels.label_column) if c not in label_present
        ]
        if label_missing:
            raise SchemaMismatchError(
                f"model {model_config.name!r}: labels table {shown!r} has no column "
                + ", ".join(map(repr, label_missing))
            )


def labels_table(model_config: ModelConfig) -> sa.TableClause | None:
    if model_config.labels is None:
        return None
    schema, name = model_config.labels.schema_and_table
    return sa.table(
        name, sa.column(model_config.labels.id_column), sa.column(model_config.labels.label_column), schema=schema
    )


def latest_labels(model_config: ModelConfig) -> sa.Subquery | None:
    """``(id, label)`` per id of the model's separate label table, or ``None`` without one (or without an
    id column to join on). A label table may hold several rows per id (corrections): the largest wins."""
    labels = labels_table(model_config)
    if labels is None or model_config.labels is None or not model_config.id_column:
        return None
    return (
        sa.select(
            labels.c[model_config.labels.id_column].label("id"),
            sa.func.max(labels.c[model_config.labels.label_column]).label("label"),
        )
        .group_by(labels.c[model_config.labels.id_column])
        .subquery("labels")
    )


def window_statement(
    model_config: ModelConfig,
    start: datetime,
    end: datetime,
    only: list[str] | None = None,
    labelled_only: bool = False,
) -> sa.Select[Any]:
    """The ``SELECT`` of a window's rows: every configured column (or the log columns in ``only``), and
    the joined label (see ``read_rows``). ``labelled_only``: only rows whose label is not NULL (the
    log's label column, or the joined one), filtered in PostgreSQL."""
    table = log_table(model_config)
    ts = table.c[model_config.timestamp_column]
    columns = [table.c[c] for c in model_config.columns() if only is None or c in only]
    source: sa.FromClause = table
    latest = latest_labels(model_config)
    label: Any = table.c[model_config.label_column] if model_config.label_column else None
    if latest is not None:
        source = table.outerjoin(latest, latest.c.id == table.c[model_config.id_column])
        columns.append(latest.c.label.label(JOINED_LABEL))
        label = latest.c.label
    statement = sa.select(*columns).select_from(source).where(ts >= start, ts < end)
    if labelled_only:
        if label is None:
            raise ValueError(f"model {model_config.name!r} has no label to filter on")
        statement = statement.where(label.is_not(None))
    return statement


def window_row_count(engine: Engine, model_config: ModelConfig, start: datetime, end: datetime) -> int:
    """Rows with ``start <= timestamp < end`` in the model's prediction log (a count, no rows read)."""
    table = log_table(model_config)
    ts = table.c[model_config.timestamp_column]
    statement = sa.select(sa.func.count()).select_from(table).where(ts >= start, ts < end)
    with engine.connect() as connection:
        # As the window's read compares them: a `timestamp` (no time zone) column holds UTC wall time.
        connection.execute(sa.text("SET LOCAL TIME ZONE 'UTC'"))
        return int(connection.execute(statement).scalar_one())


def read_rows(engine: Engine, model_config: ModelConfig, start: datetime, end: datetime) -> pd.DataFrame:
    """Rows with ``start <= timestamp < end`` and every configured column.

    With ``labels`` configured, the ground truth is left-joined on the id as column ``__label__``
    (NULL until it arrives); the frame then has every derived column too (see ``with_derived``).
    """
    statement = window_statement(model_config, start, end)
    return with_derived(
        copy_frame(engine, statement, column_types(engine, model_config), model_config.timestamp_column), model_config
    )


def iter_rows(
    engine: Engine,
    model_config: ModelConfig,
    start: datetime,
    end: datetime,
    block_bytes: int | None = None,
    only: list[str] | None = None,
    labelled_only: bool = False,
) -> Iterator[pd.DataFrame]:
    """The rows of ``read_rows`` in consecutive blocks (about ``block_bytes`` of CSV each), so a caller
    that folds them (profiles) holds one block at a time; ``only`` limits the log columns read (fewer
    bytes to print, send and parse); ``labelled_only`` reads only the rows with a label. Yields at
    least one, possibly empty, frame."""
    statement = window_statement(model_config, start, end, only, labelled_only)
    types = column_types(engine, model_config)
    # closing(): a caller that stops early ends the COPY now, not whenever the generator is collected.
    with contextlib.closing(
        copy_frames(engine, statement, types, model_config.timestamp_column, block_bytes or BLOCK_BYTES)
    ) as frames:
        for frame in frames:
            yield with_derived(frame, model_config)


#: Column kinds by database type: "integer", "float" (also NUMERIC), "text" (character types) and
#: "other" (boolean, dates, JSON, ...); text and other are read as the text PostgreSQL prints.
ColumnKinds = dict[str, str]

_INTEGER = (sa.Integer,)
_FLOAT = (sa.Numeric, sa.Float)  # sa.Float is a Numeric; Numeric (decimal) is read as float
_TYPES: dict[tuple[str, str | None, str], tuple[float, ColumnKinds]] = {}
_TYPES_LOCK = threading.Lock()
TYPES_TTL_SECONDS = 300.0


def _kinds_of(engine: Engine, schema: str | None, name: str) -> ColumnKinds:
    key = (engine.url.render_as_string(hide_password=True), schema, name)
    now = time.monotonic()
    with _TYPES_LOCK:
        cached = _TYPES.get(key)
    if cached is not None and now - cached[0] < TYPES_TTL_SECONDS:
        return cached[1]
    kinds: ColumnKinds = {}
    for column in sa.inspect(engine).get_columns(name, schema=schema):
        kind = column["type"]
        kinds[column["name"]] = (
            "integer"
            if isinstance(kind, _INTEGER)
            else "float"
            if isinstance(kind, _FLOAT)
            else "text"
            if isinstance(kind, sa.String)
            else "other"
        )
    with _TYPES_LOCK:
        _TYPES[key] = (now, kinds)
    return kinds


def column_types(engine: Engine, model_config: ModelConfig) -> ColumnKinds:
    """How each column of the window's ``SELECT`` is parsed, from its database type (reflected once per
    table every few minutes). Everything that is not a number is read as text, whatever it looks like
    ("007" stays "007", "t" stays "t"); times are text until the timestamp column is parsed. The
    types are fixed up front, not inferred, so every block of a streamed read parses alike."""
    schema, name = model_config.schema_and_table
    log = _kinds_of(engine, schema, name)
    kinds = {c: log.get(c, "text") for c in model_config.columns()}
    if model_config.labels is not None and model_config.id_column:
        label_schema, label_name = model_config.labels.schema_and_table
        kinds[JOINED_LABEL] = _kinds_of(engine, label_schema, label_name).get(model_config.labels.label_column, "text")
    return kinds


#: CSV bytes per block of a streamed read: large enough that per-block costs vanish, small enough
#: that a block's rows (about 100,000 at 20 columns) cost little memory. 32 MB, not 8: the folds of
#: a 1M-row window with every default monitor merge ~200 segment states per block, and four times
#: fewer blocks took that merging from 3.9 s to 0.9 s (docs/scale.md, #15).
BLOCK_BYTES = 32 << 20


def copy_frames(
    engine: Engine, statement: sa.Select[Any], kinds: ColumnKinds, timestamp: str, block_bytes: int = BLOCK_BYTES
) -> Iterator[pd.DataFrame]:
    """The rows of ``statement`` as DataFrames of about ``block_bytes`` of CSV each (see ``_copy_tables``).
    Yields at least one (possibly empty) frame."""
    names = [c.name for c in statement.selected_columns]
    yielded = False
    with contextlib.closing(_copy_tables(engine, statement, kinds, timestamp, block_bytes)) as tables:
        for table in tables:
            yielded = True
            yield _to_frame(table, names, timestamp)
    if not yielded:
        yield _empty_frame(names)


def _copy_tables(
    engine: Engine, statement: sa.Select[Any], kinds: ColumnKinds, timestamp: str, block_bytes: int
) -> Iterator[Any]:
    """Run ``statement`` as ``COPY (...) TO STDOUT`` (CSV) and parse it with Arrow, one block at a time.

    About 3x faster than fetching rows through the driver (docs/scale.md), and streamed: memory
    holds one block of CSV and its table, never the window's CSV. NULL is an unquoted empty field
    and an empty string a quoted one, so the two stay distinct; NaN and +-Infinity parse as floats;
    timestamps print in UTC (``_to_frame`` parses them). Identifiers are quoted by SQLAlchemy and
    values are bound by psycopg, never formatted into the text. Yields Arrow tables, none for no rows.

    One thread does it all: a second thread draining the COPY runs a Python loop per row that
    competes for the GIL with the caller's numpy work (a first version did; docs/scale.md).
    """
    import pyarrow as pa

    compiled = statement.compile(dialect=engine.dialect)
    names = [c.name for c in statement.selected_columns]
    # Positional names: the statement's own may repeat or be odd; they are put back on each frame.
    slots = [f"c{i}" for i in range(len(names))]
    arrow_types = {"integer": pa.int64(), "float": pa.float64(), "text": pa.string(), "other": pa.string()}
    types = {
        slot: pa.string() if name == timestamp else arrow_types[kinds.get(name, "text")]
        for slot, name in zip(slots, names, strict=True)
    }
    raw = engine.raw_connection()
    dbapi_error = engine.dialect.loaded_dbapi.Error
    finished = False
    try:
        cursor = raw.cursor()
        # SET LOCAL: timestamps print in UTC for this transaction only, the pooled session is untouched.
        cursor.execute("SET LOCAL TIME ZONE 'UTC'")
        with cursor.copy(f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv)", compiled.params) as copy:
            pending = bytearray()
            # PostgreSQL sends one COPY message per row, so a block boundary is always a row boundary.
            for message in copy:
                pending += message
                if len(pending) >= block_bytes:
                    yield _parse_block(pending, slots, types)
                    pending = bytearray()
            if pending:
                yield _parse_block(pending, slots, types)
        raw.rollback()
        finished = True
    except dbapi_error as exc:
        # Wrap the driver's error as Connection.execute would (sqlalchemy.exc.OperationalError, ...), so a
        # dropped connection stays transient (tasks/_prefect.is_transient) and the read is retried.
        lost = engine.dialect.is_disconnect(exc, raw.dbapi_connection, None)
        if lost:
            raw.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            str(compiled), None, exc, dbapi_error, hide_parameters=True, connection_invalidated=lost
        ) from exc
    finally:
        if not finished and raw.dbapi_connection is not None:
            raw.invalidate()  # left mid-COPY (the caller stopped early, or an error): never reuse it
        raw.close()


def _parse_block(block: bytearray, slots: list[str], types: dict[str, Any]) -> Any:
    import pyarrow as pa
    from pyarrow import csv as pacsv

    return pacsv.read_csv(
        pa.py_buffer(block),
        read_options=pacsv.ReadOptions(column_names=slots, use_threads=True),
        convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False, null_values=[""]
        ),
    )


def _empty_frame(names: list[str]) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=object) for name in names})


def _to_frame(table: Any, names: list[str], timestamp: str) -> pd.DataFrame:
    # self_destruct: each Arrow column is freed as soon as it is converted, so converting a whole
    # window needs about one copy of it in memory, not two.
    frame = table.to_pandas(self_destruct=True)
    frame.columns = names
    if timestamp in names:
        frame[timestamp] = pd.to_datetime(frame[timestamp], utc=True, format="ISO8601")
    return frame


def copy_frame(engine: Engine, statement: sa.Select[Any], kinds: ColumnKinds, timestamp: str) -> pd.DataFrame:
    """All the rows of ``statement`` as one DataFrame: the blocks are joined as Arrow tables (no copy)
    and converted once."""
    import pyarrow as pa

    names = [c.name for c in statement.selected_columns]
    tables = list(_copy_tables(engine, statement, kinds, timestamp, BLOCK_BYTES))
    if not tables:
        return _empty_frame(names)
    whole = pa.concat_tables(tables)
    del tables
    return _to_frame(whole, names, timestamp)


def with_derived(frame: pd.DataFrame, model_config: ModelConfig) -> pd.DataFrame:
    """Add derived columns: the regression residual (label - prediction, NaN until labelled)."""
    label = model_config.label_field
    if model_config.task == "regression" and label and label in frame and model_config.prediction_column in frame:
        truth = pd.to_numeric(frame[label], errors="coerce")
        predicted = pd.to_numeric(frame[model_config.prediction_column], errors="coerce")
        frame[RESIDUAL] = (truth - predicted).astype(float)
    return frame


verify_columns_task = task(verify_columns, name="verify-columns", **RETRY_TRANSIENT)
read_rows_task = task(read_rows, name="read-rows", **RETRY_TRANSIENT)


def label_checksums(engine: Engine, model_config: ModelConfig, start: datetime, end: datetime) -> dict[datetime, str]:
    """Per hour (UTC) in ``[start, end)``: an order-independent checksum of the labelled rows' (row, label)
    pairs, the sum of ``hashtextextended(row || ':' || label)`` (exact: ``sum`` of bigints is numeric).

    The row is the id column, else the timestamp. A label corrected in place (1 -> 0, the count
    unchanged) changes the checksum, which the late-label refresh compares besides the count. With
    a ``labels`` table the label is the one ``read_rows`` joins (the largest per id). Hours without
    a label are absent.
    """
    if model_config.label_field is None:
        return {}
    table = log_table(model_config)
    ts = table.c[model_config.timestamp_column]
    hour = sa.func.date_trunc("hour", sa.func.timezone("UTC", ts)).label("hour")
    row_key = sa.cast(table.c[model_config.id_column] if model_config.id_column else ts, sa.Text)
    latest = latest_labels(model_config)
    source: sa.FromClause = table
    if latest is not None:
        source = table.join(latest, latest.c.id == table.c[model_config.id_column])
        label = latest.c.label
    else:
        label = table.c[model_config.label_column]
    pair = sa.func.hashtextextended(row_key + sa.literal(":") + sa.cast(label, sa.Text), 0)
    statement = (
        sa.select(hour, sa.cast(sa.func.sum(pair), sa.Text).label("checksum"))
        .select_from(source)
        .where(ts >= start, ts < end, label.is_not(None))
        .group_by(hour)
    )
    with engine.connect() as connection:
        connection.execute(sa.text("SET LOCAL TIME ZONE 'UTC'"))  # as in labelled_counts
        return {row.hour.replace(tzinfo=UTC): str(row.checksum) for row in connection.execute(statement)}


def labelled_counts(engine: Engine, model_config: ModelConfig, start: datetime, end: datetime) -> dict[datetime, int]:
    """Labelled rows per hour (UTC) for windows in ``[start, end)``: what the late-label refresh compares."""
    if model_config.label_field is None:
        return {}
    table = log_table(model_config)
    ts = table.c[model_config.timestamp_column]
    hour = sa.func.date_trunc("hour", sa.func.timezone("UTC", ts)).label("hour")
    labels = labels_table(model_config)
    if labels is not None and model_config.labels is not None and model_config.id_column:
        ids = (
            sa.select(labels.c[model_config.labels.id_column].label("id"))
            .where(labels.c[model_config.labels.label_column].is_not(None))
            .distinct()
            .subquery("labelled")
        )
        statement = sa.select(hour, sa.func.count(ids.c.id).label("n")).select_from(
            table.outerjoin(ids, ids.c.id == table.c[model_config.id_column])
        )
    else:
        statement = sa.select(hour, sa.func.count(table.c[model_config.label_column]).label("n"))
    statement = statement.where(ts >= start, ts < end).group_by(hour)
    with engine.connect() as connection:
        # A `timestamp` (no time zone) column holds UTC wall time: compare and truncate it in UTC, whatever
        # the session's TimeZone (SET LOCAL: this transaction only; it is rolled back on close).
        connection.execute(sa.text("SET LOCAL TIME ZONE 'UTC'"))
        return {row.hour.replace(tzinfo=UTC): int(row.n) for row in connection.execute(statement)}
