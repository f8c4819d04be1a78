"""monitors.yaml: the validated model configurations.

``load_config(path)`` returns a :class:`MonitorsConfig` or raises :class:`ConfigError` whose message
names the file, the model and the key, e.g.
``monitors.yaml: model 'loan': features.numeric: column 'age' is listed twice``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from driftline.config.notifications import ActionsConfig, NotificationsConfig
from driftline.core.errors import ConfigError
from driftline.core.window import optional_instant
from driftline.stats.registry import REGISTRY, ColumnKind

MODEL_NAME_PATTERN = r"^[a-z0-9_-]+$"
#: Frame column of labels joined from a separate ground-truth table.
JOINED_LABEL = "__label__"
#: Derived frame column for regression: label - prediction.
RESIDUAL = "__residual__"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Features(_Strict):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> Features:
        seen: set[str] = set()
        for column in [*self.numeric, *self.categorical]:
            if not column:
                raise ValueError("a feature name is empty")
            if column in seen:
                raise ValueError(f"column {column!r} is listed twice")
            seen.add(column)
        return self

    def items(self) -> list[tuple[str, ColumnKind]]:
        return [(c, "numeric") for c in self.numeric] + [(c, "categorical") for c in self.categorical]


_DURATION = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")


def parse_duration(text: Any) -> timedelta:
    """``"12h"``, ``"7d"``, ``"2w"`` -> timedelta (whole hours, days or weeks)."""
    if isinstance(text, timedelta):
        return text
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"expected a duration like 12h, 7d or 2w, got {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    if amount <= 0:
        raise ValueError("the duration must be positive")
    return {"h": timedelta(hours=amount), "d": timedelta(days=amount), "w": timedelta(weeks=amount)}[unit]


#: ``reference.min_rows`` default, measured in bench/reference_size.py (docs/drift.md).
DEFAULT_REFERENCE_MIN_ROWS = 1000
#: The stand-in ``[start, end)`` of a reference from a table, query or file (stored with its profile).
SOURCE_SPAN = (datetime(1970, 1, 1, tzinfo=UTC), datetime(1970, 1, 1, 1, tzinfo=UTC))


class ReferenceRange(_Strict):
    """The rows that define "normal".

    Fixed: ``[start, end)`` of the prediction log. Rolling: ``last: 7d`` — the 7 days before the
    window's day (``[floor_day(window_start) - 7d, floor_day(window_start))``), so the reference is
    refitted at most once a day, not every hour.
    """

    start: datetime | None = None
    end: datetime | None = None
    last: timedelta | None = None
    #: A reference with fewer rows is refused: its windows get ``unknown`` with the reason (and a
    #: promotion with an explicit range that small is refused outright). The default lets the default
    #: drift statistics detect a moderate shift (docs/drift.md, "How big a reference").
    min_rows: int = Field(default=DEFAULT_REFERENCE_MIN_ROWS, ge=1)
    #: After a promotion with no reference range: the new model's first ``warmup_hours`` hours of
    #: traffic become its reference; windows inside them are ``unknown`` (warm-up).
    warmup_hours: int = Field(default=24, ge=1, le=24 * 28)
    #: Rows from elsewhere instead of a range of the log: a training table (``schema.table``), one
    #: read-only SQL query, or a CSV/Parquet file (relative to monitors.yaml's folder). They must hold
    #: the feature columns; prediction, score, label and latency columns are profiled when present.
    table: str | None = Field(default=None, min_length=1)
    query: str | None = Field(default=None, min_length=1)
    file: str | None = Field(default=None, min_length=1)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _utc(cls, value: Any) -> datetime | None:
        return optional_instant(value)

    @field_validator("query")
    @classmethod
    def _one_select(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^\s*(select|with)\b", value, re.IGNORECASE):
            raise ValueError("query must be one SELECT (or WITH ... SELECT) statement")
        return value

    @field_validator("file")
    @classmethod
    def _beside_config(cls, value: str | None, info: ValidationInfo) -> str | None:
        base = (info.context or {}).get("base") if info.context else None
        if value is None or base is None:
            return value
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (Path(base) / path).resolve())

    @property
    def source(self) -> tuple[str, str] | None:
        """``("table" | "query" | "file", value)`` for a reference from elsewhere, else ``None``."""
        for kind in ("table", "query", "file"):
            value = getattr(self, kind)
            if value is not None:
                return kind, value
        return None

    @field_validator("last", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta | None:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _ordered(self) -> ReferenceRange:
        sources = [k for k in ("table", "query", "file") if getattr(self, k) is not None]
        if sources:
            if len(sources) > 1 or self.start is not None or self.end is not None or self.last is not None:
                raise ValueError("give one of: start and end, last, table, query or file")
            return self
        if self.last is not None:
            if self.start is not None or self.end is not None:
                raise ValueError("give either start and end, or last, not both")
            return self
        if self.start is None or self.end is None:
            raise ValueError("give start and end (a fixed range) or last (a rolling one, e.g. 7d)")
        if not self.start < self.end:
            raise ValueError("start must be before end")
        return self

    @property
    def rolling(self) -> bool:
        return self.last is not None

    def span_for(self, window_start: datetime | None = None) -> tuple[datetime, datetime]:
        """The concrete ``[start, end)`` used for a window starting at ``window_start``.

        A reference from a table, query or file has no time range: :data:`SOURCE_SPAN` stands in."""
        if self.source is not None:
            return SOURCE_SPAN
        if self.last is None:
            assert self.start is not None and self.end is not None
            return self.start, self.end
        if window_start is None:
            raise ValueError("a rolling reference needs the window it is for")
        end = window_start.replace(hour=0, minute=0, second=0, microsecond=0)
        return end - self.last, end


class Levels(_Strict):
    warning: float = Field(ge=0)
    alert: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        if self.warning > self.alert:
            raise ValueError("warning must not exceed alert")
        return self


class DriftConfig(_Strict):
    """How drift is judged. Per-metric levels apply to every feature unless ``features`` overrides."""

    min_rows: int = Field(default=100, ge=1)
    #: A warning needs the window-adjusted p-value below ``alpha``; an alert below ``alert_alpha``
    #: (default ``alpha / 10``). See docs/drift.md, "One verdict per feature".
    alpha: float = Field(default=0.01, gt=0, lt=1)
    alert_alpha: float | None = Field(default=None, gt=0, lt=1)
    #: The statistic whose verdict is the feature's, per column kind; the others are informational.
    #: Not among the configured metrics: the first configured one is primary.
    primary: dict[Literal["numeric", "categorical"], str] = Field(
        default_factory=lambda: {"numeric": "wasserstein", "categorical": "chi_square"}
    )
    #: Window-level verdict on the share of features in alert.
    dataset_warning: float = Field(default=0.25, ge=0, le=1)
    dataset_alert: float = Field(default=0.5, ge=0, le=1)
    numeric_metrics: list[str] | None = None
    categorical_metrics: list[str] | None = None
    thresholds: dict[str, Levels] = Field(default_factory=dict)
    features: dict[str, dict[str, Levels]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_metrics(self) -> DriftConfig:
        for kind, names in (("numeric", self.numeric_metrics), ("categorical", self.categorical_metrics)):
            for name in names or []:
                if name not in REGISTRY[kind]:  # type: ignore[index]
                    raise ValueError(f"unknown {kind} metric {name!r}; known: {', '.join(sorted(REGISTRY[kind]))}")  # type: ignore[index]
        for kind, name in self.primary.items():
            if name not in REGISTRY[kind]:
                raise ValueError(f"unknown {kind} primary metric {name!r}; known: {', '.join(sorted(REGISTRY[kind]))}")
        if self.alert_alpha is not None and self.alert_alpha > self.alpha:
            raise ValueError("alert_alpha must not exceed alpha (an alert needs at least a warning's evidence)")
        known = set(REGISTRY["numeric"]) | set(REGISTRY["categorical"])
        for name in [*self.thresholds, *(m for per in self.features.values() for m in per)]:
            if name not in known:
                raise ValueError(f"unknown metric {name!r} in thresholds; known: {', '.join(sorted(known))}")
        return self


class ExpectationSpec(_Strict):
    """A user's own Great Expectations expectation, in GX's vocabulary.

    ``type`` is the snake_case name (``expect_column_values_to_match_regex``); ``kwargs`` its
    arguments. Checked against GX when the config loads.
    """

    type: str = Field(pattern=r"^expect_[a-z0-9_]+$")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["warning", "alert"] = "alert"

    @model_validator(mode="after")
    def _known_to_gx(self) -> ExpectationSpec:
        from driftline.config.expectations import validate_expectation

        validate_expectation(self.type, self.kwargs)
        return self


class QualityConfig(_Strict):
    """Completeness and validity expectations built from the config and the reference profile."""

    enabled: bool = True
    null_tolerance: float = Field(default=0.05, ge=0, le=1)
    new_category_tolerance: float = Field(default=0.01, ge=0, le=1)
    range_widening: float = Field(default=0.25, ge=0)
    min_rows: int | None = Field(default=None, ge=0)
    max_rows: int | None = Field(default=None, ge=0)
    severity: Literal["warning", "alert"] = "alert"
    expectations: list[ExpectationSpec] = Field(default_factory=list)


class LabelsConfig(_Strict):
    """Ground truth in a separate table, joined to the predictions on the id."""

    table: str = Field(min_length=1)
    table_schema: str | None = None
    id_column: str = Field(min_length=1)
    label_column: str = Field(min_length=1)
    timestamp_column: str | None = None

    @property
    def schema_and_table(self) -> tuple[str | None, str]:
        if self.table_schema is not None:
            return self.table_schema, self.table
        schema, dot, name = self.table.partition(".")
        return (schema, name) if dot else (None, self.table)


class EstimationConfig(_Strict):
    """Performance estimated from the scores before the labels arrive (``performance_estimation`` monitor)."""

    enabled: bool = True
    #: Estimated metrics whose warning/alert reaches events, notifications and automations; ``null``:
    #: all of them, ``[]``: none (the results are still stored and shown).
    react: list[str] | None = None
    #: Two-sided coverage of the band around each estimate.
    confidence: float = Field(default=0.95, gt=0, lt=1)
    #: Fewest scored rows a window needs for an estimate (``unknown`` below).
    min_rows: int = Field(default=100, ge=1)


class PerformanceConfig(_Strict):
    """Performance against the reference's own performance, as labels arrive."""

    enabled: bool = True
    min_labels: int = Field(default=50, ge=1)
    lookback_hours: int = Field(default=72, ge=0)
    #: Allowed degradation relative to the reference value, per metric (default for all: 5% / 10%).
    tolerance: dict[str, Levels] = Field(default_factory=dict)
    default_tolerance: Levels = Field(default_factory=lambda: Levels(warning=0.05, alert=0.10))
    segments: bool = True
    positive_label: float | str = 1
    estimation: EstimationConfig = Field(default_factory=EstimationConfig)


