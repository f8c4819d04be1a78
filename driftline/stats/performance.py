"""Performance metrics from mergeable sufficient statistics; pure, no I/O.

A window's rows are folded block by block into a :class:`PerformanceState` (counts, sums and
moments); states of disjoint row sets merge by addition (blocks into an hour, hours into a day), and
the metrics are evaluated from the merged state. The metrics equal scikit-learn's on the same rows
(to float rounding), with these documented approximations:

* ``roc_auc`` is the Mann-Whitney statistic over the distinct scores with their positive and
  negative counts, exact while a state holds at most ``AUC_MAX_DISTINCT`` distinct scores. Beyond
  that, scores in [0, 1] are counted on ``AUC_GRID`` equal-width bins (a pair in one bin counts one
  half, as a tie): the error is at most half the share of positive-negative pairs that share a bin
  (measured against ``sklearn.metrics.roc_auc_score`` on 1M rows: see tests/stats/test_performance.py).
  Scores outside [0, 1] are kept exact (memory grows with their distinct values).
* Labels and predictions are compared as numbers when every value of a block (and the positive
  label) is numeric, else as text — decided per block, where the frame path decided it over all
  rows; the two differ only for a text column whose values are numbers in one block and not in
  another (a column read from the database has one type for all blocks).

Edge cases as :func:`driftline.tasks.performance.compute_metrics`: a metric undefined on the rows
(no rows, one class for ``roc_auc``, no predicted positives for ``precision``, fewer than two rows
for ``r2``, a score outside [0, 1] for the probability metrics) is NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

NAN = float("nan")
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1")
SCORE_METRICS = ("roc_auc", "log_loss", "brier_score", "calibration_error")
REGRESSION_METRICS = ("mae", "rmse", "mape", "r2")
CALIBRATION_BINS = 10
#: Minimum expected positives (and negatives) per Hosmer-Lemeshow group.
MIN_EXPECTED = 5.0
#: Distinct scores a state keeps exactly before counting scores in [0, 1] on ``AUC_GRID`` bins.
AUC_MAX_DISTINCT = 1 << 16
AUC_GRID = 1 << 16
_EPS = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------------------------
# Moments: count, mean and sum of squared deviations, merged with Chan et al.'s formula
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moments:
    """Count, mean and sum of squared deviations (``m2``) of some values; merges exactly (Chan et al.)."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    @classmethod
    def of(cls, values: np.ndarray) -> Moments:
        if values.size == 0:
            return cls()
        mean = float(values.mean())
        return cls(int(values.size), mean, float(((values - mean) ** 2).sum()))

    def merge(self, other: Moments) -> Moments:
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * other.count / count
        m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / count
        return Moments(count, mean, m2)

    @property
    def total(self) -> float:
        return self.mean * self.count

    def std(self) -> float | None:
        """Sample standard deviation (ddof 1); ``None`` below two values."""
        return math.sqrt(max(self.m2, 0.0) / (self.count - 1)) if self.count > 1 else None

    def to_json(self) -> list[float]:
        return [self.count, self.mean, self.m2]

    @classmethod
    def from_json(cls, data: list[float]) -> Moments:
        return cls(int(data[0]), float(data[1]), float(data[2]))


# --------------------------------------------------------------------------------------------
# Comparing labels and predictions
# --------------------------------------------------------------------------------------------


def numeric_or_none(values: pd.Series) -> np.ndarray | None:
    """Float values when every non-null value is a number, else None."""
    if values.dtype == bool:
        return values.to_numpy(dtype=np.float64)
    converted = pd.to_numeric(values, errors="coerce")
    if int(converted.isna().sum()) != int(values.isna().sum()):
        return None
    return converted.to_numpy(dtype=np.float64, na_value=np.nan)


def comparable(*columns: pd.Series, positive_label: float | str) -> tuple[list[np.ndarray], Any]:
    """Columns (without nulls) and the positive label as numbers if they all are, else as text."""
    numeric = [numeric_or_none(c) for c in columns]
    try:
        positive: Any = float(positive_label)
    except (TypeError, ValueError):
        positive = None
    if positive is not None and all(n is not None for n in numeric):
        return [n for n in numeric if n is not None], positive
    return [c.astype(str).to_numpy(dtype=object) for c in columns], str(positive_label)


