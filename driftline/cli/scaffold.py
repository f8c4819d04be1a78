"""``driftline init``: a commented monitors.yaml guessed from a prediction log's columns and data.

Roles come from names and types (SQLAlchemy's inspector): the timestamp is a date/time column
(``ts``, ``timestamp``, ``created_at``, ... first); the id a primary key or ``*_id``; prediction,
score, label and latency from their usual names; every other number is a numeric feature, every
text or boolean a categorical one; JSON, arrays and binary columns are left out (with the reason).
The reference proposed is the latest seven days before the log's last day (fewer if the log is
shorter), so the last day is left to monitor. Everything guessed is printed and written as comments
next to the key, to be checked by a person.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from driftline.config.monitors import MODEL_NAME_PATTERN, parse_config
from driftline.core.errors import ConfigError, SchemaMismatchError
from driftline.core.window import floor_hour

TIMESTAMP_NAMES = ("ts", "timestamp", "event_time", "event_ts", "created_at", "predicted_at", "scored_at", "time")
ID_NAMES = ("request_id", "prediction_id", "id", "uuid", "event_id")
PREDICTION_NAMES = ("prediction", "predicted", "pred", "y_pred", "yhat", "predicted_label", "predicted_class", "output")
SCORE_NAMES = ("score", "probability", "proba", "prob", "y_score", "confidence", "predicted_probability")
LABEL_NAMES = ("label", "target", "actual", "ground_truth", "y_true", "truth", "outcome")
LATENCY_NAMES = ("latency_ms", "latency", "duration_ms", "response_time_ms", "response_ms", "elapsed_ms")
#: A prediction with at most this many distinct values (or text/boolean) makes a classifier.
CLASSIFIER_MAX_CLASSES = 20
REFERENCE_DAYS = 7


@dataclass
class Guess:
    """What init decided, column by column, and the reference it proposes."""

    table: str
    schema: str | None
    name: str
    roles: dict[str, str] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)
    timestamp: str | None = None
    id_column: str | None = None
    prediction: str | None = None
    score: str | None = None
    label: str | None = None
    latency: str | None = None
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    task: str = "regression"
    task_why: str = ""
    reference: tuple[datetime, datetime] | None = None
    reference_rows: int = 0
    total_rows: int = 0
    first: datetime | None = None
    last: datetime | None = None


def _kind(column_type: Any) -> str:
    if isinstance(column_type, sa.Boolean):
        return "boolean"
    if isinstance(column_type, sa.DateTime | sa.Date):
        return "time"
    if isinstance(column_type, sa.Integer):
        return "integer"
    if isinstance(column_type, sa.Float | sa.Numeric):
        return "number"
    if isinstance(column_type, sa.String | sa.Enum):
        return "text"
    if isinstance(column_type, sa.JSON | sa.ARRAY | sa.LargeBinary):
        return "unsupported"
    return "text"


def _pick(names: tuple[str, ...], candidates: dict[str, str], kinds: tuple[str, ...], fuzzy: bool) -> str | None:
    """The first of ``names`` present among ``candidates`` with one of ``kinds``; ``fuzzy``: a candidate
    whose name ends with ``_<name>`` or starts with ``<name>_`` (``churn_probability``)."""
    lowered = {c.lower(): c for c in candidates if candidates[c] in kinds}
    for name in names:
        if not fuzzy and name in lowered:
            return lowered[name]
        if fuzzy:
            for low, column in lowered.items():
                if low.endswith("_" + name) or low.startswith(name + "_"):
                    return column
    return None


def model_name_for(table: str) -> str:
    """``analytics.Loan Predictions`` -> ``loan_predictions`` (a valid model name)."""
    name = re.sub(r"[^a-z0-9_-]+", "_", table.rsplit(".", 1)[-1].lower()).strip("_-") or "model"
    assert re.match(MODEL_NAME_PATTERN, name)
    return name[:63]


def inspect_table(engine: Engine, table: str, name: str | None = None) -> Guess:
    """Guess every column's role in ``table`` (``schema.table`` or ``table``) and propose a reference."""
    schema, dot, bare = table.partition(".")
    schema_name, table_name = (schema, bare) if dot else (None, table)
    inspector = sa.inspect(engine)
    if not inspector.has_table(table_name, schema=schema_name):
        raise SchemaMismatchError(f"table {table!r} does not exist")
    guess = Guess(table=table, schema=schema_name, name=name or model_name_for(table))
    reflected = inspector.get_columns(table_name, schema=schema_name)
    kinds = {c["name"]: _kind(c["type"]) for c in reflected}
    primary = set(inspector.get_pk_constraint(table_name, schema=schema_name).get("constrained_columns") or [])
    free = dict(kinds)

    def take(column: str | None, role: str, why: str) -> str | None:
        if column is not None:
            guess.roles[column], guess.why[column] = role, why
            free.pop(column, None)
        return column

    times = {c: k for c, k in free.items() if k == "time"}
    guess.timestamp = take(
        _pick(TIMESTAMP_NAMES, times, ("time",), False) or next(iter(times), None), "timestamp", "a date/time column"
    )
    if guess.timestamp is None:
        raise ConfigError(f"table {table!r} has no date or time column: Driftline needs a timestamp per prediction")
    ids = [c for c in free if c in primary and free[c] in ("integer", "text")]
    guess.id_column = take(
        ids[0] if ids else _pick(ID_NAMES, free, ("integer", "text"), False), "id", "primary key" if ids else "its name"
    )
    outcome = ("integer", "number", "text", "boolean")
    roles = {  # role -> (names, kinds); exact names first for every role, then prefixes/suffixes
        "score": (SCORE_NAMES, ("number",)),
        "latency": (LATENCY_NAMES, ("integer", "number")),
        "label": (LABEL_NAMES, outcome),
        "prediction": (PREDICTION_NAMES, outcome),
    }
    for fuzzy in (False, True):
        for role, (names, allowed) in roles.items():
            if getattr(guess, role) is None:
                found = _pick(names, free, allowed, fuzzy)
                setattr(guess, role, take(found, role, "its name" if not fuzzy else "part of its name"))
    if guess.prediction is None:
        raise ConfigError(
            f"table {table!r}: no prediction column recognised (looked for {', '.join(PREDICTION_NAMES)}); "
            "rename it or write prediction_column by hand"
        )
    for column, kind in list(free.items()):
        if kind in ("integer", "number"):
            take(column, "numeric feature", f"{kind} type")
            guess.numeric.append(column)
        elif kind in ("text", "boolean"):
            take(column, "categorical feature", f"{kind} type")
            guess.categorical.append(column)
        elif kind == "time":
            guess.roles[column], guess.why[column] = "left out", "a second date/time column"
        else:
            guess.roles[column], guess.why[column] = "left out", "JSON, array or binary: not a scalar feature"
    _facts_from_data(engine, guess, kinds)
    return guess


