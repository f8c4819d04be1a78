"""Mergeable window states of the operational and validity checks; pure, no I/O.

Each folds one block of a window's rows, merges by addition (blocks into the hour), and holds what
its check needs, so neither check reads the window as a frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.stats.sketch import QuantileSketch


@dataclass
class OperationalState:
    """Rows, the latency values' quantile sketch, and error rows of a window.

    The latency percentiles come from a :class:`~driftline.stats.sketch.QuantileSketch` (within its
    relative accuracy, 1% by default, of the exact percentiles), so memory is a few hundred buckets
    whatever the window's size, and the state merges into days and weeks with its latencies. A state
    stored before the sketch existed loads with ``latency = None`` (the window's latencies unknown).
    """

    rows: int = 0
    latency: QuantileSketch | None = field(default_factory=QuantileSketch)
    errors: int = 0
    #: Rows of the error column (0 when the model has none or the rows lack it).
    error_rows: int = 0

    def merge(self, other: OperationalState) -> OperationalState:
        latency = None if self.latency is None or other.latency is None else self.latency.merge(other.latency)
        return OperationalState(
            self.rows + other.rows, latency, self.errors + other.errors, self.error_rows + other.error_rows
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "operational",
            "rows": self.rows,
            "errors": self.errors,
            "error_rows": self.error_rows,
        }
        if self.latency is not None:
            data["latency"] = self.latency.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OperationalState:
        latency = QuantileSketch.from_json(data["latency"]) if data.get("latency") is not None else None
        return cls(int(data["rows"]), latency, int(data["errors"]), int(data["error_rows"]))


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
