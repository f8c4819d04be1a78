"""``driftline validate``: check a whole deployment before its first run, and list every problem at once.

Offline (``--offline``): only monitors.yaml — every key, every model. Otherwise also what a run needs:
both databases reachable; per model the prediction log (and labels table) exists, every configured
column exists with a type the monitors can use, user monitors import, and the reference has rows —
at least ``drift.min_rows`` (and ``reference.min_rows`` where that key exists). A name that does
not exist comes with the closest existing one ("did you mean").

Problems are plain sentences that never contain a password (URLs are shown without it).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from driftline.config.monitors import ConfigProblems, ModelConfig, MonitorsConfig, load_config
from driftline.core.errors import DriftlineError
from driftline.core.window import Window, last_full_hour_end

#: How long counting the reference's rows may take before validate gives up on it (a problem).
COUNT_TIMEOUT_SECONDS = 60


@dataclass
class Checkup:
    """What validate found: the config (if it parsed), problems (each fails validate) and facts."""

    source: str
    config: MonitorsConfig | None = None
    problems: list[str] = field(default_factory=list)
    #: Per model: one line of what was checked, e.g. ``loan: table public.loan (9,600 reference rows)``.
    facts: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _close(name: str, candidates: list[str]) -> str:
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _shown(schema: str | None, name: str) -> str:
    return f"{schema}.{name}" if schema else name


NUMERIC_TYPES = (sa.Integer, sa.Float, sa.Numeric)
TIME_TYPES = (sa.DateTime, sa.Date)


def _type_problem(role: str, column: str, kind: Any) -> str | None:
    """Why ``column`` (reflected type ``kind``) cannot play ``role``, or None."""
    if isinstance(kind, sa.types.NullType):
        return None  # a type SQLAlchemy does not know: the run reads it as text, nothing to say here
    if role == "timestamp" and not isinstance(kind, TIME_TYPES):
        return f"timestamp_column {column!r} is {kind}, not a timestamp (timestamptz recommended)"
    if role == "numeric" and (not isinstance(kind, NUMERIC_TYPES) or isinstance(kind, sa.Boolean)):
        return f"numeric feature {column!r} is {kind}, not a number (list it under categorical)"
    if role == "categorical" and isinstance(kind, sa.JSON | sa.ARRAY | sa.LargeBinary):
        return f"categorical feature {column!r} is {kind}; a category must be a scalar"
    return None


def _roles(model_config: ModelConfig) -> list[tuple[str, str]]:
    roles = [(model_config.timestamp_column, "timestamp")]
    roles += [(c, "numeric") for c in model_config.features.numeric]
    roles += [(c, "categorical") for c in model_config.features.categorical]
    for column in (model_config.score_column, model_config.latency_column):
        if column:
            roles.append((column, "numeric"))
    if model_config.task == "regression":
        roles.append((model_config.prediction_column, "numeric"))
        if model_config.label_column:
            roles.append((model_config.label_column, "numeric"))
    return roles


def _check_table(inspector: Any, model_config: ModelConfig, problems: list[str]) -> dict[str, Any] | None:
    """Reflected columns of the model's log (name -> type), or None with the problem recorded."""
    schema, name = model_config.schema_and_table
    prefix = f"model {model_config.name!r}: "
    try:
        exists = inspector.has_table(name, schema=schema)
    except sa.exc.SQLAlchemyError as exc:
        problems.append(f"{prefix}cannot inspect table {_shown(schema, name)!r}: {type(exc).__name__}")
        return None
    if not exists:
        try:
            known = inspector.get_table_names(schema=schema) + inspector.get_view_names(schema=schema)
        except sa.exc.SQLAlchemyError:
            known = []
        where = f" in schema {schema!r}" if schema else ""
        problems.append(f"{prefix}table {_shown(schema, name)!r} does not exist{where}{_close(name, known)}")
        return None
    columns = {c["name"]: c["type"] for c in inspector.get_columns(name, schema=schema)}
    for column in model_config.columns():
        if column not in columns:
            problems.append(
                f"{prefix}table {_shown(schema, name)!r} has no column {column!r}{_close(column, list(columns))}"
            )
    for column, role in _roles(model_config):
        if column in columns:
            problem = _type_problem(role, column, columns[column])
            if problem:
                problems.append(prefix + problem)
    if model_config.labels is not None:
        label_schema, label_name = model_config.labels.schema_and_table
        if not inspector.has_table(label_name, schema=label_schema):
            known = inspector.get_table_names(schema=label_schema)
            problems.append(
                f"{prefix}labels table {_shown(label_schema, label_name)!r} does not exist{_close(label_name, known)}"
            )
        else:
            present = [c["name"] for c in inspector.get_columns(label_name, schema=label_schema)]
            for column in (
                model_config.labels.id_column,
                model_config.labels.label_column,
                model_config.labels.timestamp_column,
            ):
                if column and column not in present:
                    problems.append(
                        f"{prefix}labels table {_shown(label_schema, label_name)!r} has no column {column!r}"
                        + _close(column, present)
                    )
    return columns