def _floats(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


# --------------------------------------------------------------------------------------------
# The state
# --------------------------------------------------------------------------------------------


def _zeros() -> np.ndarray:
    return np.zeros(CALIBRATION_BINS, dtype=np.float64)


@dataclass
class ScoreCounts:
    """Positive and negative counts per distinct score (sorted): what ROC AUC needs, mergeable."""

    scores: np.ndarray = field(default_factory=lambda: np.empty(0))
    positives: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    negatives: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    #: True once the scores in [0, 1] are counted on the ``AUC_GRID`` bins (each bin at its centre).
    gridded: bool = False

    @classmethod
    def of(cls, y: np.ndarray, s: np.ndarray) -> ScoreCounts:
        values, inverse = np.unique(s, return_inverse=True)
        positives = np.bincount(inverse, weights=y, minlength=values.size).astype(np.int64)
        totals = np.bincount(inverse, minlength=values.size).astype(np.int64)
        return cls(values, positives, totals - positives)._bounded()

    def _bounded(self, gridded: bool = False) -> ScoreCounts:
        gridded = gridded or self.gridded
        if not gridded and self.scores.size <= AUC_MAX_DISTINCT:
            return self
        unit = (self.scores >= 0) & (self.scores <= 1)
        # A bin's centre maps back to the same bin, so gridding twice (a merge of gridded states) is stable.
        bins = np.minimum(np.floor(self.scores[unit] * AUC_GRID), AUC_GRID - 1)
        scores = np.concatenate([(bins + 0.5) / AUC_GRID, self.scores[~unit]])
        return ScoreCounts._sum(
            scores,
            np.concatenate([self.positives[unit], self.positives[~unit]]),
            np.concatenate([self.negatives[unit], self.negatives[~unit]]),
            True,
        )

    @staticmethod
    def _sum(scores: np.ndarray, positives: np.ndarray, negatives: np.ndarray, gridded: bool) -> ScoreCounts:
        values, inverse = np.unique(scores, return_inverse=True)
        return ScoreCounts(
            values,
            np.bincount(inverse, weights=positives, minlength=values.size).astype(np.int64),
            np.bincount(inverse, weights=negatives, minlength=values.size).astype(np.int64),
            gridded,
        )

    def merge(self, other: ScoreCounts) -> ScoreCounts:
        gridded = self.gridded or other.gridded
        merged = ScoreCounts._sum(
            np.concatenate([self.scores, other.scores]),
            np.concatenate([self.positives, other.positives]),
            np.concatenate([self.negatives, other.negatives]),
            False,
        )
        return merged._bounded(gridded)

    def roc_auc(self) -> float:
        """The Mann-Whitney statistic: P(score of a positive > score of a negative), ties one half."""
        positives, negatives = int(self.positives.sum()), int(self.negatives.sum())
        if positives == 0 or negatives == 0:
            return NAN
        negatives_below = np.cumsum(self.negatives) - self.negatives
        wins = float((self.positives * negatives_below).sum()) + 0.5 * float((self.positives * self.negatives).sum())
        return wins / (positives * negatives)

    def to_json(self) -> dict[str, Any]:
        return {
            "scores": self.scores.tolist(),
            "positives": self.positives.tolist(),
            "negatives": self.negatives.tolist(),
            "gridded": self.gridded,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScoreCounts:
        return cls(
            np.asarray(data["scores"], dtype=np.float64),
            np.asarray(data["positives"], dtype=np.int64),
            np.asarray(data["negatives"], dtype=np.int64),
            bool(data.get("gridded", False)),
        )


@dataclass
class PerformanceState:
    """Sufficient statistics of a model's performance on some rows; merges by addition.

    Classification: ``compared`` rows with a label and a prediction, of which ``correct`` agree;
    ``predicted_positives``, ``actual_positives`` and ``true_positives`` of the positive label. With
    scores: ``score_counts`` (ROC AUC), the per-row log loss and squared error (``log_loss``,
    ``brier``: moments), ``out_of_unit`` scores outside [0, 1] (which make the probability metrics
    NaN), and per calibration bin (ten equal-width bins of [0, 1], right-closed, the first holding 0):
    rows, positives, score sum and ``score * (1 - score)`` sum. Regression: moments of the absolute,
    squared and absolute percentage errors and of the labels (``r2``).
    """

    task: str
    rows: int = 0
    labelled: int = 0
    compared: int = 0
    correct: int = 0
    predicted_positives: int = 0
    actual_positives: int = 0
    true_positives: int = 0
    score_counts: ScoreCounts = field(default_factory=ScoreCounts)
    out_of_unit: int = 0
    log_loss: Moments = field(default_factory=Moments)
    brier: Moments = field(default_factory=Moments)
    bin_rows: np.ndarray = field(default_factory=_zeros)
    bin_positives: np.ndarray = field(default_factory=_zeros)
    bin_scores: np.ndarray = field(default_factory=_zeros)
    bin_variance: np.ndarray = field(default_factory=_zeros)
    absolute_error: Moments = field(default_factory=Moments)
    squared_error: Moments = field(default_factory=Moments)
    percentage_error: Moments = field(default_factory=Moments)
    truth: Moments = field(default_factory=Moments)
    #: Whether the rows had a score column (a classifier with ``score_column``).
    scored: bool = False

    # ---- folding ---------------------------------------------------------------------------

    @classmethod
    def fold(
        cls, task: str, truth: pd.Series, pred: pd.Series, score: pd.Series | None, positive_label: float | str = 1
    ) -> PerformanceState:
        """The state of one block of rows (aligned series; NULL/NaN labels count as unlabelled)."""
        truth, pred = truth.reset_index(drop=True), pred.reset_index(drop=True)
        labelled = truth.notna().to_numpy()
        state = cls(task, rows=len(truth), labelled=int(labelled.sum()), scored=score is not None)
        if task == "regression":
            t_all, p_all = _floats(truth), _floats(pred)
            keep = np.isfinite(t_all) & np.isfinite(p_all)
            t, p = t_all[keep], p_all[keep]
            errors = np.abs(t - p)
            state.absolute_error = Moments.of(errors)
            state.squared_error = Moments.of(errors**2)
            state.percentage_error = Moments.of(errors / np.maximum(np.abs(t), _EPS))
            state.truth = Moments.of(t)
            return state
        if task != "classification":
            raise ValueError(f"unknown task {task!r}; expected 'classification' or 'regression'")
        keep = labelled & pred.notna().to_numpy()
        if keep.any():
            (t, p), positive = comparable(truth[keep], pred[keep], positive_label=positive_label)
            true_pos, pred_pos = t == positive, p == positive
            state.compared = int(keep.sum())
            state.correct = int((t == p).sum())
            state.predicted_positives = int(pred_pos.sum())
            state.actual_positives = int(true_pos.sum())
            state.true_positives = int((true_pos & pred_pos).sum())
        if score is None:
            return state
        s_all = _floats(score.reset_index(drop=True))
        keep = labelled & np.isfinite(s_all)
        if not keep.any():
            return state
        (t,), positive = comparable(truth[keep], positive_label=positive_label)
        y = (t == positive).astype(np.int64)
        s = s_all[keep]
        state.score_counts = ScoreCounts.of(y, s)
        unit = (s >= 0) & (s <= 1)
        state.out_of_unit = int((~unit).sum())
        if state.out_of_unit:
            return state  # the probability metrics are NaN whatever else the rows hold
        clipped = np.clip(s, _EPS, 1 - _EPS)
        state.log_loss = Moments.of(-(y * np.log(clipped) + (1 - y) * np.log1p(-clipped)))
        state.brier = Moments.of((y - s) ** 2.0)
        bins = np.searchsorted(np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)[1:-1], s)
        state.bin_rows = np.bincount(bins, minlength=CALIBRATION_BINS).astype(np.float64)
        state.bin_positives = np.bincount(bins, weights=y, minlength=CALIBRATION_BINS)
        state.bin_scores = np.bincount(bins, weights=s, minlength=CALIBRATION_BINS)
        state.bin_variance = np.bincount(bins, weights=s * (1 - s), minlength=CALIBRATION_BINS)
        return state

    def merge(self, other: PerformanceState) -> PerformanceState:
        """The state of both row sets (disjoint rows of one model)."""
        if self.task != other.task:
            raise ValueError(f"cannot merge performance states of tasks {self.task!r} and {other.task!r}")
        return PerformanceState(
            self.task,
            self.rows + other.rows,
            self.labelled + other.labelled,
            self.compared + other.compared,
            self.correct + other.correct,
            self.predicted_positives + other.predicted_positives,
            self.actual_positives + other.actual_positives,
            self.true_positives + other.true_positives,
            self.score_counts.merge(other.score_counts),
            self.out_of_unit + other.out_of_unit,
            self.log_loss.merge(other.log_loss),
            self.brier.merge(other.brier),
            self.bin_rows + other.bin_rows,
            self.bin_positives + other.bin_positives,
            self.bin_scores + other.bin_scores,
            self.bin_variance + other.bin_variance,
            self.absolute_error.merge(other.absolute_error),
            self.squared_error.merge(other.squared_error),
            self.percentage_error.merge(other.percentage_error),
            self.truth.merge(other.truth),
            self.scored or other.scored,
        )

    # ---- evaluating ------------------------------------------------------------------------

    @property
    def scored_rows(self) -> int:
        return int(self.score_counts.positives.sum() + self.score_counts.negatives.sum())

    @property
    def probabilities(self) -> bool:
        """Scores were seen and all lie in [0, 1]."""
        return self.scored_rows > 0 and self.out_of_unit == 0

    def metrics(self) -> dict[str, float]:
        """Every metric of the task (see the module docstring), NaN where undefined."""
        if self.task == "regression":
            n = self.absolute_error.count
            if n == 0:
                return dict.fromkeys(REGRESSION_METRICS, NAN)
            residual = self.squared_error.total
            spread = self.truth.m2
            if n < 2:
                r2 = NAN
            elif spread > 0:
                r2 = 1.0 - residual / spread
            else:  # scikit-learn's force_finite: a constant label is fitted perfectly or not at all
                r2 = 1.0 if residual == 0 else 0.0
            return {
                "mae": self.absolute_error.mean,
                "rmse": math.sqrt(max(self.squared_error.mean, 0.0)),
                "mape": self.percentage_error.mean,
                "r2": r2,
            }
        out = dict.fromkeys(CLASSIFICATION_METRICS, NAN)
        if self.compared:
            tp = self.true_positives
            out["accuracy"] = self.correct / self.compared
            out["precision"] = tp / self.predicted_positives if self.predicted_positives else NAN
            out["recall"] = tp / self.actual_positives if self.actual_positives else NAN
            denominator = self.predicted_positives + self.actual_positives
            out["f1"] = 2 * tp / denominator if denominator else NAN
        if not self.scored:
            return out
        out |= dict.fromkeys(SCORE_METRICS, NAN)
        if self.scored_rows:
            out["roc_auc"] = self.score_counts.roc_auc()
        if self.probabilities:
            out["log_loss"] = self.log_loss.mean
            out["brier_score"] = self.brier.mean
            out["calibration_error"] = self.calibration_error()
        return out

    def sampling(self) -> dict[str, Any]:
        """What the significance tests of the overall metrics need (the stored ``sampling`` block)."""
        if self.task == "regression":
            return {
                "n": self.absolute_error.count,
                "mae_std": self.absolute_error.std(),
                "mse_std": self.squared_error.std(),
                "mape_std": self.percentage_error.std(),
            }
        out: dict[str, Any] = {
            "n": self.compared,
            "predicted_positives": self.predicted_positives,
            "actual_positives": self.actual_positives,
        }
        if not self.scored:
            return out
        positives = int(self.score_counts.positives.sum())
        out |= {"positives": positives, "negatives": self.scored_rows - positives}
        if self.probabilities:
            out["log_loss_std"] = self.log_loss.std()
            out["brier_score_std"] = self.brier.std()
        return out

    def calibration_error(self) -> float:
        """Expected calibration error over the ten bins: ``sum_b |positives_b - score sum_b| / N``."""
        if not self.probabilities:
            return NAN
        return float(np.abs(self.bin_positives - self.bin_scores)[self.bin_rows > 0].sum() / self.bin_rows.sum())

    def calibration_pvalue(self) -> float:
        """Hosmer-Lemeshow p-value that the scores are calibrated (see
        :func:`driftline.tasks.performance.calibration_pvalue`); NaN without probability scores."""
        if not self.probabilities:
            return NAN
        return hosmer_lemeshow(self.bin_rows, self.bin_positives, self.bin_scores, self.bin_variance)

    # ---- storing ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "performance",
            "task": self.task,
            "counts": [
                self.rows,
                self.labelled,
                self.compared,
                self.correct,
                self.predicted_positives,
                self.actual_positives,
                self.true_positives,
                self.out_of_unit,
            ],
            "scored": self.scored,
            "score_counts": self.score_counts.to_json(),
            "moments": {
                "log_loss": self.log_loss.to_json(),
                "brier": self.brier.to_json(),
                "absolute_error": self.absolute_error.to_json(),
                "squared_error": self.squared_error.to_json(),
                "percentage_error": self.percentage_error.to_json(),
                "truth": self.truth.to_json(),
            },
            "bins": [
                self.bin_rows.tolist(),
                self.bin_positives.tolist(),
                self.bin_scores.tolist(),
                self.bin_variance.tolist(),
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PerformanceState:
        counts = [int(c) for c in data["counts"]]
        moments = {k: Moments.from_json(v) for k, v in data["moments"].items()}
        bins = [np.asarray(b, dtype=np.float64) for b in data["bins"]]
        return cls(
            str(data["task"]),
            *counts[:7],
            score_counts=ScoreCounts.from_json(data["score_counts"]),
            out_of_unit=counts[7],
            log_loss=moments["log_loss"],
            brier=moments["brier"],
            bin_rows=bins[0],
            bin_positives=bins[1],
            bin_scores=bins[2],
            bin_variance=bins[3],
            absolute_error=moments["absolute_error"],
            squared_error=moments["squared_error"],
            percentage_error=moments["percentage_error"],
            truth=moments["truth"],
            scored=bool(data["scored"]),
        )


def hosmer_lemeshow(rows: np.ndarray, observed: np.ndarray, expected: np.ndarray, variance: np.ndarray) -> float:
    """Hosmer-Lemeshow p-value from per-bin rows, positives, score sums and ``score * (1 - score)`` sums.

    Chi-square with one degree of freedom per group (the scores are not fitted to these rows). A bin
    whose scores are all 0 or 1 and whose outcomes disagree gives 0. Adjacent bins are merged, left
    to right, until each group has >= ``MIN_EXPECTED`` expected positives and negatives (a bin of
    scores near 0 with one positive would otherwise dominate: 1.7% false alerts at 100 rows).
    """
    counted = rows > 0
    gap = np.abs(observed - expected)
    if np.any(counted & (variance <= 1e-12) & (gap > 1e-9)):
        return 0.0
    groups: list[tuple[float, float, float]] = []
    acc = [0.0, 0.0, 0.0, 0.0]
    for b in range(rows.size):
        acc = [acc[0] + observed[b], acc[1] + expected[b], acc[2] + variance[b], acc[3] + rows[b]]
        if acc[1] >= MIN_EXPECTED and acc[3] - acc[1] >= MIN_EXPECTED:
            groups.append((acc[0], acc[1], acc[2]))
            acc = [0.0, 0.0, 0.0, 0.0]
    if acc[3] > 0:
        if groups:
            last = groups.pop()
            groups.append((last[0] + acc[0], last[1] + acc[1], last[2] + acc[2]))
        else:
            groups.append((acc[0], acc[1], acc[2]))
    usable = [(o, e, v) for o, e, v in groups if v > 1e-12]
    if not usable:
        return 1.0
    statistic = float(sum((o - e) ** 2 / v for o, e, v in usable))
    return float(stats.chi2.sf(statistic, len(usable)))
