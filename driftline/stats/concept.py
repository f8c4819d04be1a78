"""Concept drift statistics that need more than one column: the label rate per score bin.

``fit_calibration`` summarises the reference: its score deciles and, per decile, how many labelled
rows and how many positives. ``calibration_shift`` asks whether the window's labels follow the
scores the way the reference's did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

from driftline.stats.distances import StatResult


def _labelled(score: npt.ArrayLike, positive: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(score, dtype=np.float64)
    p = np.asarray(positive, dtype=np.float64)
    keep = np.isfinite(s) & np.isfinite(p)
    return s[keep], p[keep] > 0.5


@dataclass(frozen=True)
class ScoreCalibration:
    """The reference's label rate per score quantile bin (concept drift's fitted reference state, and
    the performance calibration test's): the inner bin ``edges``, and per bin the labelled rows with a
    finite score (``counts``) and their ``positives``. Empty (no bins) when the reference had no such rows."""

    edges: tuple[float, ...] = ()
    counts: tuple[int, ...] = ()
    positives: tuple[int, ...] = ()

    @property
    def bins(self) -> int:
        return len(self.counts)

    def to_json(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "counts": list(self.counts), "positives": list(self.positives)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScoreCalibration:
        return cls(
            tuple(float(e) for e in data.get("edges") or ()),
            tuple(int(c) for c in data.get("counts") or ()),
            tuple(int(p) for p in data.get("positives") or ()),
        )


def fit_calibration(score: npt.ArrayLike, positive: npt.ArrayLike, bins: int = 10) -> ScoreCalibration:
    """Reference label rate per score quantile bin. ``positive`` is 1/0 with NaN for unlabelled rows.

    Notes
    -----
    Only rows with both a finite score and a label count. With no such rows the summary is empty
    and every later comparison is undefined.
    """
    s, p = _labelled(score, positive)
    if s.size == 0:
        return ScoreCalibration()
    inner = np.unique(np.quantile(s, np.linspace(0, 1, bins + 1)[1:-1]))
    index = np.searchsorted(inner, s, side="right")
    counts = np.bincount(index, minlength=len(inner) + 1)
    positives = np.bincount(index, weights=p.astype(float), minlength=len(inner) + 1)
    return ScoreCalibration(
        tuple(float(e) for e in inner), tuple(int(c) for c in counts), tuple(int(p) for p in positives.astype(int))
    )


@dataclass
class RelationState:
    """What concept drift needs of a window beyond the column profiles, mergeable by addition:
    ``labelled`` rows (label not NULL), and per reference score bin (``fit_calibration``'s edges) the
    labelled rows with a finite score (``rows``) and their positives."""

    labelled: int
    rows: np.ndarray
    positives: np.ndarray

    @classmethod
    def of(
        cls, reference: ScoreCalibration, labelled: int, score: npt.ArrayLike, positive: npt.ArrayLike
    ) -> RelationState:
        bins = reference.bins
        s, p = _labelled(score, positive)
        index = np.searchsorted(np.asarray(reference.edges, dtype=np.float64), s, side="right")
        return cls(
            labelled,
            np.bincount(index, minlength=bins).astype(np.float64)[:bins],
            np.bincount(index, weights=p.astype(float), minlength=bins)[:bins],
        )

    def merge(self, other: RelationState) -> RelationState:
        return RelationState(self.labelled + other.labelled, self.rows + other.rows, self.positives + other.positives)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "concept",
            "labelled": self.labelled,
            "rows": self.rows.tolist(),
            "positives": self.positives.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RelationState:
        return cls(int(data["labelled"]), np.asarray(data["rows"], float), np.asarray(data["positives"], float))


#: Below this many expected positives or negatives in a bin, the chi-square approximation's tail is
#: too thin (measured on calibrated scores, 150 labelled rows: p < 0.001 came 1.7 times as often as it
#: should), so the p-value is taken from the statistic's exact distribution instead.
MIN_EXPECTED_FOR_CHI2 = 10.0
#: Grid steps of the exact distribution up to the observed statistic.
EXACT_GRID = 2000


def calibration_shift(reference: ScoreCalibration, score: npt.ArrayLike, positive: npt.ArrayLike) -> StatResult:
    """Weighted mean change in label rate per reference score bin, with a chi-square p-value
    (:func:`calibration_shift_of` on the counts of these rows)."""
    return calibration_shift_of(reference, RelationState.of(reference, 0, score, positive))


def calibration_shift_of(reference: ScoreCalibration, window: RelationState) -> StatResult:
    """Weighted mean change in label rate per reference score bin, with a chi-square p-value.

    The statistic is ``sum_b n_b |rate_window_b - rate_reference_b| / N`` over bins with window rows
    (0 = the window's labels follow the scores exactly as in the reference, 1 = the opposite).
    Reference rates are smoothed by half a count so an all-positive bin does not divide by zero.

    The p-value tests the window's positives per bin against the reference rates with
    ``X = sum_b (O_b - n_b r_b)^2 / V_b``. ``V_b = n_b r_b (1 - r_b) (1 + n_b / m_b)`` holds both sides'
    sampling variance (``m_b``: the reference's rows in the bin; at 1,000,000 rows an hour the window's
    bins are as large as a week's reference bins). When every bin expects at least
    ``MIN_EXPECTED_FOR_CHI2`` positives and negatives, ``X`` is chi-square with one degree of freedom
    per bin; otherwise the p-value is ``P(X >= x)`` under ``O_b ~ Binomial(n_b, r_b)``, computed
    exactly (:func:`exact_upper_tail`) — pooling the small bins instead lost the power to see labels
    that flip on both sides of the score (a flip on 50 rows pooled into one group was not seen).
    ``details.test`` says which.

    Notes
    -----
    NaN statistic and no p-value when the reference has no labelled rows with a score, or the window
    none; rows without a finite score or a label are left out.
    """
    return label_rate_change(reference, window.rows, window.positives)


def label_rate_change(reference: ScoreCalibration, rows: npt.ArrayLike, positives: npt.ArrayLike) -> StatResult:
    """:func:`calibration_shift_of` from the window's labelled rows with a score and their positives
    per reference score bin."""
    ref_n = np.asarray(reference.counts, dtype=np.float64)
    win_n = np.asarray(rows, dtype=np.float64)
    win_pos = np.asarray(positives, dtype=np.float64)
    if ref_n.size == 0:
        return StatResult(float("nan"), None, {"reason": "reference has no labelled rows with a score"})
    if win_n.sum() <= 0:
        return StatResult(float("nan"), None, {"reason": "window has no labelled rows with a score"})
    ref_pos = np.asarray(reference.positives, dtype=np.float64)
    ref_rate = (ref_pos + 0.5) / (ref_n + 1.0)
    used = win_n > 0
    win_rate = np.divide(win_pos, win_n, out=np.zeros_like(win_n), where=used)
    statistic = float(np.sum(win_n[used] * np.abs(win_rate[used] - ref_rate[used])) / win_n.sum())
    n, rate = win_n[used], ref_rate[used]
    variance = n * rate * (1 - rate) * (1 + n / np.maximum(ref_n[used], 1.0))
    chi2 = float(np.sum((win_pos[used] - n * rate) ** 2 / variance))
    dof = int(used.sum())
    if np.all(np.minimum(n * rate, n * (1 - rate)) >= MIN_EXPECTED_FOR_CHI2):
        pvalue, test = float(sps.chi2.sf(chi2, dof)), "chi2"
    else:
        pvalue, test = exact_upper_tail(n.astype(np.int64), rate, variance, chi2), "exact"
    table = [
        {
            "bin": b,
            "window_rows": int(win_n[b]),
            "window_rate": round(float(win_rate[b]), 4),
            "reference_rate": round(float(ref_rate[b]), 4),
        }
        for b in range(len(ref_n))
        if used[b]
    ]
    details = {"chi2": chi2, "dof": dof, "test": test, "labelled_rows": int(win_n.sum()), "bins": table}
    return StatResult(statistic, pvalue, details)


def exact_upper_tail(rows: np.ndarray, rate: np.ndarray, variance: np.ndarray, observed: float) -> float:
    """``P(sum_b (O_b - n_b r_b)^2 / V_b >= observed)`` for independent ``O_b ~ Binomial(n_b, r_b)``.

    Each bin's term takes ``n_b + 1`` values; their distributions are convolved on a grid of
    ``EXACT_GRID`` steps up to ``observed``, each value rounded *up* to the grid, so the p-value is
    never smaller than the exact one (and larger by at most the rounding: one step per bin).
    1.0 when ``observed <= 0``.

    Examples
    --------
    One bin of 10 rows at rate 0.5, 8 positives: ``(8 - 5)^2 / 2.5 = 3.6``, and
    ``P(|O - 5| >= 3) = 112 / 1024``.
    """
    if observed <= 0:
        return 1.0
    step = observed / EXACT_GRID
    # below[i]: P(the terms so far sum to i steps), for sums short of ``observed`` (i < EXACT_GRID).
    below = np.zeros(EXACT_GRID)
    below[0] = 1.0
    for n, r, v in zip(rows.tolist(), rate.tolist(), variance.tolist(), strict=True):
        k = np.arange(n + 1)
        # An exact multiple of the step stays where it is; anything else is rounded up.
        position = np.ceil((k - n * r) ** 2 / v / step * (1 - 1e-12)).astype(np.int64)
        short = position < EXACT_GRID
        masses = np.bincount(position[short], weights=sps.binom.pmf(k[short], n, r), minlength=EXACT_GRID)
        summed = np.zeros(EXACT_GRID)
        for shift in np.flatnonzero(masses).tolist():  # a few dozen values per bin: shifted copies
            summed[shift:] += masses[shift] * below[: EXACT_GRID - shift]
        below = summed
    return float(min(1.0, max(0.0, 1.0 - below.sum())))