def reference_rows(engine: Engine, model_config: ModelConfig, now: datetime | None = None) -> tuple[int, str]:
    """Rows in the model's reference and a description of it (the range that the next hour would use)."""
    from driftline.tasks.extract import log_table

    source = model_config.reference.source
    if source is not None:  # a table, query or file: read it as a fit would (every problem it has shows)
        from driftline.tasks.reference_source import read_reference_rows

        frame = read_reference_rows(engine, model_config, Window(*model_config.reference.span_for()))
        kind, value = source
        return len(frame), f"{kind} {value if len(value) <= 60 else value[:57] + '...'}"
    window_start = (now or last_full_hour_end()) - timedelta(hours=1)
    start, end = model_config.reference.span_for(window_start)
    table = log_table(model_config)
    ts = table.c[model_config.timestamp_column]
    statement = sa.select(sa.func.count()).select_from(table).where(ts >= start, ts < end)
    with engine.connect() as connection:
        connection.execute(sa.text(f"SET statement_timeout = {COUNT_TIMEOUT_SECONDS * 1000}"))
        count = int(connection.execute(statement).scalar_one())
        connection.rollback()
    return count, f"{start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC"


def _check_reference(engine: Engine, model_config: ModelConfig, problems: list[str]) -> int | None:
    prefix = f"model {model_config.name!r}: "
    try:
        count, described = reference_rows(engine, model_config)
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        problems.append(f"{prefix}could not count the reference's rows: {reason}")
        return None
    except DriftlineError as exc:
        problems.append(f"{prefix}reference: {exc}")
        return None
    needed = max(model_config.drift.min_rows, int(getattr(model_config.reference, "min_rows", 0) or 0))
    if count == 0:
        problems.append(f"{prefix}the reference ({described}) has no rows")
    elif count < needed:
        problems.append(f"{prefix}the reference ({described}) has {count:,} rows, fewer than the {needed:,} needed")
    return count


def check_deployment(path: str | Path, *, offline: bool = False) -> Checkup:
    """Validate ``path`` and, unless ``offline``, everything a run of it touches. Never raises for a
    problem it can name; each becomes one entry of ``problems``."""
    checkup = Checkup(str(path))
    try:
        checkup.config = load_config(path)
    except ConfigProblems as exc:
        checkup.problems += [f"{exc.source}: {p}" for p in exc.problems]
        return checkup
    except DriftlineError as exc:
        checkup.problems.append(str(exc))
        return checkup
    if offline:
        return checkup
    from driftline.core.settings import load_settings
    from driftline.storage.connections import database_urls
    from driftline.storage.engine import check_connection, get_engine

    try:
        data_url, results_url = database_urls(checkup.config, load_settings())
        data, results = get_engine(data_url), get_engine(results_url)
    except DriftlineError as exc:
        checkup.problems.append(str(exc))
        return checkup
    reachable = True
    for label, engine in (("prediction log", data), ("results store", results)):
        if label == "results store" and results_url == data_url:
            continue
        try:
            check_connection(engine)
        except DriftlineError as exc:
            checkup.problems.append(f"{label}: {exc}")
            reachable = reachable and label != "prediction log"
    if not reachable:
        return checkup
    inspector = sa.inspect(data)
    for model in checkup.config.models:
        before = len(checkup.problems)
        columns = _check_table(inspector, model, checkup.problems)
        try:
            from driftline.tasks.monitors import monitors_for

            monitors_for(model)
        except DriftlineError as exc:
            checkup.problems.append(f"model {model.name!r}: monitors: {exc}")
        count = None
        # The reference is counted on the timestamp column, so only when that column is a time.
        if columns is not None and isinstance(columns.get(model.timestamp_column), TIME_TYPES):
            count = _check_reference(data, model, checkup.problems)
        if len(checkup.problems) == before:
            schema, name = model.schema_and_table
            checkup.facts[model.name] = (
                f"table {_shown(schema, name)}, {len(model.columns())} columns checked, "
                f"reference {count or 0:,} rows" + (" (rolling)" if model.reference.rolling else "")
            )
    return checkup
