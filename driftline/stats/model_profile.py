"""Profiles of a whole model (every feature) from a pandas DataFrame; pure, no I/O."""

from __future__ import annotations

import warnings
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
    bin_positions,
    fit_categorical,
    fit_numeric,
    profile_categorical,
    profile_from_json,
    profile_numeric,
)
from driftline.stats.reference_state import ReferenceState


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
    #: What the built-in monitors fitted on the reference besides per-column profiles, typed (label
    #: rate per score bin, reference performance, the estimator; users' monitors' own slot ``user``),
    #: see :mod:`driftline.stats.reference_state`. Empty for window profiles.
    fitted: ReferenceState = field(default_factory=ReferenceState)
    #: Mergeable window states of monitors beyond per-column profiles (``estimation``: plateau counts
    #: per predicted class, see :mod:`driftline.stats.estimation`; ``performance``: the realised
    #: performance's sufficient statistics, see :mod:`driftline.stats.performance`; ``concept``: labelled
    #: rows and label rate per reference score bin, see :mod:`driftline.stats.concept`). Empty for
    #: reference profiles.
    states: dict[str, WindowState] = field(default_factory=dict)

    def stored_definition(self) -> str:
        """The reference definition this profile was stored under (set when a reference is loaded)."""
        if self.fitted.definition is None:
            raise ValueError("this profile was not loaded as a stored reference: it has no definition key")
        return self.fitted.definition

    @property
    def extras(self) -> dict[str, Any]:
        """Deprecated read-only view of :attr:`fitted` in the old untyped dict's shape (``calibration``,
        ``performance``, ``estimation``, ``seasonal``, and the ``user`` slot's keys), kept for users'
        monitors written against it. Read ``fitted``'s typed fields instead."""
        warnings.warn(
            "ModelProfile.extras is deprecated: read the typed ModelProfile.fitted (users' state: fitted.user)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.fitted.legacy_extras()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "row_count": self.row_count,
            "features": {k: v.to_json() for k, v in self.features.items()},
        }
        if not self.fitted.is_empty():
            data["fitted"] = self.fitted.to_json()
        if self.states:
            data["states"] = {k: v.to_json() for k, v in self.states.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelProfile:
        """The stored form; a reference stored before the typed state (key ``extras``) loads too."""
        fitted = (
            ReferenceState.from_json(data["fitted"])
            if "fitted" in data
            else ReferenceState.from_legacy_extras(data.get("extras") or {})
        )
        return cls(
            row_count=int(data["row_count"]),
            features={k: profile_from_json(v) for k, v in data["features"].items()},
            fitted=fitted,
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


#: Per numeric column of one block: its float values and their ``bin_positions`` on the reference edges.
BinPositions = dict[str, tuple[np.ndarray, np.ndarray]]


def window_model_profile(
    frame: pd.DataFrame, reference: ModelProfile, positions: BinPositions | None = None
) -> ModelProfile:
    """Window profile on the reference's bins, for every feature the reference has. ``positions``, if
    given, receives each numeric column's values and bin positions (the segment folds reuse them)."""
    features: dict[str, FeatureProfile] = {}
    for column, ref in reference.features.items():
        if isinstance(ref, NumericProfile):
            values, unparsed = numeric_values_counted(frame[column])
            index = bin_positions(values, ref.edges)
            if positions is not None:
                positions[column] = (values, index)
            features[column] = profile_numeric(values, ref, unparsed, index)
        elif isinstance(ref, CategoricalProfile):
            features[column] = profile_categorical(frame[column])
    return ModelProfile(len(frame), features)
