"""Performance metrics from mergeable sufficient statistics; pure, no I/O.

A window's rows are folded block by block into a :class:`PerformanceState` (counts, sums and
moments); states of disjoint row sets merge by addition (blocks into an hour, hours into a day), and
the metrics are evaluated from the merged state. The metrics equal scikit-learn's on the same rows
(to float rounding), with these documented approximations:

* ``roc_auc`` is the Mann-Whitney statistic over the distinct scores with their positive and
  negative counts, exact while a state holds at most ``grid`` distinct scores (``AUC_GRID`` = 65,536
  overall, ``SEGMENT_AUC_GRID`` = 4,096 per feature segment: an hour of 10,000 rows stays exact).
  Beyond that, scores in [0, 1] are counted on ``grid`` equal-width bins (a pair in one bin counts one
  half, as a tie): the error is at most half the share of positive-negative pairs that share a bin.
  Measured against ``sklearn.metrics.roc_auc_score`` (100k-1M rows, beta(2, 2) and beta(0.5, 8)
  scores): at most 4e-7 on 65,536 bins; on 4,096 bins at most 4.8e-5 (5k-1M rows). A stored state
  keeps ``STORED_AUC_GRID`` = 1,024 bins (segments ``STORED_SEGMENT_AUC_GRID`` = 64), so days and
  weeks merged from stored hours carry a coarser AUC (measured at most 4.4e-5 on 1,024 bins and
  ~1e-3 on 64). Scores outside [0, 1] are kept exact (memory grows with their distinct values).
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
#: Distinct scores a state keeps exactly before counting scores in [0, 1] on this many equal-width bins
#: (the window overall; each feature segment on ``SEGMENT_AUC_GRID``, as there are ~10 per feature).
AUC_GRID = 1 << 16
SEGMENT_AUC_GRID = 1 << 12
#: The coarser bins a stored state (the hourly window profile, merged into days and weeks) keeps: a
#: state's JSON stays small (the finer bins would store up to ~200,000 numbers per window).
STORED_AUC_GRID = 1 << 10
STORED_SEGMENT_AUC_GRID = 1 << 6
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
    #: Beyond this many distinct scores, those in [0, 1] are counted on this many equal-width bins.
    grid: int = AUC_GRID
    #: True once they are (each bin at its centre).
    gridded: bool = False

    @classmethod
    def of(cls, y: np.ndarray, s: np.ndarray, grid: int = AUC_GRID) -> ScoreCounts:
        values, inverse = np.unique(s, return_inverse=True)
        positives = np.bincount(inverse, weights=y, minlength=values.size).astype(np.int64)
        totals = np.bincount(inverse, minlength=values.size).astype(np.int64)
        return cls(values, positives, totals - positives, grid)._bounded()

    def _bounded(self) -> ScoreCounts:
        """These counts, on the grid once they hold more than ``grid`` distinct scores (or already are)."""
        if not self.gridded and self.scores.size <= self.grid:
            return self
        # A bin's centre maps back to the same bin, so gridding twice (a merge of gridded states) is stable.
        return ScoreCounts._gridded_sum(self)

    @staticmethod
    def _sum(scores: np.ndarray, positives: np.ndarray, negatives: np.ndarray, grid: int, gridded: bool) -> ScoreCounts:
        values, inverse = np.unique(scores, return_inverse=True)
        return ScoreCounts(
            values,
            np.bincount(inverse, weights=positives, minlength=values.size).astype(np.int64),
            np.bincount(inverse, weights=negatives, minlength=values.size).astype(np.int64),
            grid,
            gridded,
        )

    @staticmethod
    def _gridded_sum(*parts: ScoreCounts) -> ScoreCounts:
        """``_sum`` then ``_bounded`` of parts on one grid when the result is gridded: the scores in
        [0, 1] are counted per bin with ``bincount`` (no sort), the others summed exactly as
        ``_sum`` does. The same arrays as the sorting route, in a fraction of its time (a streamed
        window merges ~200 segment states per block)."""
        grid = parts[0].grid
        scores = np.concatenate([p.scores for p in parts])
        positives = np.concatenate([p.positives for p in parts])
        negatives = np.concatenate([p.negatives for p in parts])
        unit = (scores >= 0) & (scores <= 1)
        bins = np.minimum(np.floor(scores[unit] * grid), grid - 1).astype(np.int64)
        bin_positives = np.bincount(bins, weights=positives[unit], minlength=grid)
        bin_negatives = np.bincount(bins, weights=negatives[unit], minlength=grid)
        used = np.flatnonzero(np.bincount(bins, minlength=grid))
        unit_part = ((used + 0.5) / grid, bin_positives[used].astype(np.int64), bin_negatives[used].astype(np.int64))
        if unit.all():
            return ScoreCounts(*unit_part, grid, True)
        rest = ScoreCounts._sum(scores[~unit], positives[~unit], negatives[~unit], grid, True)
        below = rest.scores < 0  # the bin centres lie inside (0, 1): the exact rest goes around them
        return ScoreCounts(
            np.concatenate([rest.scores[below], unit_part[0], rest.scores[~below]]),
            np.concatenate([rest.positives[below], unit_part[1], rest.positives[~below]]),
            np.concatenate([rest.negatives[below], unit_part[2], rest.negatives[~below]]),
            grid,
            True,
        )

    def merge(self, other: ScoreCounts) -> ScoreCounts:
        if not other.scores.size:
            return self
        if not self.scores.size:
            return other
        if self.grid != other.grid:
            raise ValueError(f"cannot merge score counts on {self.grid} and {other.grid} bins")
        if self.gridded or other.gridded:
            return ScoreCounts._gridded_sum(self, other)
        merged = ScoreCounts._sum(
            np.concatenate([self.scores, other.scores]),
            np.concatenate([self.positives, other.positives]),
            np.concatenate([self.negatives, other.negatives]),
            self.grid,
            self.gridded or other.gridded,
        )
        return merged._bounded()

    def coarsened(self, grid: int) -> ScoreCounts:
        """The same counts on ``grid`` bins (a divisor of this state's grid); as is if already there."""
        if grid >= self.grid:
            return self
        if self.grid % grid:
            raise ValueError(f"{grid} bins do not nest in {self.grid}")
        coarse = ScoreCounts(self.scores, self.positives, self.negatives, grid, self.gridded)
        return coarse._bounded()

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
            "grid": self.grid,
            "gridded": self.gridded,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScoreCounts:
        return cls(
            np.asarray(data["scores"], dtype=np.float64),
            np.asarray(data["positives"], dtype=np.int64),
            np.asarray(data["negatives"], dtype=np.int64),
            int(data["grid"]),
            bool(data["gridded"]),
        )


@dataclass
class RowFacts:
    """Per-row facts of one block that every state of it (overall, per segment) is counted from.

    Classification: ``compared`` (label and prediction known), ``correct``, ``true_positive``,
    ``predicted_positive`` (False where not compared); with scores ``scored_rows`` (label and a finite
    score), ``y`` (1 for the positive class) and ``s``. Regression: ``kept`` (both finite), absolute
    ``errors`` and labels ``t``. Labels are compared as numbers or text per block (module docstring).
    """

    task: str
    labelled: np.ndarray
    scored: bool
    compared: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    correct: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    true_positive: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    predicted_positive: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    scored_rows: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    y: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    s: np.ndarray = field(default_factory=lambda: np.empty(0))
    kept: np.ndarray = field(default_factory=lambda: np.empty(0, bool))
    errors: np.ndarray = field(default_factory=lambda: np.empty(0))
    t: np.ndarray = field(default_factory=lambda: np.empty(0))
    _score_order: np.ndarray | None = field(default=None, repr=False, compare=False)

    def score_order(self) -> np.ndarray:
        """Positions that sort the scored rows (``s[scored_rows]``) by score; computed once per block."""
        if self._score_order is None:
            self._score_order = np.argsort(self.s[self.scored_rows], kind="stable")
        return self._score_order

    @classmethod
    def of(
        cls, task: str, truth: pd.Series, pred: pd.Series, score: pd.Series | None, positive_label: float | str = 1
    ) -> RowFacts:
        truth, pred = truth.reset_index(drop=True), pred.reset_index(drop=True)
        labelled = truth.notna().to_numpy()
        n = labelled.size
        if task == "regression":
            t, p = _floats(truth), _floats(pred)
            kept = np.isfinite(t) & np.isfinite(p)
            return cls(task, labelled, False, kept=kept, errors=np.abs(t - p), t=t)
        if task != "classification":
            raise ValueError(f"unknown task {task!r}; expected 'classification' or 'regression'")
        facts = cls(task, labelled, score is not None)
        compared = labelled & pred.notna().to_numpy()
        facts.compared = compared
        facts.correct, facts.true_positive, facts.predicted_positive = (np.zeros(n, bool) for _ in range(3))
        if compared.any():
            (t_c, p_c), positive = comparable(truth[compared], pred[compared], positive_label=positive_label)
            facts.correct[compared] = t_c == p_c
            facts.true_positive[compared] = t_c == positive
            facts.predicted_positive[compared] = p_c == positive
        if score is None:
            return facts
        facts.s = _floats(score.reset_index(drop=True))
        facts.scored_rows = labelled & np.isfinite(facts.s)
        facts.y = np.zeros(n, np.int64)
        if facts.scored_rows.any():
            (t_s,), positive = comparable(truth[facts.scored_rows], positive_label=positive_label)
            facts.y[facts.scored_rows] = t_s == positive
        return facts


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
        return cls.of_rows(RowFacts.of(task, truth, pred, score, positive_label))

    @classmethod
    def of_rows(
        cls, facts: RowFacts, positions: np.ndarray | None = None, *, segment: bool = False
    ) -> PerformanceState:
        """The state of the rows at ``positions`` (all when None). ``segment``: only what a segment's
        metric needs (rows, labels, accuracy counts, ROC AUC counts on ``SEGMENT_AUC_GRID``, absolute
        errors), for the ~10 segments of every feature."""

        def at(values: np.ndarray) -> np.ndarray:
            return values if positions is None else values[positions]

        labelled = at(facts.labelled)
        state = cls(facts.task, rows=int(labelled.size), labelled=int(labelled.sum()), scored=facts.scored)
        if facts.task == "regression":
            kept = at(facts.kept)
            errors, t = at(facts.errors)[kept], at(facts.t)[kept]
            state.absolute_error = Moments.of(errors)
            if not segment:
                state.squared_error = Moments.of(errors**2)
                state.percentage_error = Moments.of(errors / np.maximum(np.abs(t), _EPS))
                state.truth = Moments.of(t)
            return state
        compared = at(facts.compared)
        state.compared = int(compared.sum())
        state.correct = int(at(facts.correct).sum())
        if not segment:
            true_pos, pred_pos = at(facts.true_positive), at(facts.predicted_positive)
            state.predicted_positives = int(pred_pos.sum())
            state.actual_positives = int(true_pos.sum())
            state.true_positives = int((true_pos & pred_pos).sum())
        if not facts.scored:
            return state
        scored = at(facts.scored_rows)
        if not scored.any():
            if segment:
                state.score_counts = ScoreCounts(grid=SEGMENT_AUC_GRID)
            return state
        y, s = at(facts.y)[scored], at(facts.s)[scored]
        state.score_counts = ScoreCounts.of(y, s, SEGMENT_AUC_GRID if segment else AUC_GRID)
        unit = (s >= 0) & (s <= 1)
        state.out_of_unit = int((~unit).sum())
        if segment or state.out_of_unit:
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

    @classmethod
    def segment_states(cls, facts: RowFacts, codes: np.ndarray, size: int) -> dict[int, PerformanceState]:
        """``of_rows(facts, positions, segment=True)`` of every segment at once, keyed by code (``codes``:
        each row's segment, in ``0..size-1``), in order of the segments' first rows.

        A classifier's counts are ``bincount``s over the codes, and its score counts one sort by
        (segment, score) split per segment, instead of one pass over the rows per segment.
        """
        n = codes.size
        rows = np.bincount(codes, minlength=size)
        present = np.flatnonzero(rows)
        firsts = [int(np.argmax(codes == code)) for code in present]
        present = present[np.argsort(firsts, kind="stable")]
        if facts.task != "classification":
            order = np.argsort(codes, kind="stable")
            bounds = np.concatenate([[0], np.cumsum(rows)])
            return {
                int(c): cls.of_rows(facts, order[bounds[c] : bounds[c + 1]], segment=True) for c in present
            }
        labelled = np.bincount(codes, weights=facts.labelled, minlength=size)
        compared = np.bincount(codes, weights=facts.compared, minlength=size)
        correct = np.bincount(codes, weights=facts.correct, minlength=size)
        states = {
            int(c): cls(
                facts.task,
                rows=int(rows[c]),
                labelled=int(labelled[c]),
                compared=int(compared[c]),
                correct=int(correct[c]),
                scored=facts.scored,
            )
            for c in present
        }
        if not facts.scored or n == 0:
            return states
        scored = facts.scored_rows
        score_codes, s, y = codes[scored], facts.s[scored], facts.y[scored]
        # By segment, then score: a stable sort of the codes over the rows already sorted by score.
        by_score = facts.score_order()
        # Small integer codes sort stably by radix (linear); int64 would take a merge sort.
        narrow = score_codes[by_score].astype(np.int16) if size < (1 << 15) else score_codes[by_score]
        order = by_score[np.argsort(narrow, kind="stable")]
        k, v, t = score_codes[order], s[order], y[order]
        starts = np.flatnonzero(np.concatenate([[True], (k[1:] != k[:-1]) | (v[1:] != v[:-1])])) if k.size else k
        distinct_codes, distinct_scores = k[starts], v[starts]
        positives = np.add.reduceat(t, starts) if k.size else t
        totals = np.diff(np.append(starts, k.size))
        spans = np.searchsorted(distinct_codes, np.arange(size + 1))
        outside = np.bincount(score_codes, weights=(s < 0) | (s > 1), minlength=size)
        for c in present:
            state = states[int(c)]
            a, b = spans[c], spans[c + 1]
            if a == b:
                state.score_counts = ScoreCounts(grid=SEGMENT_AUC_GRID)
                continue
            pos = positives[a:b].astype(np.int64)
            state.score_counts = ScoreCounts(
                distinct_scores[a:b], pos, totals[a:b].astype(np.int64) - pos, SEGMENT_AUC_GRID
            )._bounded()
            state.out_of_unit = int(outside[c])
        return states

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
        """Expected calibration error over the ten bins: ``sum_b |positives_b - score sum_b| / N``. NaN
        without probability scores, and when no labelled row has a score (N = 0: nothing to compare)."""
        rows = self.bin_rows.sum()
        if not self.probabilities or rows == 0:
            return NAN
        return float(np.abs(self.bin_positives - self.bin_scores)[self.bin_rows > 0].sum() / rows)

    def calibration_pvalue(self) -> float:
        """Hosmer-Lemeshow p-value that the scores are calibrated (see
        :func:`driftline.tasks.performance.calibration_pvalue`); NaN without probability scores."""
        if not self.probabilities:
            return NAN
        return hosmer_lemeshow(self.bin_rows, self.bin_positives, self.bin_scores, self.bin_variance)

    # ---- storing ---------------------------------------------------------------------------

    def to_json(self, grid: int = STORED_AUC_GRID) -> dict[str, Any]:
        """JSON of the state, its ROC AUC counts on at most ``grid`` bins (see the module docstring)."""
        return {
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
            "score_counts": self.score_counts.coarsened(grid).to_json(),
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


@dataclass
class WindowPerformance:
    """A window's performance state: overall, and per feature per segment (names as the reference's
    segments); merges by addition, segments in order of first appearance. ``label_present`` is False
    when the rows had no label column at all."""

    overall: PerformanceState
    segments: dict[str, dict[str, PerformanceState]] = field(default_factory=dict)
    label_present: bool = True

    @classmethod
    def of_rows(
        cls,
        facts: RowFacts,
        segments: dict[str, tuple[np.ndarray, list[str]]],
        label_present: bool = True,
    ) -> WindowPerformance:
        """``segments``: per feature, the rows' integer codes into a list of segment names
        (``(codes, names)``, as ``tasks.performance.segment_codes`` gives them)."""
        per_feature: dict[str, dict[str, PerformanceState]] = {}
        for feature, (codes, names) in segments.items():
            states = PerformanceState.segment_states(facts, codes, len(names))
            per_feature[feature] = {}
            for code, state in states.items():
                # A name listed twice (codes point at its first place) is one segment.
                name = str(names[code])
                mine = per_feature[feature].get(name)
                per_feature[feature][name] = state if mine is None else mine.merge(state)
        return cls(PerformanceState.of_rows(facts), per_feature, label_present)

    def merge(self, other: WindowPerformance) -> WindowPerformance:
        segments = {feature: dict(states) for feature, states in self.segments.items()}
        for feature, theirs in other.segments.items():
            mine = segments.setdefault(feature, {})
            for name, state in theirs.items():
                mine[name] = mine[name].merge(state) if name in mine else state
        return WindowPerformance(
            self.overall.merge(other.overall), segments, self.label_present and other.label_present
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "performance",
            "overall": self.overall.to_json(STORED_AUC_GRID),
            "segments": {
                f: {k: v.to_json(STORED_SEGMENT_AUC_GRID) for k, v in s.items()} for f, s in self.segments.items()
            },
            "label_present": self.label_present,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WindowPerformance:
        return cls(
            PerformanceState.from_json(data["overall"]),
            {f: {k: PerformanceState.from_json(v) for k, v in s.items()} for f, s in data["segments"].items()},
            bool(data["label_present"]),
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
