"""Reference and window profiles: fit the reference once per definition, profile each window."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from prefect import task
from sqlalchemy.engine import Engine

from driftline.checks.completeness import COMPLETENESS_STATE, completeness_state, completeness_streams
from driftline.config.monitors import ModelConfig
from driftline.core.window import Window
from driftline.stats.concept import RelationState, ScoreCalibration, fit_calibration
from driftline.stats.model_profile import (
    BinPositions,
    ModelProfile,
    fit_model_profile,
    numeric_values,
    window_model_profile,
)
from driftline.stats.reference_state import ReferenceState, SeasonalProvenance
from driftline.storage.profiles import load_reference, store_reference
from driftline.tasks._prefect import NO_RETRIES, RETRY_TRANSIENT
from driftline.tasks.estimation import ESTIMATION, active, fit_estimator, window_state
from driftline.tasks.extract import iter_rows
from driftline.tasks.operational import OPERATIONAL_STATE, operational_state
from driftline.tasks.performance import (
    PERFORMANCE_STATE,
    BlockSegments,
    performance_streams,
    reference_performance,
    window_performance,
)
from driftline.tasks.reference_source import read_reference_rows
from driftline.tasks.references import ReferenceVersion, resolve_reference
from driftline.tasks.validity import SCORE_RANGE_STATE, score_range_state


def profiled_columns(model_config: ModelConfig) -> tuple[list[str], list[str]]:
    """Numeric and categorical columns of the profile: the features, then the targets."""
    columns = model_config.features.items() + model_config.target_columns()
    return [c for c, k in columns if k == "numeric"], [c for c, k in columns if k == "categorical"]


def positive_indicator(frame: pd.DataFrame, model_config: ModelConfig) -> np.ndarray:
    """1.0 where the label is the positive class, 0.0 where it is another class, NaN where unknown."""
    label = model_config.label_field
    if label is None or label not in frame:
        return np.full(len(frame), np.nan)
    values = frame[label]
    known = values.notna().to_numpy()
    positive = model_config.performance.positive_label
    as_number = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if isinstance(positive, int | float) and not isinstance(positive, bool):
        hits = as_number == float(positive)
    else:
        hits = values.astype(str).to_numpy() == str(positive)
    return np.where(known, hits.astype(float), np.nan)


#: Key of the window's concept state in ``ModelProfile.states``.
CONCEPT_STATE = "concept"


def concept_streams(model_config: ModelConfig) -> bool:
    """Whether a window of ``model`` carries a concept state: ``monitors:`` absent or naming ``concept_drift``."""
    return model_config.runs_builtin("concept_drift")


def relation_state(frame: pd.DataFrame, model_config: ModelConfig, reference: ModelProfile | None) -> RelationState:
    """The concept state of some rows of a window (a block or all): labelled rows, and the label rate
    per reference score bin when the model has a score, a label and the reference its summary."""
    label = model_config.label_field
    labelled = int(frame[label].notna().sum()) if label and label in frame else 0
    calibration = reference.fitted.calibration if reference is not None else None
    if not (model_config.task == "classification" and model_config.score_column and label and calibration):
        return RelationState(labelled, np.zeros(0), np.zeros(0))
    score = (
        numeric_values(frame[model_config.score_column])
        if model_config.score_column in frame
        else np.full(len(frame), np.nan)
    )
    return RelationState.of(calibration, labelled, score, positive_indicator(frame, model_config))


def fit_score_calibration(frame: pd.DataFrame, model_config: ModelConfig) -> ScoreCalibration | None:
    """The reference's label rate per score bin (classifiers with a score and a label; else None)."""
    if model_config.task == "classification" and model_config.score_column and model_config.label_field:
        return fit_calibration(
            numeric_values(frame[model_config.score_column]), positive_indicator(frame, model_config)
        )
    return None


