"""Performance without labels: confidence-based estimation for classifiers, a direct loss model for regressors.

Classifiers (as NannyML's CBPE)
-------------------------------
:func:`fit_isotonic` maps the model's raw score to a calibrated probability of the positive class
with isotonic regression fitted on the reference's labelled rows. The map is a step function: a
few dozen *plateaus* (score intervals), each with one calibrated probability. A window then needs
only how many of its rows fall on each plateau, per predicted class — a ``(2, K)`` table of counts,
which adds up over blocks, hours and days. :func:`estimate_classification` turns that table into
the expected confusion matrix and the expected ROC AUC, each with the sampling error the *realised*
metric would have if the calibrated probabilities were true.

The estimates are ratios of expectations, exactly scikit-learn's metrics on the rows with sample
weights: each row once as a positive with weight ``p`` and once as a negative with weight ``1 - p``
(the tests check this). Within a plateau the rows tie (their calibrated probability is equal), so
their pairs count one half towards the ROC AUC, as scikit-learn counts tied scores.

Assumption: ``P(label | score)`` on the window is the reference's. A shift of the inputs that moves
rows along the score curve is followed; a change of the curve itself (concept drift) is not.

Regressors (as NannyML's DLE, with an additive model)
-----------------------------------------------------
:func:`fit_additive_loss` fits ``E[loss | row] = intercept + sum_f coef_f[segment of row in f]``
(ridge on one-hot segments: each feature's and the prediction's reference bins) to the absolute
error and to the squared error of the reference. The window's estimated MAE (MSE) is the mean of
the fitted loss over its rows: :func:`estimate_regression` from the sums. Additive in the segments
means the model follows a changed *mix* of the inputs, not an interaction it never saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import linalg, sparse
from scipy import stats as sps

#: Raw scores are grouped into at most this many groups of whole tied values before the
#: pool-adjacent-violators pass (a Python loop); plateaus are never finer than that.
MAX_PAVA_GROUPS = 2000
#: Each plateau's probability counts half a positive and half a negative more than it saw (a plateau of
#: 40 all-positive rows is not certainty: its rows still add sampling variance).
PRIOR_ROWS = 0.5
#: The calibrated step function has at most this many score bins ...
FINE_SCORE_BINS = 200
#: ... of at least this many reference rows each.
MIN_BIN_ROWS = 50


class Estimate(NamedTuple):
    """An estimated metric, its standard error (the realised metric's sampling error given the
    calibrated probabilities) and its calibration error (the estimate's standard error from the
    reference labels the calibration was fitted on; 0 when not computed)."""

    value: float
    standard_error: float
    calibration_error: float = 0.0

    @property
    def total_error(self) -> float:
        """Both errors combined: the window's labels and the reference's are independent draws."""
        return math.hypot(self.standard_error, self.calibration_error)


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LevelError:
    """Levels that are linear in independent fitted rates: ``levels = mixing @ rates`` with
    ``Var(rates) = variance``. The variance of any smooth function of the levels with gradient ``g``
    is then ``sum(variance * (mixing' g)^2)`` (delta method) — O(K), no ``(K, K)`` matrix."""

    mixing: sparse.csr_matrix
    variance: np.ndarray

    def of(self, gradient: np.ndarray) -> float:
        through = self.mixing.T @ gradient
        return float(self.variance @ (through * through))

    def grouped(self, group: np.ndarray, weight: np.ndarray) -> LevelError:
        """The error of group levels that are weighted means of the levels (``weight`` per level,
        normalised within its group)."""
        groups = int(group.max()) + 1 if group.size else 0
        totals = np.bincount(group, weights=weight, minlength=groups)
        share = weight / np.where(totals[group] > 0, totals[group], 1.0)
        mean_of = sparse.csr_matrix((share, (group, np.arange(group.size))), shape=(groups, group.size))
        return LevelError(sparse.csr_matrix(mean_of @ self.mixing), self.variance)

    def covariance(self) -> np.ndarray:
        dense = self.mixing.toarray()
        return (dense * self.variance) @ dense.T


@dataclass(frozen=True)
class Calibrator:
    """A non-decreasing step function from raw score to calibrated probability.

    ``starts[k]`` is the lowest reference score on plateau ``k`` (ascending), ``levels[k]`` its
    calibrated probability, ``rows[k]`` the reference rows it was fitted on.
    """

    starts: np.ndarray
    levels: np.ndarray
    rows: np.ndarray
    #: Each step's level as ``(1 - weight) * P[plateau] + weight * P[plateau + 1]`` of the isotonic
    #: plateaus' probabilities ``P``, whose binomial variances are ``plateau_variance``: what the
    #: calibration error of an estimate needs. Empty for a calibrator stored before they were kept.
    step_plateau: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    step_weight: np.ndarray = field(default_factory=lambda: np.empty(0))
    plateau_variance: np.ndarray = field(default_factory=lambda: np.empty(0))

    @property
    def plateaus(self) -> int:
        return int(self.levels.size)

    def level_error(self) -> LevelError | None:
        """How the step levels depend on the reference's labels (plateaus are independent binomial
        rates; interpolated steps share them). None for a calibrator stored without it."""
        if self.plateau_variance.size == 0 or self.step_plateau.size != self.levels.size:
            return None
        steps = np.arange(self.levels.size)
        upper = np.minimum(self.step_plateau + 1, self.plateau_variance.size - 1)
        mixing = sparse.csr_matrix(
            (
                np.concatenate([1.0 - self.step_weight, self.step_weight]),
                (np.concatenate([steps, steps]), np.concatenate([self.step_plateau, upper])),
            ),
            shape=(self.levels.size, self.plateau_variance.size),
        )
        return LevelError(mixing, self.plateau_variance)

    def level_covariance(self) -> np.ndarray | None:
        """The ``(K, K)`` covariance of the step levels (dense; :meth:`level_error` is the cheap form)."""
        error = self.level_error()
        return None if error is None else error.covariance()

    def plateau(self, score: npt.ArrayLike) -> np.ndarray:
        """The plateau index of each score; -1 for NaN/NULL. Scores below the first plateau take it,
        scores between two plateaus' reference values take the lower one."""
        s = np.asarray(score, dtype=np.float64)
        index = np.searchsorted(self.starts, s, side="right") - 1
        index = np.clip(index, 0, max(self.plateaus - 1, 0))
        index[np.isnan(s)] = -1
        return index

    def calibrate(self, score: npt.ArrayLike) -> np.ndarray:
        """Calibrated probabilities (NaN where the score is NaN)."""
        index = self.plateau(score)
        out = np.full(index.shape, np.nan)
        known = index >= 0
        out[known] = self.levels[index[known]]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "starts": self.starts.tolist(),
            "levels": self.levels.tolist(),
            "rows": self.rows.tolist(),
            "step_plateau": self.step_plateau.tolist(),
            "step_weight": self.step_weight.tolist(),
            "plateau_variance": self.plateau_variance.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibrator:
        return cls(
            np.asarray(data["starts"], dtype=np.float64),
            np.asarray(data["levels"], dtype=np.float64),
            np.asarray(data["rows"], dtype=np.int64),
            np.asarray(data.get("step_plateau", []), dtype=np.int64),
            np.asarray(data.get("step_weight", []), dtype=np.float64),
            np.asarray(data.get("plateau_variance", []), dtype=np.float64),
        )


def pava(values: npt.ArrayLike, weights: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Pool adjacent violators: the non-decreasing fit of ``values`` (weighted least squares).

    Returns ``(block_of_each_input, block_means)``. Equal to ``sklearn.isotonic.isotonic_regression``.
    """
    y = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    means: list[float] = []
    masses: list[float] = []
    sizes: list[int] = []
    for value, weight in zip(y.tolist(), w.tolist(), strict=True):
        means.append(value)
        masses.append(weight)
        sizes.append(1)
        while len(means) > 1 and means[-2] >= means[-1]:
            mass = masses[-2] + masses[-1]
            mean = (means[-2] * masses[-2] + means[-1] * masses[-1]) / mass if mass > 0 else means[-1]
            size = sizes[-2] + sizes[-1]
            del means[-1], masses[-1], sizes[-1]
            means[-1], masses[-1], sizes[-1] = mean, mass, size
    block = np.repeat(np.arange(len(sizes)), sizes)
    return block, np.asarray(means)


def fit_isotonic(
    score: npt.ArrayLike, positive: npt.ArrayLike, min_plateau_rows: int | None = None, interpolate: bool = True
) -> Calibrator:
    """Isotonic calibration of ``score`` against ``positive`` (1/0; NaN where unlabelled).

    Plateaus of the isotonic fit with fewer than ``min_plateau_rows`` rows (default ``max(20, n // 200)``)
    are merged into the neighbour with the closer probability, so no plateau's probability rests on a
    handful of rows; each plateau's probability is ``(positives + 0.5) / (rows + 1)``. With
    ``interpolate`` (default) the returned steps are up to ``FINE_SCORE_BINS`` reference-quantile
    score bins (at least ``MIN_BIN_ROWS`` rows each) whose probability is the plateaus' linearly
    interpolated between their median scores (as scikit-learn's ``IsotonicRegression`` interpolates
    between its thresholds); without it, the plateaus themselves.

    Notes
    -----
    Rows without a finite score or a label are left out. No such rows: a calibrator with no
    plateaus (every later estimate is undefined). One class only: a single plateau.
    """
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(positive, dtype=np.float64)
    keep = np.isfinite(s) & np.isfinite(y)
    s, y = s[keep], (y[keep] > 0.5).astype(np.float64)
    if s.size == 0:
        return Calibrator(np.empty(0), np.empty(0), np.empty(0, np.int64))
    unique, inverse = np.unique(s, return_inverse=True)
    counts = np.bincount(inverse).astype(np.float64)
    positives = np.bincount(inverse, weights=y)
    if unique.size > MAX_PAVA_GROUPS:
        # Whole tied values into ~equal-count groups: the PAVA loop stays short at any reference size.
        cumulative = np.cumsum(counts) - counts
        group = np.minimum((cumulative / s.size * MAX_PAVA_GROUPS).astype(np.int64), MAX_PAVA_GROUPS - 1)
        _, group = np.unique(group, return_inverse=True)
        unique = unique[np.searchsorted(group, np.arange(int(group.max()) + 1))]  # group is non-decreasing
        counts, positives = np.bincount(group, weights=counts), np.bincount(group, weights=positives)
    block, _ = pava(positives / counts, counts)
    n_blocks = int(block.max()) + 1
    rows = np.bincount(block, weights=counts, minlength=n_blocks)
    hits = np.bincount(block, weights=positives, minlength=n_blocks)
    first = np.searchsorted(block, np.arange(n_blocks))
    starts = unique[first]
    minimum = max(20, s.size // 200) if min_plateau_rows is None else int(min_plateau_rows)
    starts, rows, hits = _merge_small(list(starts), list(rows), list(hits), minimum)
    plateau_levels = (np.asarray(hits) + PRIOR_ROWS) / (np.asarray(rows) + 2 * PRIOR_ROWS)
    # The binomial variance of each smoothed plateau rate: what the reference's labels leave uncertain.
    plateau_variance = plateau_levels * (1 - plateau_levels) / (np.asarray(rows) + 2 * PRIOR_ROWS)
    if not interpolate or len(rows) == 1:
        return Calibrator(
            np.asarray(starts, dtype=np.float64),
            plateau_levels,
            np.asarray(rows).astype(np.int64),
            np.arange(len(rows), dtype=np.int64),
            np.zeros(len(rows)),
            plateau_variance,
        )
    # Score bins finer than the plateaus, each with the isotonic fit interpolated linearly between the
    # plateaus' median scores: a plateau straddling the decision threshold would otherwise give its
    # predicted-positive and predicted-negative rows one probability (measured: accuracy estimated 0.01-0.03
    # low on calibrated scores with plateaus alone).
    ordered = np.sort(s)
    ends = np.cumsum(rows).astype(np.int64)
    centres = ordered[np.minimum(ends - np.asarray(rows, dtype=np.int64) // 2, s.size - 1)]
    bins = max(1, min(FINE_SCORE_BINS, s.size // MIN_BIN_ROWS))
    bin_starts = np.unique(np.quantile(ordered, np.linspace(0.0, 1.0, bins + 1)[:-1]))
    low = np.searchsorted(ordered, bin_starts, side="left")
    high = np.append(low[1:], s.size)
    representative = ordered[(low + high - 1) // 2]
    levels = np.interp(representative, centres, plateau_levels)
    # np.interp's weights, kept so the calibration error can follow the plateaus into the bins.
    lower = np.clip(np.searchsorted(centres, representative, side="right") - 1, 0, len(rows) - 1)
    upper = np.minimum(lower + 1, len(rows) - 1)
    span = centres[upper] - centres[lower]
    weight = np.where(span > 0, (representative - centres[lower]) / np.where(span > 0, span, 1.0), 0.0)
    weight = np.clip(weight, 0.0, 1.0)
    return Calibrator(
        bin_starts, levels, (high - low).astype(np.int64), lower.astype(np.int64), weight, plateau_variance
    )


def _merge_small(
    starts: list[float], rows: list[float], hits: list[float], minimum: int
) -> tuple[list[float], list[float], list[float]]:
    """Merge plateaus below ``minimum`` rows into the neighbour with the closer rate (keeps it monotone)."""
    while len(rows) > 1:
        small = [i for i, n in enumerate(rows) if n < minimum]
        if not small:
            break
        i = min(small, key=lambda k: rows[k])
        rate = hits[i] / rows[i]
        if i == 0:
            j = 1
        elif i == len(rows) - 1:
            j = i - 1
        else:
            left, right = hits[i - 1] / rows[i - 1], hits[i + 1] / rows[i + 1]
            j = i - 1 if abs(rate - left) <= abs(right - rate) else i + 1
        low, high = min(i, j), max(i, j)
        rows[low], hits[low] = rows[low] + rows[high], hits[low] + hits[high]
        del starts[high], rows[high], hits[high]
    return starts, rows, hits


# --------------------------------------------------------------------------------------------
# Classification estimates from plateau counts
# --------------------------------------------------------------------------------------------

CLASSIFICATION_ESTIMATES = ("roc_auc", "accuracy", "precision", "recall", "f1")


def estimate_classification(
    levels: npt.ArrayLike, counts: npt.ArrayLike, level_covariance: LevelError | npt.ArrayLike | None = None
) -> dict[str, Estimate]:
    """Expected ROC AUC, accuracy, precision, recall and F1 of rows whose true labels are Bernoulli(p).

    Parameters
    ----------
    levels : (K,) calibrated probability of each plateau, non-decreasing in the raw score.
    counts : (2, K) rows per plateau predicted negative (row 0) and positive (row 1).
    level_covariance : LevelError or (K, K) array, optional
        How ``levels`` vary with the reference labels they were fitted on (:meth:`Calibrator.level_error`,
        or a covariance matrix). Given, each estimate's ``calibration_error`` is its
        delta-method standard error ``sqrt(g' C g)`` with ``g`` the gradient of the estimate in the
        levels; otherwise 0.

    Returns
    -------
    ``{metric: Estimate(value, standard_error, calibration_error)}``. ``value`` is the ratio of the
    expected counts (scikit-learn's metric with sample weights ``p``/``1 - p``, see the module
    docstring); the standard error is the delta-method sampling error of the realised metric given
    the probabilities (labels independent Bernoulli), Hanley & McNeil (1982) for ROC AUC. A metric
    whose denominator is zero (no rows, no predicted positives, an expected class of zero) is NaN.
    """
    p = np.asarray(levels, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64).reshape(2, -1)
    negative_pred, positive_pred = n[0], n[1]
    variance = p * (1 - p)
    tp, fp = float(positive_pred @ p), float(positive_pred @ (1 - p))
    fn, tn = float(negative_pred @ p), float(negative_pred @ (1 - p))
    var_tp, var_fn = float(positive_pred @ variance), float(negative_pred @ variance)
    total = tp + fp + fn + tn
    predicted = tp + fp
    nan = Estimate(math.nan, math.nan)
    # (value, standard error, gradient in the levels); dTP/dp = rows predicted positive, dFN/dp = negative.
    found: dict[str, tuple[float, float, np.ndarray] | None] = {}
    found["accuracy"] = (
        ((tp + tn) / total, math.sqrt(var_tp + var_fn) / total, (positive_pred - negative_pred) / total)
        if total > 0
        else None
    )  # TP and TN are Bernoulli sums over disjoint rows: Var(correct) = sum p(1 - p) over every row
    found["precision"] = (
        (tp / predicted, math.sqrt(var_tp) / predicted, positive_pred / predicted) if predicted > 0 else None
    )
    actual = tp + fn
    if actual > 0:
        # R = A / (A + B), A = TP, B = FN independent: dR/dA = B / (A+B)^2, dR/dB = -A / (A+B)^2.
        d_a, d_b = fn / actual**2, -tp / actual**2
        se = math.sqrt(d_a * d_a * var_tp + d_b * d_b * var_fn)
        found["recall"] = (tp / actual, se, d_a * positive_pred + d_b * negative_pred)
    else:
        found["recall"] = None
    denominator = predicted + actual  # 2TP + FP + FN; FP + TP = predicted is fixed
    if denominator > 0:
        # F1 = 2A / (PP + A + B): dF/dA = 2 (PP + B) / D^2, dF/dB = -2A / D^2.
        d_a, d_b = 2 * (predicted + fn) / denominator**2, -2 * tp / denominator**2
        found["f1"] = (
            2 * tp / denominator,
            math.sqrt(d_a * d_a * var_tp + d_b * d_b * var_fn),
            d_a * positive_pred + d_b * negative_pred,
        )
    else:
        found["f1"] = None
    found["roc_auc"] = _expected_auc(p, n.sum(axis=0))

    def calibration_variance(gradient: np.ndarray) -> float:
        if level_covariance is None:
            return 0.0
        if isinstance(level_covariance, LevelError):
            return level_covariance.of(gradient)
        return float(gradient @ np.asarray(level_covariance, dtype=np.float64) @ gradient)

    out: dict[str, Estimate] = {}
    for metric in CLASSIFICATION_ESTIMATES:
        entry = found[metric]
        if entry is None:
            out[metric] = nan
            continue
        value, se, gradient = entry
        out[metric] = Estimate(value, se, math.sqrt(max(calibration_variance(gradient), 0.0)))
    return out


def _expected_auc(p: np.ndarray, rows: np.ndarray) -> tuple[float, float, np.ndarray] | None:
    """Expected ROC AUC, its Hanley-McNeil standard error and its gradient in the levels ``p``."""
    positives, negatives = rows * p, rows * (1 - p)
    total_pos, total_neg = float(positives.sum()), float(negatives.sum())
    if total_pos <= 0 or total_neg <= 0:
        return None
    negatives_below = np.cumsum(negatives) - negatives  # plateaus are in ascending score order
    positives_above = positives.sum() - np.cumsum(positives)
    concordant = float(positives @ negatives_below + 0.5 * positives @ negatives)
    auc = concordant / (total_pos * total_neg)
    # Raising p_k moves rows_k from the negatives to the positives of plateau k.
    d_concordant = rows * (negatives_below + 0.5 * negatives) - rows * (positives_above + 0.5 * positives)
    gradient = d_concordant / (total_pos * total_neg) - auc * (rows / total_pos - rows / total_neg)
    return auc, math.sqrt(auc_variance(auc, total_pos, total_neg)), gradient


def auc_variance(auc: float, positives: float, negatives: float) -> float:
    """Hanley & McNeil (1982): the variance of an AUC of ``auc`` on these class counts (0 if either is 0)."""
    if positives <= 0 or negatives <= 0:
        return 0.0
    a = min(max(auc, 0.0), 1.0)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    numerator = a * (1 - a) + (positives - 1) * (q1 - a * a) + (negatives - 1) * (q2 - a * a)
    return max(numerator, 0.0) / (positives * negatives)


def plateau_counts(plateau: np.ndarray, predicted_positive: np.ndarray, plateaus: int) -> np.ndarray:
    """The ``(2, K)`` table of rows per plateau and predicted class; rows with plateau -1 or a NaN
    prediction are left out."""
    keep = (plateau >= 0) & np.isfinite(predicted_positive)
    cls = (predicted_positive[keep] > 0.5).astype(np.int64)
    flat = np.bincount(cls * plateaus + plateau[keep], minlength=2 * plateaus)
    return flat.reshape(2, plateaus).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Regression: an additive loss model
# --------------------------------------------------------------------------------------------


#: Replicates of the loss model's coefficient error kept with the fit (a Gaussian sketch of the
#: sandwich covariance): the model error of a window's mean fitted loss is estimated to within about
#: ``1 / sqrt(2 * LOSS_REPLICATES)`` (9% at 64) of its standard error, at O(replicates x coefficients).
LOSS_REPLICATES = 64


@dataclass
class AdditiveLoss:
    """``E[loss] = intercept + sum_f coefficients[f][code_f]``, fitted by :func:`fit_additive_loss`.

    ``replicates`` (``(R, 1 + coefficients)``, intercept first; empty for a fit stored without them)
    are draws of the fitted coefficients' error from the reference rows (:func:`fit_additive_loss`):
    :meth:`model_error` turns them into the standard error of a window's mean fitted loss.
    """

    intercept: float
    coefficients: list[np.ndarray] = field(default_factory=list)
    replicates: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))

    def predict(self, codes: list[np.ndarray]) -> np.ndarray:
        out = np.full(codes[0].shape if codes else (0,), self.intercept, dtype=np.float64)
        for coefficient, code in zip(self.coefficients, codes, strict=True):
            out += coefficient[code]
        return out

    @property
    def size(self) -> int:
        """The number of one-hot coefficients (the length of a design-count vector)."""
        return int(sum(c.size for c in self.coefficients))

    def model_error(self, design: np.ndarray | None, rows: float) -> float:
        """The standard error, from the reference rows the model was fitted on, of the mean fitted loss
        of rows whose one-hot levels were counted in ``design`` (``rows`` rows; see :func:`design_counts`).

        Delta method: the mean fitted loss is ``g' beta`` with ``g = [1, design / rows]``, so its variance
        is ``g' Cov(beta) g``; ``Cov(beta)`` is the ridge fit's sandwich covariance from the reference
        residuals, kept as ``R`` Gaussian replicates ``d_r`` with ``E[d d'] = Cov(beta)``, so the variance
        is ``mean_r (g' d_r)^2``. NaN without replicates, without rows, or with a design of another size.
        """
        if design is None or rows <= 0 or self.replicates.size == 0 or design.size + 1 != self.replicates.shape[1]:
            return math.nan
        through = self.replicates[:, 0] + self.replicates[:, 1:] @ (np.asarray(design, dtype=np.float64) / rows)
        return float(math.sqrt(np.mean(through * through)))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"intercept": self.intercept, "coefficients": [c.tolist() for c in self.coefficients]}
        if self.replicates.size:
            # Four significant digits of the largest entry: the replicates are a random sketch (~9% error).
            largest = float(np.max(np.abs(self.replicates)))
            digits = 4 - int(math.floor(math.log10(largest))) if largest > 0 else 4
            out["replicates"] = np.round(self.replicates, digits).tolist()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], replicates: bool = True) -> AdditiveLoss:
        """The stored fit; ``replicates=False`` skips the (large) replicates when only predicting."""
        stored = data.get("replicates") if replicates else None
        draws = np.asarray(stored, dtype=np.float64) if stored else np.empty((0, 0))
        return cls(float(data["intercept"]), [np.asarray(c, dtype=np.float64) for c in data["coefficients"]], draws)


def design_counts(codes: list[np.ndarray], levels: list[int], keep: np.ndarray | None = None) -> np.ndarray:
    """How many rows (those in ``keep``) take each one-hot level, the blocks concatenated in order:
    ``rows x`` the window's mean design row. Adds up over blocks, hours and days."""
    out = []
    for code, level in zip(codes, levels, strict=True):
        chosen = np.asarray(code, dtype=np.int64) if keep is None else np.asarray(code, dtype=np.int64)[keep]
        out.append(np.bincount(chosen, minlength=level).astype(np.float64))
    return np.concatenate(out) if out else np.empty(0)


def _one_hot(codes: list[np.ndarray], offsets: np.ndarray, rows: int) -> sparse.csr_matrix:
    """The ``(rows, 1 + levels)`` design matrix: a column of ones, then each block's one-hot columns."""
    columns = np.column_stack([np.zeros(rows, np.int64), *[c + offsets[f] for f, c in enumerate(codes)]])
    return sparse.csr_matrix(
        (np.ones(columns.size), columns.ravel(), np.arange(0, columns.size + 1, columns.shape[1])),
        shape=(rows, int(offsets[-1])),
    )


def fit_additive_loss(
    codes: list[np.ndarray],
    levels: list[int],
    target: npt.ArrayLike,
    ridge: float = 1.0,
    replicates: int = LOSS_REPLICATES,
    seed: int = 0,
) -> AdditiveLoss:
    """Ridge regression of ``target`` on the one-hot codes of several features (plus an intercept).

    ``codes[f]`` holds each row's level ``0..levels[f]-1`` of feature ``f``. The normal equations are
    assembled from co-occurrence counts (``bincount``), so memory does not grow with the rows. The
    intercept is not penalised; ``ridge`` (in rows) keeps the collinear one-hot blocks solvable and
    shrinks rare levels towards the mean. Rows with a non-finite target are left out.

    With ``replicates`` > 0, the fit keeps that many draws ``d = A^-1 X' (r * z)`` (``A`` the penalised
    normal matrix, ``r`` the reference residuals, ``z`` independent standard normals, seeded by
    ``seed``): ``E[d d'] = A^-1 X' diag(r^2) X A^-1``, the heteroscedasticity-robust (sandwich)
    covariance of the coefficients — what a refit on resampled reference rows would vary by — without
    ever forming that ``(L, L)`` matrix. Ridge's own bias (shrinkage of rare levels) is not in it.
    """
    y = np.asarray(target, dtype=np.float64)
    keep = np.isfinite(y)
    y = y[keep]
    codes = [np.asarray(c, dtype=np.int64)[keep] for c in codes]
    offsets = np.concatenate([[1], 1 + np.cumsum(levels)]).astype(np.int64)
    size = int(offsets[-1])
    gram = np.zeros((size, size))
    moment = np.zeros(size)
    gram[0, 0], moment[0] = y.size, y.sum()
    for f, code in enumerate(codes):
        a = slice(offsets[f], offsets[f + 1])
        counts = np.bincount(code, minlength=levels[f]).astype(np.float64)
        gram[0, a] = gram[a, 0] = counts
        moment[a] = np.bincount(code, weights=y, minlength=levels[f])
        for g in range(f, len(codes)):
            b = slice(offsets[g], offsets[g + 1])
            joint = np.bincount(code * levels[g] + codes[g], minlength=levels[f] * levels[g]).reshape(
                levels[f], levels[g]
            )
            gram[a, b] = joint
            gram[b, a] = joint.T
    penalty = np.full(size, float(ridge))
    penalty[0] = 0.0
    system = gram + np.diag(penalty)
    factor = None
    try:  # positive definite with any rows (the penalty covers every one-hot block): Cholesky, not SVD
        factor = linalg.cho_factor(system)
        solution = linalg.cho_solve(factor, moment)
    except (linalg.LinAlgError, ValueError):  # no rows at all: the minimum-norm answer
        solution = np.linalg.lstsq(system, moment, rcond=None)[0]
    draws = np.empty((0, 0))
    if replicates > 0 and factor is not None and y.size > 0:
        design = _one_hot(codes, offsets, y.size)
        residual = y - design @ solution
        multipliers = np.random.default_rng(seed).standard_normal((y.size, replicates))
        draws = linalg.cho_solve(factor, design.T @ (residual[:, None] * multipliers)).T
    return AdditiveLoss(float(solution[0]), [solution[offsets[f] : offsets[f + 1]] for f in range(len(codes))], draws)


def estimate_regression(
    rows: float,
    absolute_sum: float,
    squared_sum: float,
    kurtosis: float,
    absolute_model_error: float = 0.0,
    squared_model_error: float = 0.0,
) -> dict[str, Estimate]:
    """Estimated MAE and RMSE from the window's sums of fitted loss, with sampling and model errors.

    ``absolute_sum``/``squared_sum`` are the sums over the window's rows of the fitted absolute and
    squared error. The realised MAE's standard error is ``sqrt(MSE - MAE^2) / sqrt(n)``; the
    realised MSE's is ``sqrt(kurtosis - 1) * MSE / sqrt(n)`` with ``kurtosis = E[e^4] / E[e^2]^2``
    measured on the reference, and RMSE's by the delta method, ``SE(MSE) / (2 RMSE)``.
    ``absolute_model_error``/``squared_model_error`` are the loss models' own standard errors of the
    window's mean fitted absolute and squared error (:meth:`AdditiveLoss.model_error`; 0 or NaN: not
    known, left out); they become each estimate's ``calibration_error`` (RMSE's by the same delta
    method). Negative fitted means (possible for an additive model far outside the reference) are
    floored at 0. No rows: NaN.
    """
    if rows <= 0:
        nan = Estimate(math.nan, math.nan)
        return {"mae": nan, "rmse": nan}
    mae = max(absolute_sum / rows, 0.0)
    mse = max(squared_sum / rows, 0.0)
    mae_se = math.sqrt(max(mse - mae * mae, 0.0) / rows)
    rmse = math.sqrt(mse)
    mse_se = math.sqrt(max(kurtosis - 1.0, 0.0)) * mse / math.sqrt(rows)
    rmse_se = mse_se / (2 * rmse) if rmse > 0 else 0.0
    mae_model = absolute_model_error if math.isfinite(absolute_model_error) else 0.0
    mse_model = squared_model_error if math.isfinite(squared_model_error) else 0.0
    rmse_model = mse_model / (2 * rmse) if rmse > 0 else 0.0
    return {"mae": Estimate(mae, mae_se, mae_model), "rmse": Estimate(rmse, rmse_se, rmse_model)}


# --------------------------------------------------------------------------------------------
# The window state: mergeable counts/sums, overall and per feature segment
# --------------------------------------------------------------------------------------------


@dataclass
class EstimationState:
    """What the estimates need from a set of rows; merges by addition (blocks into hours into days).

    ``overall`` is a classifier's ``(2, K)`` plateau counts or a regressor's ``[rows, sum of fitted
    absolute error, sum of fitted squared error]``; ``segments[feature][segment]`` the same for the
    rows of one segment. ``skipped`` counts rows without a usable score/prediction.
    """

    task: str
    overall: np.ndarray
    segments: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    skipped: int = 0
    #: A regressor's rows per one-hot level of its loss model (:func:`design_counts`), overall: what the
    #: loss model's own error needs (:meth:`AdditiveLoss.model_error`). None for a classifier and for a
    #: state folded before it was kept (a merge with such a state has none either).
    design: np.ndarray | None = None

    def merge(self, other: EstimationState) -> EstimationState:
        if self.task != other.task or self.overall.shape != other.overall.shape:
            raise ValueError("cannot merge estimation states of different models or calibrations")
        segments = {f: dict(s) for f, s in self.segments.items()}
        for feature, theirs in other.segments.items():
            mine = segments.setdefault(feature, {})
            for name, value in theirs.items():
                mine[name] = mine[name] + value if name in mine else value
        design = None
        if self.design is not None and other.design is not None and self.design.shape == other.design.shape:
            design = self.design + other.design
        return EstimationState(self.task, self.overall + other.overall, segments, self.skipped + other.skipped, design)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "estimation",
            "task": self.task,
            "overall": self.overall.tolist(),
            "segments": {f: {k: v.tolist() for k, v in s.items()} for f, s in self.segments.items()},
            "skipped": self.skipped,
        }
        if self.design is not None:
            # Sparse: an hour's rows touch few of a large model's pair levels.
            present = np.flatnonzero(self.design)
            out["design"] = {
                "size": int(self.design.size),
                "index": present.tolist(),
                "count": self.design[present].tolist(),
            }
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EstimationState:
        dtype = np.int64 if data["task"] == "classification" else np.float64
        design = None
        if data.get("design") is not None:
            stored = data["design"]
            design = np.zeros(int(stored["size"]))
            design[np.asarray(stored["index"], dtype=np.int64)] = np.asarray(stored["count"], dtype=np.float64)
        return cls(
            str(data["task"]),
            np.asarray(data["overall"], dtype=dtype),
            {f: {k: np.asarray(v, dtype=dtype) for k, v in s.items()} for f, s in data.get("segments", {}).items()},
            int(data.get("skipped", 0)),
            design,
        )


def one_sided_pvalue(difference: float, variance: float) -> float:
    """P(Z <= difference / sd): small when ``difference`` (value minus reference, oriented so that
    negative is worse) is far below zero. Zero variance: 0 if worse at all, else 1."""
    if not math.isfinite(difference):
        return 1.0
    if variance <= 0:
        return 0.0 if difference < 0 else 1.0
    return float(sps.norm.cdf(difference / math.sqrt(variance)))
