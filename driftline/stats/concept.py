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


def fit_calibration(score: npt.ArrayLike, positive: npt.ArrayLike, bins: int = 10) -> dict[str, Any]:
    """Reference label rate per score quantile bin. ``positive`` is 1/0 with NaN for unlabelled rows.

    Notes
    -----
    Only rows with both a finite score and a label count. With no such rows the summary is empty
    and every later comparison is undefined.
    """
    s, p = _labelled(score, positive)
    if s.size == 0:
        return {"edges": [], "counts": [], "positives": []}
    inner = np.unique(np.quantile(s, np.linspace(0, 1, bins + 1)[1:-1]))
    index = np.searchsorted(inner, s, side="right")
    counts = np.bincount(index, minlength=len(inner) + 1)
    positives = np.bincount(index, weights=p.astype(float), minlength=len(inner) + 1)
    return {"edges": inner.tolist(), "counts": counts.tolist(), "positives": positives.astype(int).tolist()}


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
        cls, reference: dict[str, Any], labelled: int, score: npt.ArrayLike, positive: npt.ArrayLike
    ) -> RelationState:
        bins = len(reference.get("counts") or [])
        s, p = _labelled(score, positive)
        index = np.searchsorted(np.asarray(reference.get("edges") or [], dtype=np.float64), s, side="right")
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


def calibration_shift(reference: dict[str, Any], score: npt.ArrayLike, positive: npt.ArrayLike) -> StatResult:
    """Weighted mean change in label rate per reference score bin, with a chi-square p-value
    (:func:`calibration_shift_of` on the counts of these rows)."""
    return calibration_shift_of(reference, RelationState.of(reference, 0, score, positive))


def calibration_shift_of(reference: dict[str, Any], window: RelationState) -> StatResult:
    """Weighted mean change in label rate per reference score bin, with a chi-square p-value.

    The statistic is ``sum_b n_b |rate_window_b - rate_reference_b| / N`` over bins with window rows
    (0 = the window's labels follow the scores exactly as in the reference, 1 = the opposite). The
    p-value tests the window's positives per bin against the reference rates (chi-square with one
    degree of freedom per bin), treating the reference rates as known; reference rates are smoothed
    by half a count so an all-positive bin does not divide by zero.
    """
    if not reference.get("counts"):
        return StatResult(float("nan"), None, {"reason": "reference has no labelled rows with a score"})
    if window.rows.sum() == 0:
        return StatResult(float("nan"), None, {"reason": "window has no labelled rows with a score"})
    ref_n = np.asarray(reference["counts"], dtype=np.float64)
    ref_pos = np.asarray(reference["positives"], dtype=np.float64)
    ref_rate = (ref_pos + 0.5) / (ref_n + 1.0)
    win_n, win_pos = window.rows, window.positives
    used = win_n > 0
    win_rate = np.divide(win_pos, win_n, out=np.zeros_like(win_n), where=used)
    statistic = float(np.sum(win_n[used] * np.abs(win_rate[used] - ref_rate[used])) / win_n.sum())
    expected = win_n[used] * ref_rate[used]
    variance = win_n[used] * ref_rate[used] * (1 - ref_rate[used])
    chi2 = float(np.sum((win_pos[used] - expected) ** 2 / variance))
    dof = int(used.sum())
    pvalue = float(sps.chi2.sf(chi2, dof)) if dof else 1.0
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
    return StatResult(statistic, pvalue, {"chi2": chi2, "dof": dof, "labelled_rows": int(win_n.sum()), "bins": table})