def fit_reference(frame: pd.DataFrame, model_config: ModelConfig) -> ModelProfile:
    """Profiles of every feature and target column, plus each built-in's typed reference state:
    calibration, performance and the estimator (see :class:`~driftline.stats.reference_state.ReferenceState`)."""
    numeric, categorical = profiled_columns(model_config)
    profile = fit_model_profile(frame, numeric, categorical)
    profile.fitted = ReferenceState(
        calibration=fit_score_calibration(frame, model_config),
        performance=reference_performance(model_config, frame, profile) if model_config.label_field else None,
    )
    estimator = fit_estimator(frame, model_config, profile)
    if estimator is not None:
        profile.fitted = replace(profile.fitted, estimator=estimator)
    return profile


@dataclass
class ReferenceChoice:
    """The reference version a window is judged against, its profile, and why there is none (if so)."""

    version: ReferenceVersion
    profile: ModelProfile | None
    #: Why ``profile`` is None: warm-up, an incomplete or empty range, fewer than ``reference.min_rows`` rows.
    reason: str | None = None


def choose_reference(
    data_engine: Engine,
    results_engine: Engine,
    model_config: ModelConfig,
    window: Window | None = None,
    *,
    latest: bool = False,
    version: int | None = None,
) -> ReferenceChoice:
    """Resolve the reference version for ``window`` (``resolve_reference``), then load its stored
    profile, fitting and storing it once if missing.

    No profile (with the reason) when the version is warming up or its range has not ended yet (a
    profile fitted now would be stored incomplete), when the range has no rows (nothing is stored, so
    rows logged into it later are still picked up), or when it has fewer than ``reference.min_rows``.
    """
    window_start = window.start if window is not None else None
    chosen = resolve_reference(results_engine, model_config, window_start, latest=latest, version=version)
    not_ready = chosen.not_ready_reason(window_start)
    if not_ready is not None:
        return ReferenceChoice(chosen, None, not_ready)
    applied = chosen.apply(model_config)
    definition = applied.reference_definition(window_start)
    stored = load_reference(results_engine, model_config.name, definition)
    if stored is None:
        span = Window(*applied.reference.span_for(window_start))
        frame = read_reference_rows(data_engine, applied, span)
        if frame.empty:
            return ReferenceChoice(chosen, None, "reference range has no rows")
        stored = store_reference(results_engine, model_config.name, definition, span, fit_reference(frame, applied))
    stored.fitted = replace(stored.fitted, definition=definition)
    if stored.row_count < model_config.reference.min_rows:
        label = "the configured reference" if chosen.configured else f"reference version {chosen.version}"
        return ReferenceChoice(
            chosen,
            None,
            f"{label} ({chosen.start.isoformat()} .. {chosen.end.isoformat()}) has {stored.row_count} rows, "
            f"fewer than reference.min_rows={model_config.reference.min_rows}: refused",
        )
    return ReferenceChoice(chosen, stored, None)


def ensure_reference(
    data_engine: Engine, results_engine: Engine, model_config: ModelConfig, window: Window | None = None
) -> ModelProfile | None:
    """The reference profile ``window`` is judged against (``choose_reference``), or ``None`` (no usable
    reference: warm-up, empty, incomplete or refused as too small)."""
    return choose_reference(data_engine, results_engine, model_config, window).profile


