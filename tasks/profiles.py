"""Reference and window profiles: fit the reference once per definition, profile each window."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from sqlalchemy.engine import Engine

from driftline.config import ModelConfig
from driftline.stats.concept import fit_calibration
from driftline.stats.model_profile import ModelProfile, fit_model_profile, numeric_values, window_model_profile
from driftline.tasks._prefect import IO, PURE
from driftline.tasks.estimation import ESTIMATION, fit_estimator, window_state
from driftline.tasks.extract import iter_rows, read_rows
from driftline.tasks.notify_store import with_effective_reference
from driftline.tasks.performance import reference_performance
from driftline.tasks.store import load_reference, store_reference
from driftline.window import Window

#: In-memory only: the definition hash a loaded reference was stored under (window profiles are keyed by it).
DEFINITION_KEY = "_definition"


def profiled_columns(model: ModelConfig) -> tuple[list[str], list[str]]:
    """Numeric and categorical columns of the profile: the features, then the targets."""
    columns = model.features.items() + model.target_columns()
    return [c for c, k in columns if k == "numeric"], [c for c, k in columns if k == "categorical"]


def positive_indicator(frame: pd.DataFrame, model: ModelConfig) -> np.ndarray:
    """1.0 where the label is the positive class, 0.0 where it is another class, NaN where unknown."""
    label = model.label_field
    if label is None or label not in frame:
        return np.full(len(frame), np.nan)
    values = frame[label]
    known = values.notna().to_numpy()
    positive = model.performance.positive_label
    as_number = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if isinstance(positive, int | float) and not isinstance(positive, bool):
        hits = as_number == float(positive)
    else:
        hits = values.astype(str).to_numpy() == str(positive)
    return np.where(known, hits.astype(float), np.nan)


def fit_extras(frame: pd.DataFrame, model: ModelConfig) -> dict[str, Any]:
    """Reference facts beyond per-column profiles: the label rate per score bin (classifiers)."""
    extras: dict[str, Any] = {}
    if model.task == "classification" and model.score_column and model.label_field:
        extras["calibration"] = fit_calibration(
            numeric_values(frame[model.score_column]), positive_indicator(frame, model)
        )
    return extras


def fit_reference(frame: pd.DataFrame, model: ModelConfig) -> ModelProfile:
    """Profiles of every feature and target column, plus the reference's calibration and performance."""
    numeric, categorical = profiled_columns(model)
    profile = fit_model_profile(frame, numeric, categorical)
    profile.extras = fit_extras(frame, model)
    if model.label_field:
        profile.extras["performance"] = reference_performance(model, frame, profile)
    estimator = fit_estimator(frame, model, profile)
    if estimator is not None:
        profile.extras[ESTIMATION] = estimator
    return profile


def ensure_reference(
    data_engine: Engine, results_engine: Engine, model: ModelConfig, window: Window | None = None
) -> ModelProfile | None:
    """The stored reference profile for the model's current definition, fitted and stored if missing.

    ``window`` places a rolling reference (``reference: {last: 7d}``). Returns ``None`` when the
    reference range has no rows (nothing is stored, so rows logged into the range later are still
    picked up).
    """
    window_start = window.start if window is not None else None
    # A promoted retrain moves the reference to its data (until monitors.yaml itself changes).
    model = with_effective_reference(results_engine, model, window_start)
    definition = model.reference_definition(window_start)
    stored = load_reference(results_engine, model.name, definition)
    if stored is not None:
        stored.extras[DEFINITION_KEY] = definition
        return stored
    span = Window(*model.reference.span_for(window_start))
    frame = read_rows(data_engine, model, span.start, span.end)
    if frame.empty:
        return None
    stored = store_reference(results_engine, model.name, definition, span, fit_reference(frame, model))
    stored.extras[DEFINITION_KEY] = definition
    return stored


def profile_window(frame: pd.DataFrame, reference: ModelProfile | None, model: ModelConfig) -> ModelProfile:
    """The window's profile on the reference bins (or just its row count without a reference)."""
    if reference is None:
        return ModelProfile(len(frame))
    profile = window_model_profile(frame, reference)
    state = window_state(frame, model, reference)
    if state is not None:
        # Estimated performance folds with the profile, so it streams and merges into days like drift.
        profile.states[ESTIMATION] = state
    return profile


def stream_window_profile(
    data_engine: Engine, model: ModelConfig, window: Window, reference: ModelProfile | None
) -> ModelProfile:
    """``profile_window`` of the window's rows, folded block by block as they stream out of PostgreSQL:
    memory holds a block (about 20,000 rows at 20 columns), never the window. Equal to profiling the whole frame
    (counts, nulls, extremes exactly; the moment sums up to float rounding)."""
    # Only the profiled columns (features and targets, which include the prediction and label the
    # residual derives from): not the timestamp or id, a tenth of the CSV and a parse per block.
    numeric, categorical = profiled_columns(model)
    profile: ModelProfile | None = None
    for block in iter_rows(data_engine, model, window.start, window.end, only=numeric + categorical):
        part = profile_window(block, reference, model)
        profile = part if profile is None else profile.merge(part)
    assert profile is not None  # iter_rows yields at least one block
    return profile


ensure_reference_task = task(ensure_reference, name="reference-profile", **IO)
profile_window_task = task(profile_window, name="profile-window", **PURE)
stream_window_profile_task = task(stream_window_profile, name="stream-window-profile", **IO)
