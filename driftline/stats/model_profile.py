"""Profiles of a whole model (every feature) from a pandas DataFrame; pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from driftline.stats.checks import OperationalState, ScoreRangeState
from driftline.stats.concept import RelationState
from driftline.stats.estimation import EstimationState
from driftline.stats.expectations import StreamedSuite
from driftline.stats.performance import WindowPerformance
from driftline.stats.profile import (
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    fit_categorical,
    fit_numeric,
    profile_categorical,
    profile_from_json,
    profile_numeric,
)


def numeric_values(column: pd.Series) -> np.ndarray:
    """Float values of a column; NULL and anything that is not a number become NaN."""
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


#: Text that parses as NaN: a "NaN" string is a NaN, not text that failed to parse.
_NAN_TEXT = frozenset({"nan", "+nan", "-nan"})


def numeric_values_counted(column: pd.Series) -> tuple[np.ndarray, int]:
    """:func:`numeric_values`, and how many non-null values were not numbers (``"n/a"``, ``""``, ``"12,5"``).

    A column stored as numbers has none (no cost); in a text column the count is what
    ``errors="coerce"`` would otherwise turn into NaN without a trace.
    """
    values = numeric_values(column)
    if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        return values, 0
    lost = np.isnan(values) & column.notna().to_numpy()
    if not lost.any():
        return values, 0
    text = column[lost].astype(str).str.strip().str.lower()
    return values, int((~text.isin(_NAN_TEXT)).sum())


def categorical_values(column: pd.Series) -> np.ndarray:
    values = column.astype(object).to_numpy()
    return np.where(pd.isna(values), None, values)


WindowState = (
    EstimationState | WindowPerformance | RelationState | OperationalState | ScoreRangeState | StreamedSuite
)
_STATE_TYPES: dict[str, Any] = {
    "performance": WindowPerformance,
    "concept": RelationState,
    "operational": OperationalState,
    "score_range": ScoreRangeState,
    "completeness": StreamedSuite,
}


def _state_from_json(data: dict[str, Any]) -> WindowState:
    state_type = _STATE_TYPES.get(str(data.get("type")), EstimationState)
    return state_type.from_json(data)  # type: ignore[no-any-return]


@dataclass
class ModelProfile:
    """Per-feature profiles of one set of rows (a reference range or a window)."""

    row_count: int
    features: dict[str, FeatureProfile] = field(default_factory=dict)
    #: JSON-ready facts fitted on the reference besides per-column profiles (e.g. label rate per
    #: score bin, reference performance). Empty for window profiles.
    extras: dict[str, Any] = field(default_factory=dict)
    #: Mergeable window states of monitors beyond per-column profiles (``estimation``: plateau counts
    #: per predicted class, see :mod:`driftline.stats.estimation`; ``performance``: the realised
    #: performance's sufficient statistics, see :mod:`driftline.stats.performance`; ``concept``: labelled
    #: rows and label rate per reference score bin, see :mod:`driftline.stats.concept`). Empty for
    #: reference profiles.
    states: dict[str, WindowState] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = {
            "row_count": self.row_count,
            "features": {k: v.to_json() for k, v in self.features.items()},
            "extras": self.extras,
        }
        if self.states:
            data["states"] = {k: v.to_json() for k, v in self.states.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelProfile:
        return cls(
            row_count=int(data["row_count"]),
            features={k: profile_from_json(v) for k, v in data["features"].items()},
            extras=dict(data.get("extras") or {}),
            states={k: _state_from_json(v) for k, v in (data.get("states") or {}).items()},
        )

    def merge(self, other: ModelProfile) -> ModelProfile:
        """Profiles of two disjoint row sets on the same bins, added (hours into days)."""
        merged: dict[str, FeatureProfile] = {}
        for name, mine in self.features.items():
            theirs = other.features.get(name)
            merged[name] = mine if theirs is None else mine.merge(theirs)  # type: ignore[arg-type]
        states = dict(self.states)
        for name, theirs in other.states.items():
            states[name] = states[name].merge(theirs) if name in states else theirs  # type: ignore[arg-type]
        return ModelProfile(self.row_count + other.row_count, merged, states=states)


def fit_model_profile(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> ModelProfile:
    """Reference profile: chooses the numeric bins from these rows."""
    features: dict[str, FeatureProfile] = {}
    for column in numeric:
        values, unparsed = numeric_values_counted(frame[column])
        features[column] = fit_numeric(values, unparsed=unparsed)
    for column in categorical:
        features[column] = fit_categorical(frame[column])
    return ModelProfile(len(frame), features)


def window_model_profile(frame: pd.DataFrame, reference: ModelProfile) -> ModelProfile:
    """Window profile on the reference's bins, for every feature the reference has."""
    features: dict[str, FeatureProfile] = {}
    for column, ref in reference.features.items():
        if isinstance(ref, NumericProfile):
            values, unparsed = numeric_values_counted(frame[column])
            features[column] = profile_numeric(values, ref, unparsed)
        elif isinstance(ref, CategoricalProfile):
            features[column] = profile_categorical(frame[column])
    return ModelProfile(len(frame), features)
