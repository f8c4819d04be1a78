"""Completeness and validity of one window with Great Expectations, as ``data_quality`` results.

``evaluate_completeness(context)`` is a monitor (``context -> list[Result]``). From the model's
config and its reference profile it builds one GX suite:

============================================  ===========================================================
expectation                                   built from
============================================  ===========================================================
``expect_column_to_exist``                    every configured column (``model.columns()``)
``expect_table_row_count_to_be_between``      ``quality.min_rows``/``max_rows``; unset: at least 1 row
``expect_column_values_to_not_be_null``       each feature: reference null rate + ``null_tolerance``;
                                              id, prediction, score, latency: 0 + ``null_tolerance``
``expect_column_values_to_be_in_set``         each categorical feature: the reference categories,
                                              ``mostly = 1 - new_category_tolerance``
``expect_column_values_to_be_between``        each numeric feature: reference [min, max] widened by
                                              ``range_widening * (max - min)`` on each side
``expect_column_values_to_be_unique``         the id column, if any
``expect_column_values_to_be_between``        the timestamp column: inside the window ``[start, end)``
user's ``quality.expectations``               GX's own vocabulary, as written
============================================  ===========================================================

The label and error columns get no null check: NULL is their normal state. Without a reference
profile (or for a feature it lacks) the reference-based expectations are skipped.

The suite is GX's, but it is not handed to GX's validator: each block of the window is folded into
mergeable tallies (``driftline/stats/expectations.py``) and finished into the results GX gives on the whole
frame (tested against GX on the fault cases). So completeness streams with the window, holds no
frame, costs milliseconds instead of GX's ~0.3 s fixed cost per validation, and runs no GX code in
the hourly run (numbers in ``docs/completeness.md``; ``bench/gx_timing.py`` reproduces them).
Expectation types that cannot be folded are refused when the config loads.

``run_suite``/``gx_results`` keep GX's own validation of a whole frame as the reference the tests
and the benchmark compare with: one ephemeral GX context per process, a pandas data source per
model, one validation at a time (GX's suite-parameter parser is not thread-safe).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from driftline.config.monitors import ModelConfig
from driftline.core.results import Kind, Result, Status
from driftline.core.window import Window
from driftline.stats.expectations import StreamedSuite
from driftline.stats.model_profile import ModelProfile
from driftline.stats.profile import CategoricalProfile, NumericProfile
from driftline.stats.verdict import Threshold, format_number, format_pvalue, judge_family
from driftline.tasks.context import WindowContext

#: Suite parameters every run provides (usable in users' expectations as ``{"$PARAMETER": "window_start"}``).
WINDOW_START = "window_start"
WINDOW_END = "window_end"
#: How many unexpected values a result keeps in ``details``.
PARTIAL_LIMIT = 5
#: Lists in ``details.kwargs`` (a category set) are cut to this many items.
KWARG_LIST_LIMIT = 20
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": PARTIAL_LIMIT}
#: How long a run waits for another run of the same model (same process) before giving up.
RUN_LOCK_TIMEOUT_SECONDS = 300.0

_META_KEY = "driftline_index"


@dataclass(frozen=True)
class PlannedExpectation:
    """One GX expectation and the result row it becomes (``metric`` and ``feature`` are the row's key)."""

    type: str
    kwargs: dict[str, Any]
    metric: str
    feature: str | None
    severity: Status
    origin: str  # "builtin" or "user"

    def fingerprint_data(self) -> list[Any]:
        return [self.type, self.kwargs, self.metric, self.feature, str(self.severity)]


# --------------------------------------------------------------------------------------------------
# Planning: config + reference profile -> expectations (pure, no GX)
# --------------------------------------------------------------------------------------------------


def _severity(level: str) -> Status:
    return Status.WARNING if level == "warning" else Status.ALERT


def _mostly(allowed_share: float) -> float:
    """GX's ``mostly`` (share that must pass) from an allowed unexpected share, clipped to [0, 1]."""
    return round(1.0 - min(max(allowed_share, 0.0), 1.0), 12)


def value_kinds(frame: pd.DataFrame, columns: list[str]) -> dict[str, str]:
    """What each column holds: ``number``, ``bool`` or ``text`` (judged on its non-null values).

    The reference profile stores categories as text (``str(value)``); a numeric or boolean column
    must be compared with numbers or booleans, or every value would look unseen.
    """
    kinds = {}
    for column in columns:
        if column not in frame:
            continue
        series = frame[column]
        if pd.api.types.is_bool_dtype(series.dtype):
            kinds[column] = "bool"
        elif pd.api.types.is_numeric_dtype(series.dtype):
            kinds[column] = "number"
        elif series.dtype == object:
            inferred = pd.api.types.infer_dtype(series.dropna().head(1000), skipna=True)
            if inferred == "boolean":
                kinds[column] = "bool"
            elif inferred in ("integer", "floating", "decimal", "mixed-integer-float"):
                kinds[column] = "number"
            else:
                kinds[column] = "text"
        else:
            kinds[column] = "text"
    return kinds


def _category_values(categories: list[str], kind: str | None) -> list[Any]:
    """The reference categories (stored as text) as the values the window's column holds."""
    if kind == "bool":
        return [c == "True" for c in categories if c in ("True", "False")]
    if kind == "number":
        values = []
        for category in categories:
            try:
                values.append(float(category))
            except ValueError:  # text cannot occur in a numeric column
                continue
        return values
    return list(categories)


def plan_expectations(
    model_config: ModelConfig, reference: ModelProfile | None, kinds: Mapping[str, str] | None = None
) -> list[PlannedExpectation]:
    """The expectations for one model, in a stable order, each with a unique (metric, feature).

    Parameters
    ----------
    model
        The model's config; ``model.quality`` holds the tolerances and the user's expectations.
    reference
        The reference profile. ``None``, an empty reference, or a feature missing from it skips the
        reference-based expectations (feature nulls, category set, value range) for that feature.
    kinds
        :func:`value_kinds` of the window's categorical columns, so the reference categories are
        compared as numbers (booleans) in a numeric (boolean) column. Default: text.

    Notes
    -----
    A numeric feature whose reference has no finite value gets no range; a categorical feature
    whose reference overflowed ``MAX_STORED_CATEGORIES`` gets no category set (it is incomplete).
    A constant reference gives the range ``[c, c]``. The timestamp range uses the suite parameters
    ``window_start``/``window_end``, so the plan does not depend on the window.
    """
    quality = model_config.quality
    builtin = _severity(quality.severity)
    kinds = kinds or {}
    planned: list[tuple[str, dict[str, Any], str | None, Status, str]] = []

    def add(kind: str, kwargs: dict[str, Any], feature: str | None, severity: Status = builtin) -> None:
        planned.append((kind, kwargs, feature, severity, "builtin"))

    for column in model_config.columns():
        add("expect_column_to_exist", {"column": column}, column)

    min_rows = quality.min_rows if quality.min_rows is not None else 1
    add("expect_table_row_count_to_be_between", {"min_value": min_rows, "max_value": quality.max_rows}, None)

    usable = reference if reference is not None and reference.row_count > 0 else None
    features = set(model_config.features.numeric) | set(model_config.features.categorical)
    never_null_checked = {model_config.label_column, model_config.error_column} - {None}
    for column in model_config.columns():
        if column in never_null_checked:
            continue
        if column in features:
            profile = usable.features.get(column) if usable is not None else None
            if profile is None:
                continue
            rate = profile.nulls / usable.row_count  # type: ignore[union-attr]
        else:
            rate = 0.0
        add(
            "expect_column_values_to_not_be_null",
            {"column": column, "mostly": _mostly(rate + quality.null_tolerance)},
            column,
        )

    if usable is not None:
        for column in model_config.features.categorical:
            profile = usable.features.get(column)
            if not isinstance(profile, CategoricalProfile) or profile.overflow or not profile.counts:
                continue
            add(
                "expect_column_values_to_be_in_set",
                {
                    "column": column,
                    "value_set": _category_values(sorted(profile.counts), kinds.get(column)),
                    "mostly": _mostly(quality.new_category_tolerance),
                },
                column,
            )
        for column in model_config.features.numeric:
            profile = usable.features.get(column)
            if not isinstance(profile, NumericProfile):
                continue
            low, high = profile.minimum, profile.maximum
            if not (math.isfinite(low) and math.isfinite(high)):
                continue
            margin = quality.range_widening * (high - low)
            add("expect_column_values_to_be_between", {"column": column, "min_value": low - margin,
                                                       "max_value": high + margin}, column)

    if model_config.id_column:
        add("expect_column_values_to_be_unique", {"column": model_config.id_column}, model_config.id_column)

    add(
        "expect_column_values_to_be_between",
        {
            "column": model_config.timestamp_column,
            "min_value": {"$PARAMETER": WINDOW_START},
            "max_value": {"$PARAMETER": WINDOW_END},
            "strict_max": True,
        },
        model_config.timestamp_column,
    )

    for spec in quality.expectations:
        target = spec.kwargs.get("column")
        planned.append((spec.type, dict(spec.kwargs), target if isinstance(target, str) else None,
                        _severity(spec.severity), "user"))

    return _unique_keys(planned)


def _unique_keys(planned: list[tuple[str, dict[str, Any], str | None, Status, str]]) -> list[PlannedExpectation]:
    """Name each result ``metric`` after its type; a second one on the same feature gets ``#n``.

    For a user expectation ``n`` is its 1-based position in ``quality.expectations``, so its name
    stays put when built-in expectations come and go.
    """
    used: set[tuple[str, str | None]] = set()
    out = []
    user_position = 0
    for kind, kwargs, feature, severity, origin in planned:
        if origin == "user":
            user_position += 1
        metric = kind
        counter = user_position if origin == "user" else 2
        while (metric, feature) in used:
            metric = f"{kind}#{counter}"
            counter += 1
        used.add((metric, feature))
        out.append(PlannedExpectation(kind, kwargs, metric, feature, severity, origin))
    return out


def fingerprint(planned: list[PlannedExpectation]) -> str:
    data = json.dumps([p.fingerprint_data() for p in planned], sort_keys=True, default=str)
    return hashlib.sha256(data.encode()).hexdigest()


# --------------------------------------------------------------------------------------------------
# GX: one ephemeral context per process, one pandas data source per model, cached suites
# --------------------------------------------------------------------------------------------------

_LOCK = threading.Lock()  # guards the context and the caches below (GX context mutation)
_GX_RUN_LOCK = threading.Lock()  # one GX validation at a time (GX's suite-parameter parser is not thread-safe)
_CONTEXT: Any = None
_SOURCES: dict[str, Any] = {}  # model name -> its batch definition


def new_gx_context() -> Any:
    """A fresh ephemeral GX context: in memory, no Data Docs, no analytics, no progress bars."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def gx_context() -> Any:
    """The process's GX context, created on first use and shared by every model."""
    global _CONTEXT
    with _LOCK:
        if _CONTEXT is None:
            _CONTEXT = new_gx_context()
        return _CONTEXT


def _source_name(model_name: str) -> str:
    return f"driftline_{model_name}"


def _batch_definition(model_name: str) -> Any:
    """The model's pandas data source (GX keeps a batch's data in its source's execution engine)."""
    context = gx_context()
    with _LOCK:
        definition = _SOURCES.get(model_name)
        if definition is None:
            source = context.data_sources.add_or_update_pandas(_source_name(model_name))
            definition = source.add_dataframe_asset("window").add_batch_definition_whole_dataframe("window")
            _SOURCES[model_name] = definition
        return definition


def build_expectation(planned: PlannedExpectation, index: int) -> Any:
    """The GX expectation object for one planned expectation, tagged with its index in the plan."""
    from driftline.config.expectations import expectation_class

    kwargs = dict(planned.kwargs)
    meta = dict(kwargs.pop("meta", None) or {})
    meta[_META_KEY] = index
    return expectation_class(planned.type)(**kwargs, meta=meta)


def build_suite(name: str, planned: list[PlannedExpectation]) -> tuple[Any, dict[int, str]]:
    """A GX suite of the planned expectations, and the errors of those GX refused to build (by index)."""
    import great_expectations as gx

    expectations, errors = [], {}
    for index, item in enumerate(planned):
        try:
            expectations.append(build_expectation(item, index))
        except Exception as exc:  # validated at config load; a GX upgrade may still disagree
            errors[index] = f"{type(exc).__name__}: {exc}"[:500]
    return gx.ExpectationSuite(name=name, expectations=expectations), errors


def window_bounds(model_config: ModelConfig, window: Window, block: pd.DataFrame) -> dict[str, Any]:
    """``window_start``/``window_end`` for the suite, naive when the block's timestamp column is naive."""
    start, end = window.start, window.end
    column = block.get(model_config.timestamp_column)
    if column is not None and isinstance(column.dtype, np.dtype) and column.dtype.kind == "M":
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    return {WINDOW_START: start, WINDOW_END: end}


def window_parameters(context: WindowContext) -> dict[str, Any]:
    """:func:`window_bounds` of the context's frame."""
    return window_bounds(context.model, context.window, context.frame)


def _release(definition: Any) -> None:
    """Drop the window's frame that GX's execution engine keeps after a run (it would live until the next)."""
    try:
        manager = definition.data_asset.datasource.get_execution_engine().batch_manager
        manager.reset_batch_cache()
        manager.batch_data_cache.clear()  # reset_batch_cache() leaves the data itself cached
    except Exception:  # only a memory optimisation
        pass


def run_suite(model_config: ModelConfig, frame: pd.DataFrame, suite: Any, parameters: dict[str, Any]) -> list[Any]:
    """GX's own results of ``suite`` on the whole ``frame``: the reference the streamed evaluation is
    tested against (``tests/checks/test_streamed_completeness.py``) and benchmarked against
    (``bench/gx_timing.py``); the hourly run does not call it.

    Runs are serialised process-wide: GX 1.24 is not thread-safe when two validations parse suite
    parameters at once (pyparsing's ``SuiteParameterParser.push_first() missing 'toks'``).
    ``ValidationDefinition.run`` would keep every result in the context's in-memory store;
    ``Batch.validate`` would load (and hash) the frame twice.
    """
    from great_expectations.validator.v1_validator import Validator

    definition = _batch_definition(model_config.name)
    # A run abandoned by a timeout keeps the lock; wait a while, then report instead of hanging.
    if not _GX_RUN_LOCK.acquire(timeout=RUN_LOCK_TIMEOUT_SECONDS):
        raise TimeoutError(f"another GX validation has held GX for {RUN_LOCK_TIMEOUT_SECONDS:.0f} s")
    try:
        validator = Validator(definition, result_format=RESULT_FORMAT, batch_parameters={"dataframe": frame})
        outcome = validator.validate_expectation_suite(suite, parameters)
    finally:
        _release(definition)
        _GX_RUN_LOCK.release()
    return list(outcome.results)


def gx_results(context: WindowContext) -> list[Result]:
    """The window's results from GX's own validation of ``context.frame`` (the frame whole)."""
    model = context.model
    frame = context.frame
    planned = plan_expectations(model, context.reference, value_kinds(frame, model.features.categorical))
    suite, errors = build_suite(f"driftline_{model.name}_{fingerprint(planned)[:12]}", planned)
    parameters = window_parameters(context)
    by_index: dict[int, Any] = {}
    for gx_result in run_suite(model, frame, suite, parameters):
        meta = gx_result.expectation_config.meta or {}
        if _META_KEY in meta:
            by_index[int(meta[_META_KEY])] = gx_result
    results = [
        to_result(context, item, by_index.get(index), parameters, errors.get(index))
        for index, item in enumerate(planned)
    ]
    return judge_quality_family(context, planned, results)


# --------------------------------------------------------------------------------------------------
# GX results -> Driftline results
# --------------------------------------------------------------------------------------------------


def jsonable(value: Any, limit: int | None = None) -> Any:
    """A JSON-safe copy: numpy scalars to Python, NaN/inf to None, instants to ISO 8601, long lists cut."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating, Decimal)):
        number = float(value)
        return number if math.isfinite(number) else None
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, (datetime, date, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray)):
        items = list(value)
        if limit is not None and len(items) > limit:
            return [jsonable(v, limit) for v in items[:limit]] + [f"... {len(items) - limit} more"]
        return [jsonable(v, limit) for v in items]
    return str(value)


def _resolved(kwargs: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, dict) and set(value) == {"$PARAMETER"}:
            value = parameters.get(value["$PARAMETER"], value)
        out[key] = value
    return out


def _error_of(exception_info: Any) -> str | None:
    """The exception message of a GX result, if it raised (GX nests it per metric sometimes)."""
    if not exception_info:
        return None
    info = dict(exception_info)
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "expectation raised")
    for nested in info.values():
        if isinstance(nested, Mapping) and nested.get("raised_exception"):
            return str(nested.get("exception_message") or "expectation raised")
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, (bool, np.bool_)) or value is None:
        return None
    if isinstance(value, (int, float, np.integer, np.floating, Decimal)):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _threshold(kwargs: dict[str, Any], observed: float | None, is_map: bool) -> float | None:
    """The bound the verdict used: the allowed unexpected share, or the min/max that was crossed."""
    if is_map:
        mostly = kwargs.get("mostly", 1.0)
        return round(1.0 - float(mostly), 12) if isinstance(mostly, (int, float)) else None
    low, high = _number(kwargs.get("min_value")), _number(kwargs.get("max_value"))
    if observed is not None and high is not None and observed > high:
        return high
    if low is not None:
        return low
    if high is not None:
        return high
    return _number(kwargs.get("value"))


def to_result(
    context: WindowContext, planned: PlannedExpectation, gx_result: Any | None, parameters: dict[str, Any],
    error: str | None = None,
) -> Result:
    """One ``data_quality`` result from one GX validation result (or from an error)."""
    kwargs = _resolved(planned.kwargs, parameters)
    details: dict[str, Any] = {"expectation": planned.type, "kwargs": jsonable(kwargs, KWARG_LIST_LIMIT)}
    if planned.origin == "user":
        details["user_defined"] = True
    if gx_result is not None:
        error = error or _error_of(gx_result.exception_info)
    if error is not None or gx_result is None:
        details["reason"] = "expectation could not be evaluated"
        details["error"] = (error or "GX returned no result for it")[:1000]
        return context.result(kind=Kind.DATA_QUALITY, metric=planned.metric, feature=planned.feature, value=None,
                              threshold=_threshold(kwargs, None, False), status=Status.UNKNOWN, details=details)

    outcome = dict(gx_result.result or {})
    is_map = "element_count" in outcome and "unexpected_count" in outcome
    if is_map:
        percent = outcome.get("unexpected_percent")
        value = None if percent is None else float(percent) / 100.0
        for key in ("element_count", "unexpected_count", "missing_count"):
            if key in outcome:
                details[key] = jsonable(outcome[key])
        partial = list(outcome.get("partial_unexpected_list") or [])
        details["partial_unexpected_list"] = jsonable(partial[:PARTIAL_LIMIT])
        if not outcome.get("element_count"):
            details["reason"] = "no rows in this window"
    else:
        observed = outcome.get("observed_value")
        value = _number(observed)
        if observed is not None and value is None:
            details["observed_value"] = jsonable(observed, KWARG_LIST_LIMIT)
        if planned.type == "expect_column_to_exist":
            value = 1.0 if gx_result.success else 0.0
    status = Status.OK if gx_result.success else planned.severity
    return context.result(kind=Kind.DATA_QUALITY, metric=planned.metric, feature=planned.feature, value=value,
                          threshold=_threshold(kwargs, value, is_map), status=status, details=details)


# --------------------------------------------------------------------------------------------------
# The monitor
# --------------------------------------------------------------------------------------------------


@dataclass
class CompletenessFold:
    """The completeness suite of one (model, window) and its tallies so far: fold blocks, then finish.

    ``planned`` are the expectations (``plan_expectations``), ``parameters`` the window bounds as the
    suite sees them, ``suite`` the mergeable tallies (``driftline.stats.expectations.StreamedSuite``).
    """

    planned: list[PlannedExpectation]
    parameters: dict[str, Any]
    suite: StreamedSuite

    def fold(self, block: pd.DataFrame) -> CompletenessFold:
        """Add the next block of the window's rows (blocks in row order)."""
        self.suite.fold(block)
        return self

    def merge(self, later: CompletenessFold) -> CompletenessFold:
        """This fold's rows followed by ``later``'s (same model, reference and window)."""
        return CompletenessFold(self.planned, self.parameters, self.suite.merge(later.suite))


def begin_completeness(
    model_config: ModelConfig, reference: ModelProfile | None, window: Window, first_block: pd.DataFrame
) -> CompletenessFold:
    """An empty fold for the window; ``first_block`` (any block, even empty) gives the columns' value
    kinds and whether the timestamp is naive. Blocks of one streamed read share their dtypes."""
    kinds = value_kinds(first_block, model_config.features.categorical)
    planned = plan_expectations(model_config, reference, kinds)
    parameters = window_bounds(model_config, window, first_block)
    expectations = [(item.type, _resolved(item.kwargs, parameters)) for item in planned]
    return CompletenessFold(planned, parameters, StreamedSuite(expectations, meta={"kinds": kinds,
                                                                                     "parameters": parameters}))


#: Key of the window's completeness tallies in ``ModelProfile.states`` (folded with the profile).
COMPLETENESS_STATE = "completeness"


def completeness_streams(model_config: ModelConfig) -> bool:
    """Whether a window of ``model`` folds completeness tallies with its profile: ``quality.enabled`` and
    ``monitors:`` absent or naming the built-in ``completeness``."""
    return model_config.quality.enabled and model_config.runs_builtin("completeness")


def completeness_state(
    block: pd.DataFrame, model_config: ModelConfig, reference: ModelProfile | None, window: Window
) -> StreamedSuite:
    """The completeness tallies of one block of the window (merge the blocks' in row order)."""
    return begin_completeness(model_config, reference, window, block).fold(block).suite


def _streamed_fold(context: WindowContext) -> CompletenessFold | None:
    """The fold streamed with the window's profile, if it was planned from this context's reference."""
    state = context.current.states.get(COMPLETENESS_STATE) if context.current is not None else None
    if not isinstance(state, StreamedSuite) or not state.expectations or "kinds" not in state.meta:
        return None
    parameters = state.meta["parameters"]
    planned = plan_expectations(context.model, context.reference, state.meta["kinds"])
    expectations = [(item.type, _resolved(item.kwargs, parameters)) for item in planned]
    if repr(expectations) != repr(state.expectations):
        # Folded against another reference (a seasonal one replaces the profiles): fold the rows instead.
        context.logger.info("completeness: the streamed tallies were planned on another reference; reading rows")
        return None
    return CompletenessFold(planned, parameters, state)


def completeness_results(context: WindowContext, fold: CompletenessFold) -> list[Result]:
    """The ``data_quality`` results of a folded window (see :func:`evaluate_completeness`)."""
    results = [
        to_result(context, item, outcome, fold.parameters)
        for item, outcome in zip(fold.planned, fold.suite.results(), strict=True)
    ]
    return judge_quality_family(context, fold.planned, results)


def evaluate_completeness(context: WindowContext) -> list[Result]:
    """Completeness and validity of the window: one ``data_quality`` result per expectation.

    Parameters
    ----------
    context
        The window: ``context.frame`` holds its rows with every configured column,
        ``context.reference`` the reference profile (may be ``None``).

    Returns
    -------
    list[Result]
        ``metric`` is the expectation type (``#n`` appended when a type repeats on a column),
        ``feature`` its column (``None`` for table-level ones), ``value`` the unexpected share for a
        column-map expectation (the row count for the row-count one), ``threshold`` the allowed
        share or the bound crossed, ``status`` ``ok``, else ``warning``/``alert`` by the configured
        severity, ``unknown`` when it could not be evaluated (the error in ``details``).

    Notes
    -----
    A streamed window brings its tallies in ``context.current.states["completeness"]`` (folded with
    the profile, block by block: :func:`completeness_state`) and no rows are read; otherwise the frame
    is folded as one block. Both give the same results.
    An empty window fails the row-count expectation only: column-map expectations on no rows pass
    with ``value`` None and ``details.reason``. ``quality.enabled: false`` returns no results.

    Examples
    --------
    >>> results = evaluate_completeness(context)          # doctest: +SKIP
    >>> sorted((r.metric, r.feature) for r in results if r.status != "ok")   # doctest: +SKIP
    [('expect_column_values_to_not_be_null', 'income')]
    """
    model = context.model
    if not model.quality.enabled:
        return []
    fold = _streamed_fold(context)
    if fold is None:
        frame = context.frame
        fold = begin_completeness(model, context.reference, context.window, frame).fold(frame)
    return completeness_results(context, fold)


# --------------------------------------------------------------------------------------------------
# The window-level significance gate
# --------------------------------------------------------------------------------------------------

#: Expectations whose failure can happen by chance on unchanged data, and are therefore tested.
TESTED_EXPECTATIONS = (
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_be_between",
)


def chance_rate(model_config: ModelConfig, planned: PlannedExpectation, reference: ModelProfile | None) -> float | None:
    """The share of unexpected values an *unchanged* window has on average, from the reference.

    Nulls: the reference's null rate. A category set: the reference's Good-Turing missing mass
    (categories seen once / rows): the chance that a row's category is one the reference, by
    sampling alone, never saw — large for a Zipf-like column with rare levels. A value range:
    ``2 / (m + 1)`` for a reference of ``m`` values, the chance that a new value falls outside the
    reference's extremes at all (an upper bound: the range is widened). ``None``: not a tested check.
    """
    if planned.origin != "builtin" or planned.type not in TESTED_EXPECTATIONS or planned.feature is None:
        return None
    if planned.feature == model_config.timestamp_column:
        return None
    if reference is None or reference.row_count <= 0:
        return None
    profile = reference.features.get(planned.feature)
    if planned.type == "expect_column_values_to_not_be_null":
        return profile.nulls / reference.row_count if profile is not None else 0.0
    if planned.type == "expect_column_values_to_be_in_set" and isinstance(profile, CategoricalProfile):
        seen_once = sum(1 for count in profile.counts.values() if count == 1)
        return seen_once / profile.n if profile.n else None
    if planned.type == "expect_column_values_to_be_between" and isinstance(profile, NumericProfile):
        return 2.0 / (profile.n + 1)
    return None


def judge_quality_family(
    context: WindowContext, planned: list[PlannedExpectation], results: list[Result]
) -> list[Result]:
    """Keep a failed null / category-set / value-range expectation only if chance cannot explain it.

    GX fails ``expect_column_values_to_not_be_null`` at 300 rows when a column with 25% nulls has
    30% this hour (two standard errors), a category set when a Zipf column's rare level turns up,
    a value range when a heavy-tailed feature passes the reference's maximum — all on unchanged
    data. Each such failure gets a one-sided binomial p-value of its unexpected count against
    :func:`chance_rate`; the p-values of the window's tested checks are Holm-adjusted together, and a
    failure stands at its severity only if the adjusted p-value is below that level's alpha (the
    model's ``drift.alpha`` for a warning, its alert alpha for an alert; a configured ``alert``
    with only a warning's evidence is a warning). The other expectations are rules and keep GX's
    verdict. Every flagged result gets its sentence in ``details.reason``.
    """
    drift = context.model.drift
    threshold = Threshold(1.0, 2.0, drift.alpha, drift.alert_alpha)
    members, effects, pvalues = [], [], []
    for i, (item, result) in enumerate(zip(planned, results, strict=True)):
        rate = chance_rate(context.model, item, context.reference)
        if rate is None or result.status == Status.UNKNOWN:
            continue
        elements = int(result.details.get("element_count") or 0)
        nulls_count = item.type != "expect_column_values_to_not_be_null"
        missing = int(result.details.get("missing_count") or 0) if nulls_count else 0
        n, unexpected = elements - missing, int(result.details.get("unexpected_count") or 0)
        if n <= 0:
            continue
        p_value = float(stats.binom.sf(unexpected - 1, n, rate)) if rate > 0 else (0.0 if unexpected else 1.0)
        if _far_outside(item, result, context.reference):
            p_value = 0.0  # a value 100 reference spans beyond the range is a defect, not a tail
        members.append((i, rate, n, unexpected, p_value))
        effects.append(0.0 if result.status == Status.OK else 2.0 if result.status == Status.ALERT else 1.0)
        pvalues.append(p_value)
    statuses, adjusted = judge_family(effects, pvalues, [threshold] * len(members))
    out = list(results)
    for (i, rate, n, unexpected, p_value), status, p_adj in zip(members, statuses, adjusted, strict=True):
        result = results[i]
        details = dict(result.details) | {
            "chance_rate": rate,
            "p_value": p_value,
            "p_value_adjusted": p_adj,
            "level_reached": str(result.status),
            **threshold.as_details(),
        }
        if result.status != Status.OK and status == Status.OK:
            details["reason"] = (
                f"{unexpected:,} of {n:,} rows unexpected; chance explains it (p = {format_number(p_adj)})"
            )
        out[i] = replace(result, status=status, details=details)
    return [_with_quality_reason(item, r) for item, r in zip(planned, out, strict=True)]


#: How many reference spans beyond the range make one value a defect whatever the chance model says.
FAR_SPANS = 100


def _far_outside(item: PlannedExpectation, result: Result, reference: ModelProfile | None) -> bool:
    """Whether an out-of-range example lies :data:`FAR_SPANS` reference spans (max - min) beyond the
    reference's extremes: a heavy tail passes the maximum now and then (a Pareto tail with index 1.5
    goes one span past it in ~0.2% of 300-row hours, and every hour at 1M rows); a sentinel or a unit
    error (10,000,000 where incomes are in the tens of thousands) is far beyond any tail."""
    if item.type != "expect_column_values_to_be_between" or reference is None or item.feature is None:
        return False
    profile = reference.features.get(item.feature)
    if not isinstance(profile, NumericProfile):
        return False
    if not (math.isfinite(profile.minimum) and math.isfinite(profile.maximum)):
        return False
    span = profile.maximum - profile.minimum
    for value in result.details.get("partial_unexpected_list") or []:
        number = _number(value)
        far = FAR_SPANS * span
        if number is not None and (number > profile.maximum + far or number < profile.minimum - far):
            return True
    return False


def _with_quality_reason(item: PlannedExpectation, result: Result) -> Result:
    if result.status not in (Status.WARNING, Status.ALERT) or result.details.get("error"):
        return result
    d = result.details
    what = item.type.removeprefix("expect_").replace("_", " ")
    subject = f"{result.feature}: " if result.feature else ""
    if "unexpected_count" in d:
        n = int(d.get("element_count") or 0)
        text = f"{subject}{what} failed ({result.status}): {int(d['unexpected_count']):,} of {n:,} rows unexpected"
        if d.get("chance_rate") is not None:
            text += f", {format_number(d['chance_rate'])} expected by chance"
        if (p := format_pvalue(d.get("p_value_adjusted"))) is not None:
            text += f", {p}"
        if d.get("partial_unexpected_list"):
            text += f", e.g. {', '.join(str(v) for v in d['partial_unexpected_list'][:3])}"
    else:
        text = f"{subject}{what} failed ({result.status}): observed {format_number(result.value)}"
        if d.get("reason"):
            text += f"; {d['reason']}"
    return replace(result, details=dict(d) | {"reason": text})