class OperationalConfig(_Strict):
    """Serving health: volume against history, latency against the reference, errors, silence."""

    history_days: int = Field(default=28, ge=1, le=366)
    min_history: int = Field(default=3, ge=1)
    volume_band_mads: float = Field(default=4.0, gt=0)
    latency_warning_ratio: float = Field(default=1.25, gt=1)
    latency_alert_ratio: float = Field(default=1.5, gt=1)
    error_rate_warning: float = Field(default=0.01, ge=0, le=1)
    error_rate_alert: float = Field(default=0.05, ge=0, le=1)
    max_silence_minutes: float = Field(default=60, gt=0)


class AlertAfter(_Strict):
    """Persistence (opt-in): a result is an ``alert`` only when its check reached the alert level in
    at least ``alerts`` of the last ``of_last`` hourly windows (this one included); until then it is a
    ``warning`` that says so. One noisy hour pages nobody; a change that lasts still does."""

    alerts: int = Field(ge=1)
    of_last: int = Field(ge=1, le=168)

    @model_validator(mode="after")
    def _ordered(self) -> AlertAfter:
        if self.alerts > self.of_last:
            raise ValueError("alerts must not exceed of_last")
        return self


class SeasonalReference(_Strict):
    """Seasonality (opt-in): judge data drift against the same hour of the day (``every: day``) or
    of the week (``every: week``) over the last ``last`` days/weeks, merged from the stored hourly
    profiles, instead of the whole reference range. Needs a fixed reference (the profiles share its
    bins); until ``min_rows`` such rows are stored the fitted reference is used, and the rows say so."""

    every: Literal["day", "week"] = "day"
    last: int = Field(default=7, ge=1, le=52)