def _facts_from_data(engine: Engine, guess: Guess, kinds: dict[str, str]) -> None:
    """Row count, time span, the classifier/regressor decision and the proposed reference, from the data."""
    table = sa.table(guess.table.rpartition(".")[2], *(sa.column(c) for c in kinds), schema=guess.schema)
    ts = table.c[guess.timestamp]
    assert guess.prediction is not None
    prediction = table.c[guess.prediction]
    with engine.connect() as connection:
        total, first, last = connection.execute(sa.select(sa.func.count(), sa.func.min(ts), sa.func.max(ts))).one()
        distinct = connection.execute(
            sa.select(sa.func.count()).select_from(
                sa.select(prediction)
                .where(prediction.is_not(None))
                .distinct()
                .limit(CLASSIFIER_MAX_CLASSES + 1)
                .subquery()
            )
        ).scalar_one()
    guess.total_rows = int(total)
    if first is None or last is None:
        raise ConfigError(f"table {guess.table!r} has no rows with a {guess.timestamp!r}: nothing to propose")
    guess.first, guess.last = _utc(first), _utc(last)
    prediction_kind = kinds[guess.prediction]
    if prediction_kind in ("text", "boolean"):
        guess.task, guess.task_why = "classification", f"the prediction is {prediction_kind}"
    elif guess.score is not None:
        guess.task, guess.task_why = "classification", f"there is a score column ({guess.score})"
    elif distinct <= CLASSIFIER_MAX_CLASSES:
        guess.task, guess.task_why = "classification", f"the prediction takes {distinct} distinct values"
    else:
        guess.task, guess.task_why = "regression", f"the prediction takes more than {CLASSIFIER_MAX_CLASSES} values"
    guess.reference = propose_reference(guess.first, guess.last)
    start, end = guess.reference
    with engine.connect() as connection:
        guess.reference_rows = int(
            connection.execute(sa.select(sa.func.count()).select_from(table).where(ts >= start, ts < end)).scalar_one()
        )


