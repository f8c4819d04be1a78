"""Reference and window profiles: fit the reference once per definition, profile each window."""

from __future__ import annotations

import pandas as pd
from prefect import task
from sqlalchemy.engine import Engine

from driftline.config import ModelConfig
from driftline.stats.model_profile import ModelProfile, fit_model_profile, window_model_profile
from driftline.tasks._prefect import IO, PURE
from driftline.tasks.extract import read_rows
from driftline.tasks.store import load_reference, store_reference
from driftline.window import Window


def ensure_reference(data_engine: Engine, results_engine: Engine, model: ModelConfig) -> ModelProfile | None:
    """The stored reference profile for the model's current definition, fitted and stored if missing.

    Returns ``None`` when the reference range has no rows (nothing is stored, so rows logged into
    the range later are still picked up).
    """
    definition = model.reference_definition()
    stored = load_reference(results_engine, model.name, definition)
    if stored is not None:
        return stored
    span = Window(model.reference.start, model.reference.end)
    frame = read_rows(data_engine, model, span.start, span.end)
    if frame.empty:
        return None
    profile = fit_model_profile(frame, model.features.numeric, model.features.categorical)
    return store_reference(results_engine, model.name, definition, span, profile)


def profile_window(frame: pd.DataFrame, reference: ModelProfile | None, model: ModelConfig) -> ModelProfile:
    """The window's profile on the reference bins (or just its row count without a reference)."""
    if reference is None:
        return ModelProfile(len(frame))
    return window_model_profile(frame, reference)


ensure_reference_task = task(ensure_reference, name="reference-profile", **IO)
profile_window_task = task(profile_window, name="profile-window", **PURE)
