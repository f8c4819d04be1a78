"""Profiles: what the drift statistics need from a set of rows, in a form that merges by addition.

``fit_numeric``/``fit_categorical`` build a *reference* profile (they choose the bins);
``profile_numeric``/``profile_categorical`` build a *window* profile on the reference's bins.
Both have the same shape, so hourly window profiles add up to days or weeks without rereading rows.

Numeric binning
---------------
The reference fixes ``FINE_BINS`` (200) quantile bins plus two overflow bins (below the reference
minimum, above its maximum). 200 bins bound the error of the profile-based KS statistic by the
largest reference bin mass, 1/200 = 0.005, half the 0.01 tolerance we promise against
``scipy.stats.ks_2samp`` on raw rows. The binned divergences (PSI, Jensen-Shannon, Hellinger, TVD)
use ``COARSE_BINS`` (10) groups of those fine bins of about equal reference mass: with 10 bins their
noise on unchanged data stays small at a few hundred rows, which 200 bins would not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

FINE_BINS = 200
COARSE_BINS = 10
MAX_STORED_CATEGORIES = 10_000
OTHER = "__other__"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class NumericProfile:
    """Counts of one numeric feature on fixed bin edges, plus nulls, infinities and moments.

    ``counts`` has ``len(edges) + 1`` entries: index 0 is below ``edges[0]``, index ``i`` in
    ``1..len(edges)-1`` is ``[edges[i-1], edges[i])`` (the last one closed), and the final index is
    above ``edges[-1]``. ``groups`` maps each count index to one of the coarse bins.
    """

    edges: FloatArray
    groups: IntArray
    counts: IntArray
    nulls: int = 0
    pos_inf: int = 0
    neg_inf: int = 0
    minimum: float = float("nan")
    maximum: float = float("nan")
    total: float = 0.0
    total_sq: float = 0.0
    #: Moments are sums of ``x - shift`` (the reference's median), so the variance of values that
    #: are large but close together (epoch seconds, prices) does not cancel away.
    shift: float = 0.0
    #: Non-null values that are not numbers (text such as ``"n/a"`` in a column of numbers); counted
    #: apart from ``nulls`` so that a column turning into text is seen, never silently dropped.
    unparsed: int = 0

    @property
    def n(self) -> int:
        """Finite values counted in the bins."""
        return int(self.counts.sum())

    @property
    def mean(self) -> float:
        return self.shift + self.total / self.n if self.n else float("nan")

    @property
    def std(self) -> float:
        """Population standard deviation from the shifted moments; NaN when there are no values."""
        if not self.n:
            return float("nan")
        centred = self.total / self.n
        variance = self.total_sq / self.n - centred * centred  # `**` would raise OverflowError near 1e154
        if not np.isfinite(variance):
            return float("nan")  # the squares overflow float64: no usable standard deviation
        return float(np.sqrt(max(variance, 0.0)))

    def coarse_counts(self) -> IntArray:
        return np.bincount(self.groups, weights=self.counts, minlength=int(self.groups.max()) + 1).astype(np.int64)

    def merge(self, other: NumericProfile) -> NumericProfile:
        """Sum of two profiles on the same edges (e.g. hours into a day)."""
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("cannot merge numeric profiles with different bin edges")
        if self.shift != other.shift:
            raise ValueError("cannot merge numeric profiles with different moment shifts")
        return NumericProfile(
            edges=self.edges,
            groups=self.groups,
            counts=self.counts + other.counts,
            nulls=self.nulls + other.nulls,
            pos_inf=self.pos_inf + other.pos_inf,
            neg_inf=self.neg_inf + other.neg_inf,
            minimum=float(np.fmin(self.minimum, other.minimum)),
            maximum=float(np.fmax(self.maximum, other.maximum)),
            total=self.total + other.total,
            total_sq=self.total_sq + other.total_sq,
            shift=self.shift,
            unparsed=self.unparsed + other.unparsed,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "numeric",
            "edges": self.edges.tolist(),
            "groups": self.groups.tolist(),
            "counts": self.counts.tolist(),
            "nulls": self.nulls,
            "pos_inf": self.pos_inf,
            "neg_inf": self.neg_inf,
            "minimum": _json_float(self.minimum),
            "maximum": _json_float(self.maximum),
            "total": self.total,
            "total_sq": self.total_sq,
            "shift": self.shift,
            "unparsed": self.unparsed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NumericProfile:
        return cls(
            edges=np.asarray(data["edges"], dtype=np.float64),
            groups=np.asarray(data["groups"], dtype=np.int64),
            counts=np.asarray(data["counts"], dtype=np.int64),
            nulls=int(data["nulls"]),
            pos_inf=int(data["pos_inf"]),
            neg_inf=int(data["neg_inf"]),
            minimum=_float(data["minimum"]),
            maximum=_float(data["maximum"]),
            # Non-finite moments are stored as JSON null (PostgreSQL's JSON has no NaN/Infinity).
            total=_float(data["total"]),
            total_sq=_float(data["total_sq"]),
            shift=_float(data.get("shift", 0.0)),
            unparsed=int(data.get("unparsed", 0)),
        )


@dataclass
class CategoricalProfile:
    """Counts per category (as text), nulls, and how many rows fell past the stored-category cap."""

    counts: dict[str, int] = field(default_factory=dict)
    nulls: int = 0
    overflow: int = 0

    @property
    def n(self) -> int:
        return sum(self.counts.values()) + self.overflow

    def merge(self, other: CategoricalProfile) -> CategoricalProfile:
        merged = dict(self.counts)
        for category, count in other.counts.items():
            merged[category] = merged.get(category, 0) + count
        return _capped(merged, self.nulls + other.nulls, self.overflow + other.overflow)

    def to_json(self) -> dict[str, Any]:
        return {"type": "categorical", "counts": self.counts, "nulls": self.nulls, "overflow": self.overflow}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CategoricalProfile:
        return cls(
            counts={str(k): int(v) for k, v in data["counts"].items()},
            nulls=int(data["nulls"]),
            overflow=int(data.get("overflow", 0)),
        )


FeatureProfile = NumericProfile | CategoricalProfile


def profile_from_json(data: dict[str, Any]) -> FeatureProfile:
    if data["type"] == "numeric":
        return NumericProfile.from_json(data)
    if data["type"] == "categorical":
        return CategoricalProfile.from_json(data)
    raise ValueError(f"unknown profile type {data['type']!r}")


def _json_float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _float(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _sum_of_squares(values: FloatArray) -> float:
    # einsum, not np.dot: BLAS's dot wakes its thread pool on every call, which on a busy machine cost
    # ~8 ms per 20,000 values (a streamed window profiles hundreds of blocks); einsum stays in one thread.
    return float(np.einsum("i,i->", values, values))


def _split_finite(values: npt.ArrayLike) -> tuple[FloatArray, int, int, int]:
    """Finite values, and the counts of NaN/NULL, +inf and -inf."""
    array = np.asarray(values, dtype=np.float64)
    nan_mask = np.isnan(array)
    pos_inf = int(np.count_nonzero(array == np.inf))
    neg_inf = int(np.count_nonzero(array == -np.inf))
    finite = array[~nan_mask & np.isfinite(array)]
    return finite, int(nan_mask.sum()), pos_inf, neg_inf


def _coarse_groups(counts: IntArray, n_groups: int) -> IntArray:
    """Map each fine bin (overflow bins included) to one of ``n_groups`` groups of ~equal mass.

    Groups never split a fine bin, so a heavily tied value (a point mass) makes fewer groups.
    The overflow bins join their neighbouring group.
    """
    total = counts.sum()
    if total == 0:
        return np.zeros(len(counts), dtype=np.int64)
    # The group of each bin is decided by the reference mass *before* it (its left edge).
    mass_before = np.concatenate([[0], np.cumsum(counts)[:-1]]) / total
    raw = np.floor(mass_before * n_groups + 1e-9).astype(np.int64)
    raw = np.minimum(raw, n_groups - 1)
    # Renumber consecutively so that empty group numbers vanish.
    _, dense = np.unique(raw, return_inverse=True)
    return dense.astype(np.int64)


def fit_numeric(
    values: npt.ArrayLike, fine_bins: int = FINE_BINS, coarse_bins: int = COARSE_BINS, unparsed: int = 0
) -> NumericProfile:
    """Reference profile: quantile edges of the finite values, and their counts.

    Notes
    -----
    NaN (NULL) and ±inf are counted apart and never binned; ``unparsed`` is the count of values that
    were not numbers (already NaN in ``values``: they are taken out of ``nulls``). With no finite values the edges are
    empty and every later comparison is ``unknown``. A constant feature gets one edge; values equal
    to it fall in the single closed bin, others in an overflow bin.
    """
    finite, nulls, pos_inf, neg_inf = _split_finite(values)
    nulls -= unparsed
    if finite.size:
        edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, fine_bins + 1)))
        if edges.size == 1:
            # A constant reference: one closed bin [c, c] between the two overflow bins.
            edges = np.array([edges[0], np.nextafter(edges[0], np.inf)])
    else:
        edges = np.empty(0, dtype=np.float64)
    counts = _bin_counts(finite, edges)
    shift = float(np.median(finite)) if finite.size else 0.0
    centred = finite - shift
    return NumericProfile(
        edges=edges,
        groups=_coarse_groups(counts, coarse_bins),
        counts=counts,
        nulls=nulls,
        pos_inf=pos_inf,
        neg_inf=neg_inf,
        minimum=float(finite.min()) if finite.size else float("nan"),
        maximum=float(finite.max()) if finite.size else float("nan"),
        total=float(centred.sum()),
        total_sq=_sum_of_squares(centred),
        shift=shift,
        unparsed=unparsed,
    )


def bin_positions(values: FloatArray, edges: FloatArray) -> IntArray:
    """Each value's count index on ``edges`` (see :class:`NumericProfile`): 0 below ``edges[0]``,
    ``len(edges)`` above ``edges[-1]``. NaN lands above too (callers that count mask it out)."""
    index = np.searchsorted(edges, values, side="right")
    if edges.size:
        # The last regular bin is closed on the right: the reference maximum belongs to it.
        index[values == edges[-1]] = len(edges) - 1
    return index


def _bin_counts(finite: FloatArray, edges: FloatArray) -> IntArray:
    if edges.size == 0:
        return np.zeros(1, dtype=np.int64) if finite.size == 0 else np.array([finite.size], dtype=np.int64)
    return np.bincount(bin_positions(finite, edges), minlength=len(edges) + 1).astype(np.int64)


def profile_numeric(
    values: npt.ArrayLike, reference: NumericProfile, unparsed: int = 0, positions: IntArray | None = None
) -> NumericProfile:
    """Window profile of ``values`` on the reference's bins (``unparsed``: as in :func:`fit_numeric`).
    ``positions``: ``bin_positions(values, reference.edges)`` when the caller has them already."""
    finite, nulls, pos_inf, neg_inf = _split_finite(values)
    nulls -= unparsed
    if positions is not None and reference.edges.size:
        kept = positions[np.isfinite(np.asarray(values, dtype=np.float64))]
        counts = np.bincount(kept, minlength=len(reference.edges) + 1).astype(np.int64)
    else:
        counts = _bin_counts(finite, reference.edges)
    if reference.edges.size == 0:
        counts = np.array([finite.size], dtype=np.int64)
    centred = finite - reference.shift
    return NumericProfile(
        edges=reference.edges,
        groups=reference.groups if len(reference.groups) == len(counts) else np.zeros(len(counts), np.int64),
        counts=counts,
        nulls=nulls,
        pos_inf=pos_inf,
        neg_inf=neg_inf,
        minimum=float(finite.min()) if finite.size else float("nan"),
        maximum=float(finite.max()) if finite.size else float("nan"),
        total=float(centred.sum()),
        total_sq=_sum_of_squares(centred),
        shift=reference.shift,
        unparsed=unparsed,
    )


def _capped(counts: dict[str, int], nulls: int, overflow: int, cap: int = MAX_STORED_CATEGORIES) -> CategoricalProfile:
    if len(counts) <= cap:
        return CategoricalProfile(counts=counts, nulls=nulls, overflow=overflow)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = dict(ranked[:cap])
    return CategoricalProfile(counts=kept, nulls=nulls, overflow=overflow + sum(c for _, c in ranked[cap:]))


def profile_categorical(values: npt.ArrayLike) -> CategoricalProfile:
    """Counts per category. NULL/None/NaN count as nulls; every other value is compared as text.

    Notes
    -----
    Values that print the same (``1`` and ``"1"``) are one category; an integral float prints as the
    integer (``1.0`` is ``"1"``), as an integer column with a NULL arrives as floats. At most
    ``MAX_STORED_CATEGORIES`` categories are kept (the most frequent); the rest are counted in
    ``overflow`` so the total is never lost. Counting is hash-based (pandas), about 20 ms per
    million rows and column.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object), dtype=object)
    if series.empty:
        return CategoricalProfile()
    null_mask = series.isna()
    nulls = int(null_mask.sum())
    present = series[~null_mask]
    if present.dtype == np.float64:
        # Count the floats first, then print only the distinct ones (a label or prediction column has
        # two): the same categories and counts as printing every row, without a string per row.
        distinct = present.value_counts(dropna=True, sort=False)
        counted = pd.Series(distinct.to_numpy(), index=_float_text(pd.Series(distinct.index.to_numpy())))
    else:
        counted = category_text(present).value_counts(dropna=True, sort=False)
    counts: dict[str, int] = {}
    for category, count in zip(counted.index, counted.to_numpy(), strict=True):
        key = str(category)
        counts[key] = counts.get(key, 0) + int(count)
    return _capped(counts, nulls, 0)


def category_text(values: pd.Series) -> pd.Series:
    """The category each (non-null) value is counted under by ``profile_categorical``: strings as they
    are, integral floats as integers, anything else as its printed text."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("floating", "mixed-integer-float"):
        return _float_text(values)
    if kind not in ("string", "empty", "categorical"):
        # Hashing would merge True with 1 and 1.0 with 1; compare the printed text instead.
        return values.map(str)
    return values


def _float_text(values: pd.Series) -> pd.Series:
    """Floats as category text, an integral float as the integer it holds (1.0 -> "1").

    An integer column that holds a NULL arrives as floats: this way a category reads the same with or
    without a NULL beside it, in a reference, a window or any block of a streamed window.
    """
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    # Beyond 2**53 a float no longer tells which integer it was: it keeps its own text.
    integral = np.isfinite(numbers) & (numbers == np.floor(numbers)) & (np.abs(numbers) < 2.0**53)
    text = np.empty(len(numbers), dtype=object)
    text[integral] = numbers[integral].astype(np.int64).astype(str)
    if not integral.all():
        text[~integral] = values[~integral].map(str).to_numpy(dtype=object)
    return pd.Series(text, dtype=object)


fit_categorical = profile_categorical