def profile_window(
    frame: pd.DataFrame, reference: ModelProfile | None, model_config: ModelConfig, window: Window | None = None
) -> ModelProfile:
    """The window's profile on the reference bins (or just its row count without a reference); given the
    ``window``, with its completeness tallies too (the suite's window range needs its bounds)."""
    positions: BinPositions = {}
    if reference is None:
        profile = ModelProfile(len(frame))
    else:
        profile = window_model_profile(frame, reference, positions)
    if window is not None and completeness_streams(model_config):
        # Completeness (the GX suite) folds with the profile: no frame, no GX call per window.
        profile.states[COMPLETENESS_STATE] = completeness_state(frame, model_config, reference, window)
    # Each feature's segment codes, computed once for the block and shared by the folds that count per segment.
    segments = BlockSegments(frame, reference, positions) if reference is not None else None
    if performance_streams(model_config):
        # The realised performance folds with the profile too: it streams, and days merge from hours.
        profile.states[PERFORMANCE_STATE] = window_performance(frame, model_config, reference, segments=segments)
    if concept_streams(model_config):
        profile.states[CONCEPT_STATE] = relation_state(frame, model_config, reference)
    if model_config.runs_builtin("operational"):
        profile.states[OPERATIONAL_STATE] = operational_state(frame, model_config)
    if model_config.runs_builtin("validity") and model_config.task == "classification" and model_config.score_column:
        profile.states[SCORE_RANGE_STATE] = score_range_state(frame, model_config)
    if reference is None:
        return profile
    # Only for a model that runs the estimate: a drift-only model's streamed profile stays as cheap as before.
    state = window_state(frame, model_config, reference, segments) if active(model_config) else None
    if state is not None:
        # Estimated performance folds with the profile, so it streams and merges into days like drift.
        profile.states[ESTIMATION] = state
    return profile


def stream_window_profile(
    data_engine: Engine, model_config: ModelConfig, window: Window, reference: ModelProfile | None
) -> ModelProfile:
    """``profile_window`` of the window's rows, folded block by block as they stream out of PostgreSQL:
    memory holds a block (about 100,000 rows at 20 columns), never the window. Equal to profiling the whole frame
    (counts, nulls, extremes exactly; the moment sums up to float rounding)."""
    # Only the profiled columns (features and targets, which include the prediction and label the
    # residual derives from): not the timestamp or id, a tenth of the CSV and a parse per block.
    numeric, categorical = profiled_columns(model_config)
    # Completeness checks every configured column (the id's uniqueness, the timestamp's range).
    only = None if completeness_streams(model_config) else numeric + categorical
    profile: ModelProfile | None = None
    for block in iter_rows(data_engine, model_config, window.start, window.end, only=only):
        part = profile_window(block, reference, model_config, window)
        profile = part if profile is None else profile.merge(part)
    assert profile is not None  # iter_rows yields at least one block
    return profile


ensure_reference_task = task(ensure_reference, name="reference-profile", **RETRY_TRANSIENT)
choose_reference_task = task(choose_reference, name="reference-profile", **RETRY_TRANSIENT)
profile_window_task = task(profile_window, name="profile-window", **NO_RETRIES)
stream_window_profile_task = task(stream_window_profile, name="stream-window-profile", **RETRY_TRANSIENT)


def seasonal_reference(
    engine: Engine, model_config: ModelConfig, reference: ModelProfile, window: Window
) -> ModelProfile:
    """The same hour of the day (or week) over the last N days (weeks), merged from the stored hourly
    profiles on the reference's bins: the reference a feature with a daily cycle is judged against.

    Fewer than ``drift.min_rows`` such rows stored (a new model): the fitted ``reference`` itself, with
    ``fitted.seasonal.used`` false. Reference-level facts (performance, calibration) are the
    fitted reference's either way; only the per-column profiles change.
    """
    from datetime import timedelta
    from functools import reduce

    from driftline.storage.profiles import load_window_profiles

    rule = model_config.seasonal_reference
    assert rule is not None
    step = timedelta(days=1) if rule.every == "day" else timedelta(weeks=1)
    definition = reference.stored_definition()
    hours: list[ModelProfile] = []
    for back in range(1, rule.last + 1):
        start = window.start - back * step
        hours += load_window_profiles(
            engine, model_config.name, definition, reference, start, start + timedelta(hours=1)
        )
    merged = reduce(lambda a, b: a.merge(b), hours) if hours else ModelProfile(0)
    used = merged.row_count >= model_config.drift.min_rows
    seasonal = replace(
        reference.fitted, seasonal=SeasonalProvenance(rule.every, rule.last, len(hours), merged.row_count, used)
    )
    if not used:
        return ModelProfile(reference.row_count, reference.features, seasonal)
    features = {name: merged.features.get(name, profile) for name, profile in reference.features.items()}
    return ModelProfile(merged.row_count, features, seasonal)