class MonitorSpec(_Strict):
    """One monitor to run every window: a built-in by name, or the user's own by ``path``
    (``package.module:attribute``) or ``entry_point`` (a name in the ``driftline.monitors`` group)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    path: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_.]*)?$")
    entry_point: str | None = None
    kind: Literal["data_drift", "concept_drift", "performance", "data_quality", "operational"] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=120, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> MonitorSpec:
        if self.path is not None and self.entry_point is not None:
            raise ValueError("give path or entry_point, not both")
        return self


class ModelConfig(_Strict):
    """One monitored model: where its predictions are logged and how to judge them."""

    name: str = Field(pattern=MODEL_NAME_PATTERN, max_length=63)
    table: str = Field(min_length=1)
    table_schema: str | None = None
    timestamp_column: str = Field(min_length=1)
    id_column: str | None = None
    task: Literal["classification", "regression"]
    features: Features
    prediction_column: str = Field(min_length=1)
    score_column: str | None = None
    label_column: str | None = None
    latency_column: str | None = None
    reference: ReferenceRange
    labels: LabelsConfig | None = None
    error_column: str | None = None
    drift: DriftConfig = Field(default_factory=DriftConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    operational: OperationalConfig = Field(default_factory=OperationalConfig)
    #: Which monitors run, in order. Absent: every built-in monitor.
    monitors: list[MonitorSpec] | None = None
    #: Where warnings and alerts are sent (overrides the top-level ``notifications`` key by key).
    notifications: NotificationsConfig | None = None
    #: What Prefect automations do on alerts: retrain, call a CI/CD webhook.
    actions: ActionsConfig | None = None
    #: Persistence: alert only after ``alerts`` alert-level windows of the last ``of_last``.
    alert_after: AlertAfter | None = None
    #: Seasonal reference for data drift: the same hour of day/week over the last N days/weeks.
    seasonal_reference: SeasonalReference | None = None

    @property
    def schema_and_table(self) -> tuple[str | None, str]:
        """``analytics.loan_predictions`` -> (``analytics``, ``loan_predictions``).

        A table name that itself contains a dot needs ``table_schema`` set explicitly.
        """
        if self.table_schema is not None:
            return self.table_schema, self.table
        schema, dot, name = self.table.partition(".")
        return (schema, name) if dot else (None, self.table)

    def columns(self) -> list[str]:
        """Every configured column, each once, in a stable order."""
        ordered = [
            self.timestamp_column,
            self.id_column,
            *self.features.numeric,
            *self.features.categorical,
            self.prediction_column,
            self.score_column,
            self.label_column,
            self.latency_column,
            self.error_column,
        ]
        return list(dict.fromkeys(c for c in ordered if c))

    @property
    def label_field(self) -> str | None:
        """Name of the label in a window's frame: the label column, or ``__label__`` when joined from ``labels``."""
        if self.labels is not None:
            return JOINED_LABEL
        return self.label_column

    def runs_builtin(self, name: str) -> bool:
        """Whether the built-in monitor ``name`` runs: ``monitors:`` absent (every built-in runs) or
        naming it (a user monitor of the same name, by ``path`` or ``entry_point``, does not count)."""
        return self.monitors is None or any(
            spec.name == name and spec.path is None and spec.entry_point is None for spec in self.monitors
        )

    def target_columns(self) -> list[tuple[str, ColumnKind]]:
        """Columns profiled besides the features: prediction, score, label, residual, latency, error."""
        outcome: ColumnKind = "categorical" if self.task == "classification" else "numeric"
        columns: list[tuple[str, ColumnKind]] = [(self.prediction_column, outcome)]
        if self.score_column:
            columns.append((self.score_column, "numeric"))
        if self.label_field:
            columns.append((self.label_field, outcome))
            if self.task == "regression":
                columns.append((RESIDUAL, "numeric"))
        if self.latency_column:
            columns.append((self.latency_column, "numeric"))
        if self.error_column:
            columns.append((self.error_column, "categorical"))
        feature_names = {name for name, _ in self.features.items()}
        return [(name, kind) for name, kind in columns if name not in feature_names]

    @model_validator(mode="after")
    def _seasonal_needs_fixed_reference(self) -> ModelConfig:
        if self.seasonal_reference is not None and self.reference.rolling:
            raise ValueError("seasonal_reference needs a fixed reference (start and end): its hours share its bins")
        return self

    @model_validator(mode="after")
    def _labels_need_id(self) -> ModelConfig:
        if self.labels is not None and not self.id_column:
            raise ValueError("labels from a separate table need id_column to join on")
        if self.labels is not None and self.label_column:
            raise ValueError("set either label_column or labels, not both")
        return self

    def reference_definition(self, window_start: datetime | None = None) -> str:
        """Hash of everything that shapes the reference profile; a change means a refit.

        For a rolling reference the concrete range depends on the window (``window_start``)."""
        from driftline.stats import profile

        definition = {
            "table": self.schema_and_table,
            "timestamp": self.timestamp_column,
            "features": self.features.model_dump(),
            "targets": self.target_columns(),
            "labels": self.labels.model_dump() if self.labels else None,
            "reference": (
                [t.isoformat() for t in self.reference.span_for(window_start)]
                if window_start is not None or not self.reference.rolling
                else ["last", self.reference.last.total_seconds() if self.reference.last else None]
            ),
            "bins": [profile.FINE_BINS, profile.COARSE_BINS, profile.MAX_STORED_CATEGORIES],
            # 6: integral floats count as integer categories (1.0 is "1"); older references are refitted.
            # 7: the reference carries the performance estimator (isotonic calibration / loss model).
            "version": 7,
        }
        source = self.reference.source
        if source is not None:  # only then: every other model's hash, and so its stored profile, stays
            definition["source"] = [*source, *_file_identity(source)]
        return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]


