"""Batch mode: compare two data sets (files or queries) with the same statistics as the hourly drift.

``compare(reference, current)`` profiles both frames exactly as a monitor profiles a reference range
and a window (200 reference-quantile bins, categorical counts), then runs
:func:`driftline.tasks.drift.evaluate_drift` on one synthetic window: the same metrics, thresholds,
Benjamini-Hochberg gate and ``min_rows`` rule, and the same records as ``driftline results``.

Without a config the column roles are inferred (:func:`infer_roles`): numbers are numeric, text,
booleans and categories are categorical; timestamps, identifiers, empty and constant-text columns
are left out, each with its reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from driftline.config.monitors import DriftConfig, Features, ModelConfig, ReferenceRange
from driftline.core.errors import ConfigError, SchemaMismatchError
from driftline.core.results import Kind, Result, Status
from driftline.core.window import HOUR, Window, floor_hour
from driftline.stats.model_profile import ModelProfile, fit_model_profile, window_model_profile
from driftline.tasks.drift import evaluate_drift

RECORD_COLUMNS = [
    "model",
    "window_start",
    "window_end",
    "kind",
    "metric",
    "feature",
    "value",
    "threshold",
    "status",
    "details",
    "resolution",
]
#: Model name of the records when no config names one.
BATCH_MODEL = "batch"
SQL_START = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)
_ID_NAME = re.compile(r"(^|_)(id|uuid|guid|key)$", re.IGNORECASE)


@dataclass(frozen=True)
class ColumnRoles:
    """How each column takes part: numeric, categorical, or ignored (with the reason)."""

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)

    def features(self) -> Features:
        return Features(numeric=self.numeric, categorical=self.categorical)

    def as_dict(self) -> dict[str, str]:
        """``column -> "numeric" | "categorical" | "ignored: <reason>"``: numeric, then categorical, then ignored."""
        out = {c: "numeric" for c in self.numeric} | {c: "categorical" for c in self.categorical}
        return out | {c: f"ignored: {why}" for c, why in self.ignored.items()}


def load_source(src: str, engine_or_url: Engine | str | None = None) -> pd.DataFrame:
    """Read a CSV (.csv, .tsv, .csv.gz), Parquet (.parquet, .pq) file, or a SQL query (needs an engine or URL)."""
    if SQL_START.match(src):
        if engine_or_url is None:
            raise ConfigError(
                "a SQL query as a source needs a database (DRIFTLINE_DATABASE_URL or database_url in --config)"
            )
        engine = engine_or_url
        if isinstance(engine_or_url, str):
            from driftline.storage.engine import get_engine

            engine = get_engine(engine_or_url)
        assert isinstance(engine, Engine)
        return read_only_query(engine, src)
    path = Path(src).expanduser()
    if not path.is_file():
        raise ConfigError(f"{src}: no such file (expected a .csv/.tsv/.parquet file or a SELECT query)")
    suffixes = "".join(path.suffixes[-2:]).lower()
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        try:
            return pd.read_parquet(path)
        except ImportError as exc:
            raise ConfigError(f"{src}: reading Parquet needs pyarrow (pip install pyarrow)") from exc
    if name.endswith((".tsv", ".tsv.gz", ".tab")):
        return pd.read_csv(path, sep="\t")
    if name.endswith((".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".txt")) or suffixes == "":
        return pd.read_csv(path)
    raise ConfigError(f"{src}: unknown file type {path.suffix!r}; use .csv, .tsv or .parquet")


def read_only_query(engine: Engine, sql: str) -> pd.DataFrame:
    """Run one SQL statement in a READ ONLY transaction and return its rows; anything else is refused.

    The statement is sent as a server-side prepared statement, which PostgreSQL parses as exactly one
    command ("cannot insert multiple commands into a prepared statement"): a source such as
    ``SELECT ...; COMMIT; DROP TABLE x`` never reaches its second command. The transaction is READ ONLY
    and rolled back, so a data-modifying CTE (``WITH d AS (DELETE ...) SELECT ...``), ``nextval`` or a
    write through a function fails too. The text goes to the driver as it is (no ``:name`` binding).
    A refused or failing query is a :class:`ConfigError` naming the server's one-line reason.
    """
    import psycopg

    with engine.connect() as connection:
        try:
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(sql, prepare=True)
                columns = [c.name for c in cursor.description or []]
                rows = cursor.fetchall() if cursor.description else []
            finally:
                cursor.close()
        except psycopg.Error as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"SQL source refused or failed: {reason}") from None
        finally:
            connection.rollback()
    return pd.DataFrame(rows, columns=columns)


def _looks_like_time(column: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(column):
        return True
    if not (pd.api.types.is_string_dtype(column) or pd.api.types.is_object_dtype(column)):
        return False
    sample = column.dropna().astype(str).head(50)
    if sample.empty or not sample.str.match(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2})?").all():
        return False
    return bool(pd.to_datetime(sample, errors="coerce", utc=True).notna().all())


def infer_roles(reference: pd.DataFrame, current: pd.DataFrame | None = None) -> ColumnRoles:
    """Numeric vs categorical per column shared by both frames; timestamps and identifiers are ignored.

    Rules, in order: a column missing from ``current`` is ignored; all-null ignored; datetime (or
    ISO-date text) ignored; a name like ``id``/``*_id``/``uuid``/``key`` whose values are all distinct
    ignored (an identifier drifts by construction); booleans categorical; numbers numeric; anything
    else categorical.
    """
    roles = ColumnRoles()
    for name in reference.columns:
        column = reference[name]
        label = str(name)
        if current is not None and name not in current.columns:
            roles.ignored[label] = "not in the current data"
        elif column.isna().all():
            roles.ignored[label] = "no values in the reference"
        elif _looks_like_time(column):
            roles.ignored[label] = "timestamp"
        elif _ID_NAME.search(label) and column.dropna().is_unique and len(column) > 1:
            roles.ignored[label] = "identifier (every value distinct)"
        elif pd.api.types.is_bool_dtype(column):
            roles.categorical.append(label)
        elif pd.api.types.is_numeric_dtype(column):
            roles.numeric.append(label)
        else:
            roles.categorical.append(label)
    return roles


def _timestamp_column(config: ModelConfig | None, frame: pd.DataFrame) -> pd.Series | None:
    """The configured timestamp column, else the first column that looks like one."""
    if config is not None:
        return frame[config.timestamp_column] if config.timestamp_column in frame.columns else None
    for name in frame.columns:
        if _looks_like_time(frame[name]):
            return frame[name]
    return None


def time_span(current: pd.DataFrame, config: ModelConfig | None = None) -> tuple[datetime, datetime] | None:
    """The current data's first and last timestamp (``timestamp_column``, or without a config the first
    column that looks like one), or ``None`` when there is none: the window the batch records carry."""
    stamps = _timestamp_column(config, current)
    if stamps is None:
        return None
    parsed = pd.to_datetime(stamps, errors="coerce", utc=True).dropna()
    if parsed.empty:
        return None
    return parsed.min().to_pydatetime(), parsed.max().to_pydatetime()


def batch_window(current: pd.DataFrame, config: ModelConfig | None = None, now: datetime | None = None) -> Window:
    """The window the records carry: the hours the current data's timestamps cover, else the current hour.

    The timestamps are the config's ``timestamp_column``, or without a config the first column that
    looks like a timestamp.
    """
    stamps = _timestamp_column(config, current)
    if stamps is not None:
        parsed = pd.to_datetime(stamps, errors="coerce", utc=True).dropna()
        if not parsed.empty:
            first = floor_hour(parsed.min().to_pydatetime())
            last = floor_hour(parsed.max().to_pydatetime()) + HOUR
            return Window(first, last)
    start = floor_hour(now or datetime.now(UTC))
    return Window(start, start + HOUR)


def batch_model(
    roles: ColumnRoles, window: Window, name: str = BATCH_MODEL, drift: DriftConfig | None = None
) -> ModelConfig:
    """A ModelConfig for a comparison: the inferred features and the default (or given) drift levels."""
    return ModelConfig(
        name=name,
        table="(batch)",
        timestamp_column="(none)",
        task="regression",
        features=roles.features(),
        prediction_column="(none)",
        reference=ReferenceRange(start=window.start, end=window.end),
        drift=drift or DriftConfig(),
    )


@dataclass
class Comparison:
    """Everything a comparison produced: the records and what the report draws."""

    model: ModelConfig
    window: Window
    roles: ColumnRoles
    results: list[Result]
    reference: ModelProfile
    current: ModelProfile
    #: The current data's first and last timestamp; ``None`` without timestamps (records then carry no window).
    span: tuple[datetime, datetime] | None = None


def run_comparison(
    reference: pd.DataFrame, current: pd.DataFrame, config: ModelConfig | None = None, now: datetime | None = None
) -> Comparison:
    """Profile both frames and evaluate drift on one synthetic window (the engine of :func:`compare`)."""
    window = batch_window(current, config, now)
    # A column on one side only is a data-quality alert (never silently left out of the comparison).
    one_sided: dict[str, str] = {}
    if config is None:
        roles = infer_roles(reference, current)
        for name in reference.columns:
            if str(name) not in current.columns:
                one_sided[str(name)] = "current"
        for name in current.columns:
            if name not in reference.columns:
                one_sided[str(name)] = "reference"
                roles.ignored[str(name)] = "not in the reference data"
        model = batch_model(roles, window)
    else:
        configured = config.features.items()
        nowhere = [c for c, _ in configured if c not in reference.columns and c not in current.columns]
        if nowhere:
            raise SchemaMismatchError(
                f"model {config.name!r}: no column " + ", ".join(map(repr, nowhere)) + " in either data set"
            )
        for column, _ in configured:
            for side, frame in (("reference", reference), ("current", current)):
                if column not in frame.columns:
                    one_sided[column] = side
        keep = [(c, k) for c, k in configured if c not in one_sided]
        roles = ColumnRoles(
            [c for c, k in keep if k == "numeric"],
            [c for c, k in keep if k == "categorical"],
            {c: f"not in the {side} data" for c, side in one_sided.items()},
        )
        model = config.model_copy(update={"features": roles.features()}) if one_sided else config
    if not roles.numeric and not roles.categorical:
        raise ConfigError("no column to compare: " + "; ".join(f"{c}: {w}" for c, w in roles.ignored.items()))
    reference_profile = fit_model_profile(reference, roles.numeric, roles.categorical)
    current_profile = window_model_profile(current, reference_profile)
    results = evaluate_drift(model, window, reference_profile, current_profile)
    results += [_missing_column(model.name, window, column, side) for column, side in one_sided.items()]
    return Comparison(
        model, window, roles, results, reference_profile, current_profile, span=time_span(current, config)
    )


def _missing_column(model: str, window: Window, column: str, missing_in: str) -> Result:
    present_in = "reference" if missing_in == "current" else "current"
    return Result(
        model=model,
        window_start=window.start,
        window_end=window.end,
        kind=Kind.DATA_QUALITY,
        metric="column_missing",
        feature=column,
        value=None,
        threshold=None,
        status=Status.ALERT,
        details={
            "reason": f"column {column!r} is in the {present_in} data but not in the {missing_in} data",
            "missing_in": missing_in,
        },
    )


def records_frame(results: list[Result], span: tuple[datetime, datetime] | None = None) -> pd.DataFrame:
    """Result records (``Result.as_record``) as a DataFrame with the record's columns in order.

    A batch has no window of its own: ``window_start``/``window_end`` are the current data's first and
    last timestamp (``span``), or null without timestamps."""
    shown = (None, None) if span is None else tuple(t.isoformat().replace("+00:00", "Z") for t in span)
    records = [r.as_record() | {"window_start": shown[0], "window_end": shown[1]} for r in results]
    # object dtype keeps None as None, so ``to_dict("records")`` gives back exactly these records.
    return pd.DataFrame(records, columns=RECORD_COLUMNS, dtype=object)


def compare(reference: pd.DataFrame, current: pd.DataFrame, config: ModelConfig | None = None) -> pd.DataFrame:
    """Drift of ``current`` against ``reference`` as result records (same statistics as the hourly drift),
    plus a ``data_quality``/``column_missing`` alert per column present on one side only."""
    comparison = run_comparison(reference, current, config)
    frame = records_frame(comparison.results, comparison.span)
    frame.attrs["roles"] = comparison.roles.as_dict()
    return frame


def compare_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    out: Path,
    config: ModelConfig | None = None,
    *,
    reference_name: str = "reference",
    current_name: str = "current",
) -> Path:
    """Write the self-contained HTML report of a batch comparison; returns the file."""
    from driftline.tasks.report.html import write_comparison_report

    comparison = run_comparison(reference, current, config)
    return write_comparison_report(comparison, Path(out), reference_name, current_name)


def summary(records: pd.DataFrame) -> dict[str, Any]:
    """Worst status per feature of a records frame: ``{feature: status}`` (the window-level rows aside)."""
    from driftline.core.results import Status, worst

    per_feature: dict[str, Any] = {}
    for feature, group in records[records["feature"].notna()].groupby("feature", sort=False):
        per_feature[str(feature)] = str(worst([Status(s) for s in group["status"]]))
    return per_feature
