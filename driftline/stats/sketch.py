"""A mergeable quantile sketch with a relative-accuracy guarantee (DDSketch's log buckets); pure, no I/O.

Why not every value: a window's latency percentiles would otherwise hold 8 bytes a row, and days and
weeks could not have them at all. Why not the ``ddsketch`` package: the same mapping, but its
``add`` is a Python call per value (1.39 s per 1M values measured against 0.063 s for the numpy fold
below, load 6); the fold here is one ``log`` and one ``bincount`` per block.

The guarantee (Masson, Rim & Lee, VLDB 2019): every positive value ``x`` falls in bucket
``k = ceil(log_gamma(x))`` covering ``(gamma^(k-1), gamma^k]`` with ``gamma = (1 + a) / (1 - a)``,
and is represented by ``2 gamma^k / (gamma + 1)``, within a relative error ``a`` of every value in
the bucket. :meth:`QuantileSketch.quantile` interpolates between the representatives of the two
order statistics around the rank like ``numpy.percentile``'s default (linear) method, so its result
is within ``a`` (relative) of ``numpy.percentile`` of the same values.

Input rule: NaN (missing) is skipped; a negative or infinite value cannot be a duration, so it is
``rejected`` (counted, never in the quantiles); zero is counted exactly. The sketch keeps at most
:data:`MAX_BUCKETS` buckets: beyond that span the lowest buckets are folded into one, so the guarantee
holds for values above ``max / gamma^(MAX_BUCKETS - 1)`` (about ``max / 6e17`` at 1%, every
realistic latency).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The relative accuracy of the operational latency percentiles.
DEFAULT_RELATIVE_ACCURACY = 0.01
#: Most buckets a sketch keeps (the span between its smallest and largest positive value).
MAX_BUCKETS = 2048


@dataclass(frozen=True, eq=False)
class QuantileSketch:
    """Counts of non-negative values in log buckets: ``zeros`` exactly, positive values in buckets
    ``offset .. offset + len(counts) - 1`` (``counts`` trimmed: no leading or trailing zero), and the
    ``rejected`` negative or infinite values. Merging adds counts, so the sketch of blocks merged equals
    the sketch of all their values, bucket for bucket."""

    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY
    zeros: int = 0
    offset: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    rejected: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.relative_accuracy < 1.0:
            raise ValueError(f"relative_accuracy must be in (0, 1), got {self.relative_accuracy}")

    @property
    def gamma(self) -> float:
        return (1.0 + self.relative_accuracy) / (1.0 - self.relative_accuracy)

    @property
    def count(self) -> int:
        """Values the quantiles are taken over (zeros and positive values; not the rejected)."""
        return self.zeros + int(self.counts.sum())

    @classmethod
    def of(cls, values: np.ndarray, relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY) -> QuantileSketch:
        """The sketch of ``values`` (float array; NaN skipped, negative and infinite rejected)."""
        values = np.asarray(values, dtype=np.float64)
        values = values[~np.isnan(values)]
        valid = np.isfinite(values) & (values >= 0.0)
        rejected = int(values.size - np.count_nonzero(valid))
        values = values[valid]
        positive = values[values > 0.0]
        sketch = cls(relative_accuracy, int(values.size - positive.size), rejected=rejected)
        if positive.size == 0:
            return sketch
        keys = np.ceil(np.log(positive) / math.log(sketch.gamma)).astype(np.int64)
        low = int(keys.min())
        counts = np.bincount(keys - low).astype(np.int64)
        return sketch._with_buckets(low, counts)

    def _with_buckets(self, offset: int, counts: np.ndarray) -> QuantileSketch:
        """This sketch's zeros and rejected with these buckets, trimmed and collapsed to MAX_BUCKETS."""
        nonzero = np.flatnonzero(counts)
        if nonzero.size == 0:
            offset, counts = 0, np.zeros(0, dtype=np.int64)
        else:
            offset, counts = offset + int(nonzero[0]), counts[nonzero[0] : nonzero[-1] + 1]
        if counts.size > MAX_BUCKETS:
            # Fold the lowest buckets into the lowest kept one: the upper quantiles keep the guarantee.
            cut = counts.size - MAX_BUCKETS
            counts = np.concatenate([[counts[: cut + 1].sum()], counts[cut + 1 :]])
            offset += cut
        return QuantileSketch(self.relative_accuracy, self.zeros, offset, counts.astype(np.int64), self.rejected)

    def merge(self, other: QuantileSketch) -> QuantileSketch:
        """The sketch of both sketches' values (exact: counts add bucket by bucket)."""
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError(
                f"cannot merge sketches of relative accuracy {self.relative_accuracy} and {other.relative_accuracy}"
            )
        base = QuantileSketch(self.relative_accuracy, self.zeros + other.zeros, rejected=self.rejected + other.rejected)
        if other.counts.size == 0 or self.counts.size == 0:
            mine = self if other.counts.size == 0 else other
            return base._with_buckets(mine.offset, mine.counts)
        low = min(self.offset, other.offset)
        high = max(self.offset + self.counts.size, other.offset + other.counts.size)
        counts = np.zeros(high - low, dtype=np.int64)
        counts[self.offset - low : self.offset - low + self.counts.size] += self.counts
        counts[other.offset - low : other.offset - low + other.counts.size] += other.counts
        return base._with_buckets(low, counts)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, QuantileSketch)
            and self.relative_accuracy == other.relative_accuracy
            and self.zeros == other.zeros
            and self.rejected == other.rejected
            and self.offset == other.offset
            and np.array_equal(self.counts, other.counts)
        )

    __hash__ = None  # type: ignore[assignment]

    def _order_statistics(self, ranks: np.ndarray) -> np.ndarray:
        """Representatives of the values at these 0-based ranks (0 for a rank among the zeros)."""
        cumulative = self.zeros + np.cumsum(self.counts)
        index = np.searchsorted(cumulative, ranks, side="right")
        keys = self.offset + index
        values = 2.0 * np.power(self.gamma, keys.astype(np.float64)) / (self.gamma + 1.0)
        return np.where(ranks < self.zeros, 0.0, values)

    def quantile(self, q: float) -> float:
        """The ``q``-th percentile (0..100) like ``numpy.percentile(values, q)`` (linear), within the
        relative accuracy; NaN for an empty sketch."""
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {q}")
        n = self.count
        if n == 0:
            return math.nan
        rank = q / 100.0 * (n - 1)
        below, above = math.floor(rank), math.ceil(rank)
        low, high = self._order_statistics(np.array([below, above]))
        return float(low + (rank - below) * (high - low))

    def count_above(self, threshold: float) -> float:
        """How many values exceed ``threshold``: exact for the buckets wholly above or below it; the
        bucket holding it (values within the relative accuracy of it) counted by the share of its
        log-width above the threshold."""
        if math.isnan(threshold):
            raise ValueError("threshold is NaN")
        positive = int(self.counts.sum())
        if threshold < 0.0:
            return float(self.count)
        if threshold == 0.0 or positive == 0:
            return float(positive)
        position = math.log(threshold) / math.log(self.gamma)
        key = math.ceil(position)
        index = key - self.offset
        if index < 0:
            return float(positive)
        if index >= self.counts.size:
            return 0.0
        wholly_above = float(self.counts[index + 1 :].sum())
        return wholly_above + float(self.counts[index]) * (key - position)

    def to_json(self) -> dict[str, Any]:
        return {
            "relative_accuracy": self.relative_accuracy,
            "zeros": self.zeros,
            "offset": self.offset,
            "counts": self.counts.tolist(),
            "rejected": self.rejected,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QuantileSketch:
        return cls(
            float(data["relative_accuracy"]),
            int(data["zeros"]),
            int(data["offset"]),
            np.asarray(data["counts"], dtype=np.int64),
            int(data.get("rejected", 0)),
        )