def _file_identity(source: tuple[str, str]) -> list[int]:
    """Size and modification time of a reference file, so that a replaced file is refitted."""
    if source[0] != "file":
        return []
    try:
        stat = Path(source[1]).stat()
    except OSError:
        return []
    return [stat.st_size, stat.st_mtime_ns]


class MonitorsConfig(_Strict):
    database_url: str | None = None
    #: Defaults for every model's notifications.
    notifications: NotificationsConfig | None = None
    models: list[ModelConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> MonitorsConfig:
        names = [m.name for m in self.models]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"model names must be unique; repeated: {', '.join(duplicates)}")
        return self

    def model(self, name: str) -> ModelConfig:
        for model in self.models:
            if model.name == name:
                return model
        raise ConfigError(f"no model named {name!r}; configured: {', '.join(m.name for m in self.models)}")


def _model_class_in(annotation: Any) -> type[BaseModel] | None:
    """The first pydantic model inside an annotation (``X | None``, ``list[X]``, ``dict[str, X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_class_in(argument)
        if found is not None:
            return found
    return None


def _known_keys(location: tuple[Any, ...]) -> list[str]:
    """The keys allowed where ``location`` (a pydantic error location without its last part) points.

    List indexes and free-form dict keys (``drift.features.<name>``) step into the element type."""
    current: type[BaseModel] | None = MonitorsConfig
    for part in location:
        if current is None:
            return []
        if isinstance(part, str) and part in current.model_fields:
            current = _model_class_in(current.model_fields[part].annotation)
    return list(current.model_fields) if current is not None else []


def _did_you_mean(error: dict[str, Any]) -> str:
    location = tuple(error["loc"])
    if not location or not isinstance(location[-1], str):
        return ""
    close = difflib.get_close_matches(location[-1], _known_keys(location[:-1]), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(error: dict[str, Any], raw: Any) -> str:
    location = list(error["loc"])
    prefix = ""
    if len(location) >= 2 and location[0] == "models" and isinstance(location[1], int):
        index = location[1]
        name = None
        if isinstance(raw, dict) and isinstance(raw.get("models"), list) and index < len(raw["models"]):
            entry = raw["models"][index]
            name = entry.get("name") if isinstance(entry, dict) else None
        prefix = f"model {name!r}: " if name else f"model #{index + 1}: "
        location = location[2:]
    key = ".".join(str(part) for part in location)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key" + _did_you_mean(error)
    return f"{prefix}{key + ': ' if key else ''}{message}"


class ConfigProblems(ConfigError):
    """monitors.yaml failed validation; ``problems`` lists every problem, unknown keys first."""

    def __init__(self, source: str, problems: list[str]) -> None:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{source}: {problems[0]}{more}")
        self.source = source
        self.problems = problems


def parse_config(raw: Any, source: str = "monitors.yaml", base: Path | None = None) -> MonitorsConfig:
    """Validate an already-parsed YAML document.

    Raises :class:`ConfigProblems`: its message is the first problem (an unknown key before the
    missing fields it may explain) and how many more; ``problems`` has them all."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping with a 'models' list at the top level")
    try:
        return MonitorsConfig.model_validate(raw, context={"base": base} if base is not None else None)
    except ValidationError as exc:
        # Unknown keys first, outer before nested (a misspelt key explains the "Field required" after it).
        errors = sorted(exc.errors(), key=lambda e: (e["type"] != "extra_forbidden", len(e["loc"])))
        raise ConfigProblems(source, [_describe(dict(e), raw) for e in errors]) from None


_CACHE: dict[tuple[str, int, int], MonitorsConfig] = {}
_CACHE_LOCK = threading.Lock()


def load_config(path: str | Path) -> MonitorsConfig:
    """Read and validate monitors.yaml; cached per process while the file is unchanged (size and
    mtime), since monitor-all loads it once per model and a large file takes a while to validate."""
    file = Path(path)
    try:
        stat = file.stat()
        key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = None
    if key is not None:
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
        if cached is not None:
            return cached
    loaded = _load_config(file)
    if key is not None:
        with _CACHE_LOCK:
            _CACHE[key] = loaded
    return loaded


def _load_config(file: Path) -> MonitorsConfig:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_config(raw, str(file), base=file.parent)
