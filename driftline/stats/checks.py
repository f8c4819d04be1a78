"""Mergeable window states of the operational and validity checks; pure, no I/O.

Each folds one block of a window's rows, merges by addition (blocks into the hour), and holds what
its check needs, so neither check reads the window as a frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class OperationalState:
    """Rows, the finite latency values, and error rows of a window.

    The latency percentiles are exact, so the finite latency values themselves are kept (8 bytes a
    row, one column instead of the whole window). They are not stored with the window profile (days
    and weeks have no latency percentiles): the stored form keeps ``latency = None``.
    """

    rows: int = 0
    latency: np.ndarray | None = field(default_factory=lambda: np.empty(0))
    errors: int = 0
    #: Rows of the error column (0 when the model has none or the rows lack it).
    error_rows: int = 0

    def merge(self, other: OperationalState) -> OperationalState:
        latency = (
            None if self.latency is None or other.latency is None else np.concatenate([self.latency, other.latency])
        )
        return OperationalState(
            self.rows + other.rows, latency, self.errors + other.errors, self.error_rows + other.error_rows
        )

    def to_json(self) -> dict[str, Any]:
        return {"type": "operational", "rows": self.rows, "errors": self.errors, "error_rows": self.error_rows}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OperationalState:
        return cls(int(data["rows"]), None, int(data["errors"]), int(data["error_rows"]))


@dataclass
class ScoreRangeState:
    """A classifier's scores: rows, finite scores, those outside [0, 1], and the finite extremes."""

    rows: int = 0
    finite: int = 0
    outside: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf

    @classmethod
    def of(cls, values: np.ndarray) -> ScoreRangeState:
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return cls(int(values.size))
        outside = int(np.count_nonzero((finite < 0.0) | (finite > 1.0)))
        return cls(int(values.size), int(finite.size), outside, float(finite.min()), float(finite.max()))

    def merge(self, other: ScoreRangeState) -> ScoreRangeState:
        return ScoreRangeState(
            self.rows + other.rows,
            self.finite + other.finite,
            self.outside + other.outside,
            min(self.minimum, other.minimum),
            max(self.maximum, other.maximum),
        )

    def to_json(self) -> dict[str, Any]:
        extremes = [self.minimum, self.maximum] if self.finite else None
        return {"type": "score_range", "counts": [self.rows, self.finite, self.outside], "extremes": extremes}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScoreRangeState:
        rows, finite, outside = (int(c) for c in data["counts"])
        low, high = data["extremes"] or (math.inf, -math.inf)
        return cls(rows, finite, outside, float(low), float(high))