def _utc(value: datetime) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)  # a DATE column


def propose_reference(first: datetime, last: datetime) -> tuple[datetime, datetime]:
    """Up to the latest :data:`REFERENCE_DAYS` whole days before the log's last day; a log shorter than
    two days gets its first half (whole hours, at least one)."""
    first_day = first.replace(hour=0, minute=0, second=0, microsecond=0)
    last_day = last.replace(hour=0, minute=0, second=0, microsecond=0)
    if last_day - first_day >= timedelta(days=1):
        return max(first_day, last_day - timedelta(days=REFERENCE_DAYS)), last_day
    start = floor_hour(first)
    half = max(timedelta(hours=1), floor_hour(first + (last - first) / 2) - start)
    return start, start + half


def _q(value: str) -> str:
    """A YAML scalar for any name (JSON strings are YAML)."""
    return json.dumps(value)


def render_config(guess: Guess, database_url: str | None) -> str:
    """The commented monitors.yaml for ``guess``."""
    assert guess.reference is not None and guess.first is not None and guess.last is not None
    start, end = guess.reference

    def optional(key: str, column: str | None, comment: str) -> str:
        if column is None:
            return f"    # {key}: (none found)            # {comment}\n"
        return f"    {key}: {_q(column)}  # {comment}\n"

    listed = ", ".join
    lines = [
        f"# monitors.yaml written by `driftline init --table {guess.table}`: every value below is a guess from",
        "# the table's column names and types and its data. Check them, then `driftline validate`.",
        "# All keys: the README's Configuration section.",
    ]
    if database_url:
        lines.append(f"database_url: {_q(database_url)}   # DRIFTLINE_DATABASE_URL overrides this")
    else:
        lines.append("# database_url: set DRIFTLINE_DATABASE_URL (kept out of this file: it holds a password)")
    lines += [
        "models:",
        f"  - name: {_q(guess.name)}",
        f"    table: {_q(guess.table)}",
        f"    timestamp_column: {_q(guess.timestamp or '')}  # {guess.why.get(guess.timestamp or '', '')}; "
        f"the log spans {guess.first:%Y-%m-%d %H:%M} .. {guess.last:%Y-%m-%d %H:%M} UTC, {guess.total_rows:,} rows",
    ]
    text = "\n".join(lines) + "\n"
    text += optional("id_column", guess.id_column, guess.why.get(guess.id_column or "", "optional"))
    text += f"    task: {guess.task}  # {guess.task_why}\n"
    text += "    features:\n"
    text += f"      numeric: [{listed(_q(c) for c in guess.numeric)}]  # number columns\n"
    text += f"      categorical: [{listed(_q(c) for c in guess.categorical)}]  # text and boolean columns\n"
    left_out = [c for c, r in guess.roles.items() if r == "left out"]
    if left_out:
        text += f"      # left out: {', '.join(f'{c} ({guess.why[c]})' for c in left_out)}\n"
    text += f"    prediction_column: {_q(guess.prediction or '')}\n"
    text += optional("score_column", guess.score, "probability of the positive class")
    text += optional("label_column", guess.label, "ground truth, NULL until known")
    text += optional("latency_column", guess.latency, "milliseconds")
    text += "    reference:  # the rows that define normal: " + (
        f"the latest whole days before the log's last day ({guess.reference_rows:,} rows)\n"
        if end - start >= timedelta(days=1)
        else f"the first half of a short log ({guess.reference_rows:,} rows); widen it when you have more\n"
    )
    text += f'      start: "{start:%Y-%m-%dT%H:%M:%SZ}"\n'
    text += f'      end: "{end:%Y-%m-%dT%H:%M:%SZ}"\n'
    text += "      # or a rolling reference instead of start/end:  last: 7d\n"
    return text


def scaffold(engine: Engine, table: str, database_url: str | None, name: str | None = None) -> tuple[Guess, str]:
    """Inspect ``table`` and return the guess and the monitors.yaml text, checked to validate."""
    import yaml

    guess = inspect_table(engine, table, name)
    text = render_config(guess, database_url)
    parse_config(yaml.safe_load(text), "the generated monitors.yaml")  # what init writes must validate
    return guess, text
