"""Model performance against the reference's own performance, overall and per feature segment.

Pure computation: no database access. The caller loads the window's rows (with the late labels
joined into the label column) and the reference performance stored with the reference profile.

* :func:`compute_metrics` — scikit-learn metrics on the labelled rows of any set of rows.
* :func:`reference_performance` — the reference's metrics, overall and per segment
  (:class:`~driftline.stats.reference_state.ReferencePerformance`, stored with the reference).
* :func:`evaluate_performance` — one ``performance`` result per metric, plus one per feature for
  the segment whose performance fell the most.

Verdicts
--------
Each metric may degrade by a *relative* tolerance (``performance.tolerance[metric]``, else
``performance.default_tolerance``) from its reference value. For a metric where higher is better
the alert bound is ``reference - |reference| * alert`` (``reference * (1 - alert)`` for a positive
reference); where lower is better (log loss, Brier score, calibration error, MAE, RMSE, MAPE) it is
``reference + |reference| * alert``. A value beyond a bound (strictly) is a warning or an alert.

A level reached by the relative bound counts only when the degradation is also *significant*: a
one-sided test that the window is worse than the reference, with the sampling noise of both sides
(the reference's where :func:`reference_performance` stored what it needs — its ``sampling``
block; an older reference without it counts as exact), below ``ALPHA``. Otherwise the result is
``ok`` with ``details["reason"] = "degradation not significant"``; ``details`` carries the
``p_value``, the ``test`` and ``alpha`` either way. Near ``min_labels`` the relative tolerance
alone is well inside the sampling noise of most metrics (on unchanged data a 10% relative drop of
log loss, Brier score, precision or recall is common at 100 labelled rows). The tests:

* ``accuracy``, ``precision`` (accuracy among predicted positives), ``recall`` (accuracy among
  actual positives): two-proportion z-test, on the arcsine scale with a continuity correction
  (``two_proportion_z``; see :func:`_proportion_pvalue`).
* ``log_loss``, ``brier_score``, ``mae``, ``mape``: the metric is the mean of a per-row loss; Welch's
  t on the two means, each side's variance from its own per-row standard deviation (``welch_t``).
  ``rmse``: the same on the squared errors, i.e. on the mean squared error (``welch_t_mse``).
* ``roc_auc``: normal approximation with Hanley & McNeil (1982) variances at the reference AUC.
* ``f1`` (approximation): F1 falls only if precision or recall falls, so the smaller of their two
  p-values, Bonferroni-adjusted for the two (``min_precision_recall``; ``tested`` names which).
* ``r2`` (approximation): ``1 - MSE / Var(y)``; the MSE test, so a window whose labels merely vary
  less (same errors) is not flagged (``welch_t_mse``).
* ``calibration_error``: see below.

Calibration error is biased upwards by sampling noise (a perfectly calibrated model has an ECE of
about 0.02 on 3,000 rows and 0.08 on 100), so a relative bound on it is reached by almost every
small window. Its level counts only when the window's calibration has also *changed* significantly:
the label rate per reference score decile against the reference's (the chi-square of
``label_rate_by_score``, ``test = label_rate_by_score_chi2``). Hosmer-Lemeshow (is the window
calibrated at all?) is the test only for a reference profile without its score/label summary: with
it, a calm model whose scores were already overconfident on the reference (ECE 0.039) alerted in 38%
of its 3,000-row hours (#16).

Segments
--------
Numeric features are cut into the reference profile's coarse bins (about 10 groups of its 200
quantile bins, ~equal reference mass each), named by interval, e.g. ``[41.0, 48.5)``; categorical
features into the reference's most frequent categories, the rest ``__other__``; NULLs are the
segment ``__missing__``. Each segment's primary metric (classification: ``roc_auc`` when the model
has a score column, else ``accuracy``; regression: ``mae``) is compared with the same segment on
the reference. Picking the worst of many small segments would flag noise on unchanged data, so a
segment's level counts only when its degradation is also significant: a one-sided test of the
difference from the reference segment with both sides' sampling variance (accuracy: binomial
variance; ROC AUC: Hanley-McNeil; MAE: Welch's t on the absolute errors), Bonferroni-adjusted over
the segments compared, below ``ALPHA``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import ndtr
from sklearn import metrics as skm

from driftline.config.monitors import ModelConfig
from driftline.core.results import Kind, Result, Status
from driftline.stats.concept import RelationState, calibration_shift_of
from driftline.stats.model_profile import BinPositions, ModelProfile, fit_model_profile, numeric_values
from driftline.stats.performance import PerformanceState, RowFacts, WindowPerformance, comparable, hosmer_lemeshow
from driftline.stats.profile import (
    OTHER,
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    bin_positions,
    category_text,
)
from driftline.stats.reference_state import ReferencePerformance
from driftline.stats.verdict import ALERT_ALPHA_RATIO, Threshold, format_number, judge_family, reason_sentence
from driftline.tasks.context import WindowContext

#: Version of the reference performance written by :func:`reference_performance`.
REFERENCE_PERFORMANCE_VERSION = 2
#: The label column the label join writes when labels come from a separate table.
JOINED_LABEL_COLUMN = "__label__"
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1")
SCORE_METRICS = ("roc_auc", "log_loss", "brier_score", "calibration_error")
REGRESSION_METRICS = ("mae", "rmse", "mape", "r2")
LOWER_IS_BETTER = frozenset({"log_loss", "brier_score", "calibration_error", "mae", "rmse", "mape"})
CALIBRATION_BINS = 10
#: Categorical features: the most frequent reference categories that get a segment of their own.
MAX_CATEGORY_SEGMENTS = 10
MISSING = "__missing__"
#: Significance level of a degradation (overall; per segment Bonferroni over the segments compared)
#: and of the window's miscalibration. ``performance.alpha`` overrides it once the config has such a field.
ALPHA = 0.01
#: Fewest labelled rows a segment needs, at least: ``max(this, ceil(min_labels / 5))``.
MIN_SEGMENT_LABELS = 30  # below ~30 labelled rows a segment's ROC AUC is too noisy to judge

NAN = float("nan")


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def compute_metrics(
    task: str,
    y_true: Any,
    y_pred: Any,
    y_score: Any = None,
    positive_label: float | str = 1,
    *,
    only: Collection[str] | None = None,
) -> dict[str, float]:
    """scikit-learn's metrics on the rows whose label is known.

    Classification: ``accuracy`` (prediction equals label), and ``precision``, ``recall``, ``f1`` of
    ``positive_label``; with ``y_score`` (probability of the positive class) also ``roc_auc``,
    ``log_loss``, ``brier_score`` and ``calibration_error`` (see :func:`expected_calibration_error`).
    Regression: ``mae``, ``rmse``, ``mape``, ``r2``.

    Rows with a NULL/NaN label are left out; so are rows whose prediction (or, for the score
    metrics, score) is NULL/NaN. Labels and predictions are compared as numbers when every value
    (and ``positive_label``) is numeric, else as text. A metric that is undefined on the rows —
    no rows, one class only for ``roc_auc``, no predicted positives for ``precision``, fewer than
    two rows for ``r2``, scores outside [0, 1] for the probability metrics — is NaN, never an
    exception. ``only`` restricts the computation to some of the metrics.
    """
    truth, pred = _series(y_true), _series(y_pred)
    score = None if y_score is None else _series(y_score)
    if len(pred) != len(truth) or (score is not None and len(score) != len(truth)):
        raise ValueError("y_true, y_pred and y_score must have the same length")
    names: tuple[str, ...]
    if task == "regression":
        names = REGRESSION_METRICS
        computed = _regression_metrics(truth, pred)
    elif task == "classification":
        names = CLASSIFICATION_METRICS + (SCORE_METRICS if score is not None else ())
        computed = _classification_metrics(truth, pred, score, positive_label, only)
    else:
        raise ValueError(f"unknown task {task!r}; expected 'classification' or 'regression'")
    wanted = [n for n in names if only is None or n in only]
    return {name: float(computed.get(name, NAN)) for name in wanted}


def expected_calibration_error(y_true: Any, y_score: Any, n_bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error over ``n_bins`` equal-width score bins of [0, 1].

    ``ECE = sum_b (n_b / N) * |mean(y in b) - mean(score in b)|`` over the non-empty bins ``b``,
    where ``y`` is 1 for the positive class. The bins are those of
    ``sklearn.calibration.calibration_curve(strategy="uniform")`` (right-closed, the first also
    holding 0), so ``ECE = sum(counts * |prob_true - prob_pred|) / N`` with its outputs.
    NaN with no rows, or with a score outside [0, 1].
    """
    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(y_score, dtype=np.float64)
    if y.size == 0 or s.size != y.size or not np.all((s >= 0) & (s <= 1)):
        return NAN
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    bins = np.searchsorted(inner_edges, s)  # calibration_curve's assignment
    counts = np.bincount(bins, minlength=n_bins)
    positives = np.bincount(bins, weights=y, minlength=n_bins)
    score_sums = np.bincount(bins, weights=s, minlength=n_bins)
    nonempty = counts > 0
    gaps = np.abs(positives[nonempty] - score_sums[nonempty])  # n_b * |mean(y) - mean(score)|
    return float(gaps.sum() / y.size)


def calibration_pvalue(y_true: Any, y_score: Any, n_bins: int = CALIBRATION_BINS) -> float:
    """P-value that the scores are calibrated: Hosmer-Lemeshow on ``n_bins`` equal-width score bins.

    ``H = sum_b (O_b - sum(score in b))^2 / sum(score * (1 - score) in b)`` over the non-empty bins,
    chi-square with one degree of freedom per bin (the scores are not fitted to these rows). A bin
    whose scores are all 0 or 1 and whose outcomes disagree gives 0. NaN with no rows or a score
    outside [0, 1].
    """
    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(y_score, dtype=np.float64)
    if y.size == 0 or s.size != y.size or not np.all((s >= 0) & (s <= 1)):
        return NAN
    bins = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], s)
    return hosmer_lemeshow(
        np.bincount(bins, minlength=n_bins).astype(float),
        np.bincount(bins, weights=y, minlength=n_bins),
        np.bincount(bins, weights=s, minlength=n_bins),
        np.bincount(bins, weights=s * (1 - s), minlength=n_bins),
    )


def _series(values: Any) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    return pd.Series(np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values)


def _guarded(fn: Callable[[], float]) -> float:
    """A metric, or NaN where scikit-learn finds it undefined (it warns or raises)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(fn())
        except (ValueError, TypeError, ZeroDivisionError, FloatingPointError):
            return NAN


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC AUC of scores ``s`` for 0/1 labels ``y``, as the Mann-Whitney statistic of the average ranks.

    Equal to ``sklearn.metrics.roc_auc_score`` (ties count one half, as its trapezoids do) without
    its per-call input validation, which dominated segment metrics (hundreds of calls per window).
    NaN when one class is absent.
    """
    positives = int(np.count_nonzero(y))
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = stats.rankdata(s)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def _classification_metrics(
    truth: pd.Series,
    pred: pd.Series,
    score: pd.Series | None,
    positive_label: float | str,
    only: Collection[str] | None,
) -> dict[str, float]:
    out: dict[str, float] = {}

    def wanted(name: str) -> bool:
        return only is None or name in only

    labelled = truth.notna().to_numpy()

    keep = labelled & pred.notna().to_numpy()
    if keep.any() and any(wanted(n) for n in CLASSIFICATION_METRICS):
        (t, p), positive = comparable(truth[keep], pred[keep], positive_label=positive_label)
        true_pos, pred_pos = t == positive, p == positive
        if wanted("accuracy"):
            out["accuracy"] = _guarded(lambda: skm.accuracy_score(t, p))
        if wanted("precision"):
            out["precision"] = _guarded(lambda: skm.precision_score(true_pos, pred_pos, zero_division=np.nan))
        if wanted("recall"):
            out["recall"] = _guarded(lambda: skm.recall_score(true_pos, pred_pos, zero_division=np.nan))
        if wanted("f1"):
            out["f1"] = _guarded(lambda: skm.f1_score(true_pos, pred_pos, zero_division=np.nan))

    if score is None or not any(wanted(n) for n in SCORE_METRICS):
        return out
    s_all = pd.to_numeric(score, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    keep = labelled & np.isfinite(s_all)
    if not keep.any():
        return out
    (t,), positive = comparable(truth[keep], positive_label=positive_label)
    y = (t == positive).astype(np.int64)
    s = s_all[keep]
    if wanted("roc_auc") and 0 < y.sum() < y.size:
        out["roc_auc"] = _guarded(lambda: roc_auc(y, s))
    if np.all((s >= 0) & (s <= 1)):  # the probability metrics need probabilities
        if wanted("log_loss"):
            out["log_loss"] = _guarded(lambda: skm.log_loss(y, s, labels=[0, 1]))
        if wanted("brier_score"):
            out["brier_score"] = _guarded(lambda: skm.brier_score_loss(y, s, pos_label=1))
        if wanted("calibration_error"):
            out["calibration_error"] = expected_calibration_error(y, s)
    return out


def _regression_metrics(truth: pd.Series, pred: pd.Series) -> dict[str, float]:
    t_all = pd.to_numeric(truth, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    p_all = pd.to_numeric(pred, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    keep = np.isfinite(t_all) & np.isfinite(p_all)
    if not keep.any():
        return {}
    t, p = t_all[keep], p_all[keep]
    return {
        "mae": _guarded(lambda: skm.mean_absolute_error(t, p)),
        "rmse": _guarded(lambda: skm.root_mean_squared_error(t, p)),
        "mape": _guarded(lambda: skm.mean_absolute_percentage_error(t, p)),
        "r2": _guarded(lambda: skm.r2_score(t, p)) if t.size >= 2 else NAN,
    }


# --------------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------------


def _number(value: float) -> str:
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(float(f"{value:.6g}"))


def numeric_segment_names(profile: NumericProfile) -> list[str]:
    """The interval of each coarse group of a reference numeric profile, e.g. ``[41.0, 48.5)``."""
    edges, groups = profile.edges, profile.groups
    names: list[str] = []
    for group in range(int(groups.max()) + 1 if groups.size else 0):
        members = np.flatnonzero(groups == group)
        first, last = int(members.min()), int(members.max())
        # Count index 0 is below edges[0]; i in 1..len(edges)-1 is [edges[i-1], edges[i]) (the last one
        # closed); len(edges) is above edges[-1].
        if first == 0 or edges.size == 0:
            opening, low = "(", -math.inf
        elif first == len(edges):
            opening, low = "(", float(edges[-1])
        else:
            opening, low = "[", float(edges[first - 1])
        if last >= len(edges):
            high, closing = math.inf, ")"
        else:
            high, closing = float(edges[last]), ("]" if last == len(edges) - 1 and last > 0 else ")")
        name = f"{opening}{_number(low)}, {_number(high)}{closing}"
        names.append(name if name not in names else f"{name} #{group}")
    return names


def top_categories(profile: CategoricalProfile, limit: int = MAX_CATEGORY_SEGMENTS) -> list[str]:
    """The reference's most frequent categories (ties by name); each is its own segment."""
    ranked = sorted(profile.counts.items(), key=lambda item: (-item[1], item[0]))
    return [category for category, _ in ranked[:limit]]


def segment_vocabulary(profile: FeatureProfile) -> list[str]:
    """Every segment name a feature's rows can take (see :func:`assign_segments`), in a fixed order:
    the coarse bins or top categories (then ``__other__``), and ``__missing__`` last. A top category
    that is itself named ``__other__`` or ``__missing__`` keeps only its first place (the rows are one segment)."""
    if isinstance(profile, NumericProfile):
        names = numeric_segment_names(profile) or ["(-inf, inf)"]
    else:
        names = [*top_categories(profile), OTHER]
    return [*names, MISSING]


def segment_codes(
    column: pd.Series, profile: FeatureProfile, positions: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Every row's segment as an index into :func:`segment_vocabulary` (which is returned with it).

    Integer codes, so the folds count segments with one ``bincount`` instead of comparing names; a
    name that appears twice in the vocabulary (see there) is coded by its first place. ``positions``:
    a numeric column's values and ``bin_positions`` on the profile's edges, when already computed.
    """
    vocabulary = segment_vocabulary(profile)
    first = {name: i for i, name in reversed(list(enumerate(vocabulary)))}
    missing_code, other_code = first[MISSING], first[OTHER] if OTHER in first else -1
    if isinstance(profile, NumericProfile):
        values, index = positions if positions is not None else (numeric_values(column), None)
        edges = profile.edges
        if index is None:
            index = bin_positions(values, edges)
        groups = profile.groups if profile.groups.size == len(edges) + 1 else np.zeros(len(edges) + 1, np.int64)
        remap = np.asarray([first[name] for name in vocabulary[:-1]], dtype=np.int64)
        codes = remap[groups[np.minimum(index, len(groups) - 1)]]
        codes[np.isnan(values)] = missing_code
        return codes, vocabulary
    # The same text the reference profile counted its categories under (1.0 is "1"), hashed once.
    series = column.reset_index(drop=True)
    missing = series.isna().to_numpy()
    codes = np.full(len(series), missing_code, dtype=np.int64)
    present = series[~missing]
    if not pd.api.types.is_string_dtype(present.dtype) or present.dtype == object:
        present = category_text(present.astype(object)).astype(str)
    top = vocabulary[:-2]
    found = pd.Index(top, dtype=object).get_indexer(pd.Index(present.to_numpy(dtype=object), dtype=object))
    remap = np.asarray([first[name] for name in top] + [other_code], dtype=np.int64)
    codes[~missing] = remap[found]  # -1 (not a top category) takes the last entry: __other__
    return codes, vocabulary


def assign_segments(column: pd.Series, profile: FeatureProfile) -> np.ndarray:
    """The segment name of every row: a coarse reference bin, a top category, ``__other__`` or ``__missing__``."""
    codes, vocabulary = segment_codes(column, profile)
    return np.asarray(vocabulary, dtype=object)[codes]


class BlockSegments:
    """The segment codes of one block's features, computed once and shared by the folds that count
    per segment (realised performance, estimated performance)."""

    def __init__(self, frame: pd.DataFrame, reference: ModelProfile, positions: BinPositions | None = None) -> None:
        self._frame = frame
        self._reference = reference
        #: Numeric columns' values and bin positions from the block's drift profile (the same searchsorted).
        self._positions = positions or {}
        self._codes: dict[str, tuple[np.ndarray, list[str]]] = {}

    def codes(self, feature: str) -> tuple[np.ndarray, list[str]] | None:
        """``segment_codes`` of ``feature``; None when the block or the reference lacks it."""
        if feature not in self._codes:
            profile = self._reference.features.get(feature)
            if profile is None or feature not in self._frame.columns:
                return None
            self._codes[feature] = segment_codes(self._frame[feature], profile, self._positions.get(feature))
        return self._codes[feature]


def segment_metric(model_config: ModelConfig) -> str:
    """The primary metric compared per segment."""
    if model_config.task == "regression":
        return "mae"
    return "roc_auc" if model_config.score_column else "accuracy"


def min_segment_labels(model_config: ModelConfig) -> int:
    return max(MIN_SEGMENT_LABELS, math.ceil(model_config.performance.min_labels / 5))


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def label_column_for(model_config: ModelConfig) -> str | None:
    """Where a frame holds the label: the model's label column, else the joined ``__label__``."""
    if model_config.label_column:
        return model_config.label_column
    return JOINED_LABEL_COLUMN if model_config.labels is not None else None


@dataclass
class _Rows:
    """The columns the metrics need, aligned by position."""

    truth: pd.Series
    pred: pd.Series
    score: pd.Series | None

    @property
    def rows(self) -> int:
        return len(self.truth)

    @property
    def labelled(self) -> int:
        return int(self.truth.notna().sum())

    def subset(self, positions: np.ndarray) -> _Rows:
        """The rows at integer ``positions``, renumbered from 0."""
        return _Rows(
            self.truth.take(positions).reset_index(drop=True),
            self.pred.take(positions).reset_index(drop=True),
            None if self.score is None else self.score.take(positions).reset_index(drop=True),
        )


def _rows(model_config: ModelConfig, frame: pd.DataFrame, label_column: str | None) -> _Rows:
    def column(name: str | None) -> pd.Series:
        if name is not None and name in frame.columns:
            return frame[name].reset_index(drop=True)
        return pd.Series(np.full(len(frame), np.nan), dtype=np.float64)

    score = (
        column(model_config.score_column)
        if model_config.task == "classification" and model_config.score_column
        else None
    )
    return _Rows(column(label_column), column(model_config.prediction_column), score)


#: Key of the window's performance state in ``ModelProfile.states``.
PERFORMANCE_STATE = "performance"


def performance_streams(model_config: ModelConfig) -> bool:
    """Whether a window of ``model`` carries a performance state: performance on, a label known, and
    ``monitors:`` absent (every built-in runs) or naming the built-in ``performance``."""
    if not model_config.performance.enabled or label_column_for(model_config) is None:
        return False
    return model_config.runs_builtin("performance")


def window_performance(
    frame: pd.DataFrame,
    model_config: ModelConfig,
    reference: ModelProfile | None,
    label_column: str | None = None,
    segments: BlockSegments | None = None,
) -> WindowPerformance:
    """The performance state of some rows of a window (a block or all of them): overall, and per
    segment of every feature the reference profiles (segments only with ``performance.segments``).
    ``segments``: the block's segment codes when another fold of the same block computed them."""
    label_column = label_column or label_column_for(model_config)
    rows = _rows(model_config, frame, label_column)
    facts = RowFacts.of(model_config.task, rows.truth, rows.pred, rows.score, model_config.performance.positive_label)
    coded: dict[str, tuple[np.ndarray, list[str]]] = {}
    if model_config.performance.segments and reference is not None:
        segments = segments or BlockSegments(frame, reference)
        for feature, _ in model_config.features.items():
            codes = segments.codes(feature)
            if codes is not None:
                coded[feature] = codes
    return WindowPerformance.of_rows(facts, coded, label_present=label_column in frame.columns)


def _metrics(model_config: ModelConfig, rows: _Rows, only: Collection[str] | None = None) -> dict[str, float]:
    return compute_metrics(
        model_config.task, rows.truth, rows.pred, rows.score, model_config.performance.positive_label, only=only
    )


def _json_float(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def segment_positions(segments: np.ndarray) -> list[tuple[Any, np.ndarray]]:
    """Each segment name (in order of first appearance) with its rows' positions.

    One stable sort of the codes, instead of comparing every row's name once per segment (that cost
    most of the performance monitor at 1M rows).
    """
    codes, names = pd.factorize(segments)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    return [(name, order[bounds[code] : bounds[code + 1]]) for code, name in enumerate(names)]


def _segment_table(model_config: ModelConfig, rows: _Rows, segments: np.ndarray) -> dict[str, dict[str, Any]]:
    metric = segment_metric(model_config)
    labelled = rows.truth.notna().to_numpy()
    table: dict[str, dict[str, Any]] = {}
    for name, positions in segment_positions(segments):
        value, sampling = _segment_statistics(model_config, metric, rows.subset(positions))
        table[str(name)] = {
            "rows": int(positions.size),
            "labelled_rows": int(labelled[positions].sum()),
            "value": _json_float(value),
            **sampling,
        }
    return table


# --------------------------------------------------------------------------------------------
# Reference
# --------------------------------------------------------------------------------------------


def reference_performance(
    model_config: ModelConfig,
    reference_frame: pd.DataFrame,
    profile: ModelProfile | None = None,
    label_column: str | None = None,
) -> ReferencePerformance:
    """The reference's performance on its labelled rows, overall and per segment (stored as JSON).

    ``profile`` is the stored reference profile whose bins define the numeric segments; when not
    given it is fitted from ``reference_frame`` (the same rows give the same bins). ``label_column``
    defaults to :func:`label_column_for`. Undefined metrics are ``null``. Shape::

        {"version": 2, "task": "classification", "label_column": "label", "positive_label": 1,
         "rows": 9600, "labelled_rows": 9600, "label_coverage": 1.0,
         "metrics": {"accuracy": 0.75, ..., "roc_auc": 0.83},
         "sampling": {"n": 9600, "predicted_positives": 4810, "actual_positives": 4795,
                      "positives": 4795, "negatives": 4805, "log_loss_std": 0.41, "brier_score_std": 0.17},
         "segment_metric": "roc_auc", "min_segment_labels": 10,
         "segments": {"income": {"column_kind": "numeric",
                                 "segments": {"(-inf, 37190.4)": {"rows": 960, "labelled_rows": 960,
                                                                  "value": 0.82, "positives": 470,
                                                                  "negatives": 490}, ...}}, ...}}

    ``sampling`` is what the significance tests of the overall metrics need (see
    :func:`overall_sampling`). A segment's ``value`` is the ``segment_metric``; beside it what its
    sampling variance needs:
    ``positives``/``negatives`` (roc_auc), ``n`` (accuracy: rows compared), ``n``/``error_std``
    (mae). Segment names: see :func:`assign_segments`. The shape above is the stored JSON
    (:meth:`ReferencePerformance.to_json`); the fields are read by attribute.
    """
    label_column = label_column or label_column_for(model_config)
    rows = _rows(model_config, reference_frame, label_column)
    if profile is None:
        profile = fit_model_profile(reference_frame, model_config.features.numeric, model_config.features.categorical)
    segments: dict[str, Any] = {}
    if model_config.performance.segments:
        for feature, kind in model_config.features.items():
            feature_profile = profile.features.get(feature)
            if feature_profile is None or feature not in reference_frame.columns:
                continue
            assigned = assign_segments(reference_frame[feature].reset_index(drop=True), feature_profile)
            segments[feature] = {"column_kind": kind, "segments": _segment_table(model_config, rows, assigned)}
    labelled = rows.labelled
    return ReferencePerformance(
        version=REFERENCE_PERFORMANCE_VERSION,
        task=model_config.task,
        label_column=label_column,
        positive_label=model_config.performance.positive_label,
        rows=rows.rows,
        labelled_rows=labelled,
        label_coverage=_json_float(labelled / rows.rows) if rows.rows else None,
        metrics={name: _json_float(value) for name, value in _metrics(model_config, rows).items()},
        sampling=overall_sampling(model_config, rows),
        segment_metric=segment_metric(model_config),
        min_segment_labels=min_segment_labels(model_config),
        segments=segments,
    )


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------


#: Name prefix of the estimated metrics (``performance_estimation``): ``estimated_recall`` is judged as ``recall``.
ESTIMATED_PREFIX = "estimated_"


def base_metric(metric: str) -> str:
    """The metric a result is judged as: ``segment_x``, ``estimated_x`` and ``estimated_segment_x`` are ``x``."""
    return metric.removeprefix(ESTIMATED_PREFIX).removeprefix("segment_")


def lower_is_better(metric: str) -> bool:
    return base_metric(metric) in LOWER_IS_BETTER


def tolerance_for(model_config: ModelConfig, metric: str) -> tuple[float, float]:
    """Relative (warning, alert) degradation allowed for a metric; ``estimated_x`` falls back to ``x``,
    ``segment_x`` to ``x``."""
    tolerances = model_config.performance.tolerance
    realised = metric.removeprefix(ESTIMATED_PREFIX)
    levels = tolerances.get(metric) or tolerances.get(realised) or tolerances.get(base_metric(metric))
    levels = levels or model_config.performance.default_tolerance
    return levels.warning, levels.alert


def bound(metric: str, reference: float, tolerance: float) -> float:
    """The value beyond which ``metric`` has degraded by more than ``tolerance`` relative to ``reference``."""
    if lower_is_better(metric):
        return reference + abs(reference) * tolerance
    return reference - abs(reference) * tolerance


def degradation(metric: str, reference: float, value: float) -> float:
    """Relative change for the worse (negative: better). With a zero reference, ``inf`` if worse at all."""
    worse = (value - reference) if lower_is_better(metric) else (reference - value)
    if reference == 0:
        return math.inf if worse > 0 else 0.0 if worse == 0 else -math.inf
    return worse / abs(reference)


def _status(metric: str, value: float, warning_bound: float, alert_bound: float) -> Status:
    """A level is reached beyond its bound (the bound itself is within tolerance); no significance gate
    here, the window's family adds it (:func:`judge_window_performance`)."""
    levels = Threshold(warning_bound, alert_bound, None, higher_is_worse=lower_is_better(metric), strict=True)
    return levels.judge(value)


def _reference_problem(model_config: ModelConfig, reference_perf: ReferencePerformance | None) -> str | None:
    if reference_perf is None:
        return "no reference performance"
    if reference_perf.task != model_config.task:
        return f"reference performance was computed for task {reference_perf.task!r}, not {model_config.task!r}"
    labelled = reference_perf.labelled_rows
    if labelled < model_config.performance.min_labels:
        return f"reference has {labelled} labelled rows, fewer than min_labels={model_config.performance.min_labels}"
    return None


def evaluate_performance(
    context: WindowContext,
    reference_perf: ReferencePerformance | Mapping[str, Any] | None,
    label_column: str | None = None,
) -> list[Result]:
    """One ``performance`` result per metric, and one per feature for its most degraded segment.

    ``value`` is the window's metric on its labelled rows, ``threshold`` the alert bound derived from
    the reference value; a warning or alert also needs a significant degradation (``details``:
    ``p_value``, ``test``, ``alpha``; see the module docstring). Fewer than ``performance.min_labels``
    labelled rows make every result ``unknown`` (with the reason). No label column
    (``label_column``, default :func:`label_column_for`) or performance disabled: no results.
    ``reference_perf`` is the reference's ``fitted.performance`` (its stored JSON form is accepted too).
    """
    reference_perf = ReferencePerformance.coerce(reference_perf)
    model = context.model
    label_column = label_column or label_column_for(model)
    if label_column is None or not model.performance.enabled:
        return []
    state = context.current.states.get(PERFORMANCE_STATE) if context.current is not None else None
    if not isinstance(state, WindowPerformance) or label_column != label_column_for(model):
        # No state folded with the window's profile (a caller's own context): fold the frame now.
        state = window_performance(context.frame, model, context.reference, label_column)
    overall = state.overall
    labelled = overall.labelled
    coverage = labelled / overall.rows if overall.rows else 0.0
    counts = {"labelled_rows": labelled, "rows": overall.rows, "label_coverage": round(coverage, 6)}

    reason = None
    if not state.label_present:
        reason = f"label column {label_column!r} is not in the window's rows"
    elif labelled < model.performance.min_labels:
        reason = f"{labelled} labelled rows, fewer than min_labels={model.performance.min_labels}"
    reference_reason = _reference_problem(model, reference_perf)
    reference_metrics = reference_perf.metrics if reference_perf is not None else {}
    values = overall.metrics()
    tests: dict[str, _Test] = {}
    if reason is None and reference_perf is not None and reference_reason is None:
        tests = _overall_tests(values, overall.sampling(), reference_perf)
    alpha = _alpha(model)

    results = []
    for metric, value in values.items():
        warning, alert = tolerance_for(model, metric)
        ref_value = _json_float(reference_metrics.get(metric))
        details: dict[str, Any] = {
            **counts,
            "reference_value": ref_value,
            "tolerance": {"warning": warning, "alert": alert},
        }
        details["direction"] = "lower_is_better" if metric in LOWER_IS_BETTER else "higher_is_better"
        alert_bound = warning_bound = None
        if ref_value is not None:
            alert_bound, warning_bound = bound(metric, ref_value, alert), bound(metric, ref_value, warning)
            details["warning"] = warning_bound
        why = reason or reference_reason
        if why is None and ref_value is None:
            why = f"{metric} is undefined on the reference"
        if why is None and not math.isfinite(value):
            why = f"{metric} is undefined on the window's labelled rows"
        if why is not None:
            status = Status.UNKNOWN
            details["reason"] = why
        else:
            assert alert_bound is not None and warning_bound is not None
            status = _status(metric, value, warning_bound, alert_bound)
            details["level_reached"] = str(status)
            if metric == "calibration_error":
                p_value, test = _calibration_change_pvalue(context, overall, label_column)
                details |= {"p_value": _json_float(p_value), "alpha": alpha, "test": test}
            elif metric in tests:
                test = tests[metric]
                details |= {"p_value": _json_float(test.p_value), "alpha": alpha, "test": test.name}
                if test.tested is not None:
                    details["tested"] = test.tested
        results.append(
            context.result(
                kind=Kind.PERFORMANCE,
                metric=metric,
                feature=None,
                value=_json_float(value),
                threshold=alert_bound,
                status=status,
                details=details,
            )
        )

    if model.performance.segments:
        for feature, kind in model.features.items():
            results.append(
                _segment_result(
                    context,
                    state,
                    feature,
                    kind,
                    reference_perf,
                    reason or reference_reason,
                    features=len(model.features.items()),
                )
            )
    return explain_performance(context, judge_performance_family(results, model))


def performance_threshold(model_config: ModelConfig) -> Threshold:
    """The threshold object of the performance family. The levels are reached by each metric's bounds
    (``details.level_reached``: 1 warning, 2 alert); the object supplies the significance each needs."""
    alpha = _alpha(model_config)
    return Threshold(1.0, 2.0, alpha, alpha * ALERT_ALPHA_RATIO)


_LEVEL_INDEX = {"ok": 0.0, "warning": 1.0, "alert": 2.0}


def judge_performance_family(results: list[Result], model_config: ModelConfig) -> list[Result]:
    """One window-level family for every performance check.

    The p-values of the overall metrics and of each feature's most degraded segment (already
    Bonferroni-adjusted for its segments and features) are Holm-adjusted together; each result keeps
    the level its bound reached only if the adjusted p-value is below that level's alpha (``alpha``
    for a warning, ``alpha / 10`` for an alert). Why: each metric tested at ``alpha`` on its own gave
    every window eight or more chances to flag (accuracy, precision, recall, F1, ROC AUC, log loss,
    Brier, calibration), and calm hours were flagged. A result without a test keeps its bound's level.

    The estimated metrics (``estimated_*``, before labels) are members like any other; judging a
    family again (with more members, see :func:`judge_window_performance`) gives the same answer from
    the same details, and keeps a flagged result's likely causes in its sentence.
    """
    threshold = performance_threshold(model_config)
    members = [i for i, r in enumerate(results) if "level_reached" in r.details]
    pvalues = [results[i].details.get("p_value_bonferroni", results[i].details.get("p_value")) for i in members]
    statuses, adjusted = judge_family(
        [_LEVEL_INDEX[results[i].details["level_reached"]] for i in members], pvalues, [threshold] * len(members)
    )
    out = list(results)
    for i, status, p_adj in zip(members, statuses, adjusted, strict=True):
        r = results[i]
        details = dict(r.details) | {"alert_alpha": threshold.alpha_for_alert, "family_size": len(members)}
        if p_adj is not None:
            details["p_value_adjusted"] = p_adj
        if status in (Status.WARNING, Status.ALERT):
            details["reason"] = _performance_sentence(r, status, p_adj)
            causes = (details.get("likely_causes") or {}).get("text")
            if causes:
                details["reason"] += f"; likely causes: {causes}"
        else:
            details.pop("likely_causes", None)
            if r.details["level_reached"] != "ok":
                details["reason"] = _not_significant(r)
        out[i] = replace(r, status=status, details=details)
    return out


def _not_significant(r: Result) -> str:
    if r.metric == "calibration_error":
        return "miscalibration not significant"
    estimate = r.metric.startswith(ESTIMATED_PREFIX)
    return "estimated degradation not significant" if estimate else "degradation not significant"


def judge_window_performance(results: list[Result], model_config: ModelConfig) -> list[Result]:
    """The window's performance family across monitors: realised metrics (``performance``) and
    estimated ones (``performance_estimation``) judged together, so a calm window's chance of any
    performance flag stays at ``alpha`` (warning) and ``alpha / 10`` (alert) with both monitors on.

    Each monitor judges its own results as a family first (so either alone, or a merged day of
    estimates, is judged the same way); with both, the union is judged again here — its adjusted
    p-values are never smaller, so this only takes levels away. Other results pass unchanged.
    """
    members = [i for i, r in enumerate(results) if r.kind == Kind.PERFORMANCE and "level_reached" in r.details]
    if not members:
        return results
    judged = judge_performance_family([results[i] for i in members], model_config)
    out = list(results)
    for i, r in zip(members, judged, strict=True):
        out[i] = r
    return out


def _performance_sentence(r: Result, status: Status, p_adj: float | None) -> str:
    """E.g. ``accuracy: 0.81 ≤ 0.855 (alert), p = 3e-05, 420 labelled rows; reference 0.95``; an
    estimate ``estimated_recall: 0.52 ≤ 0.54 (alert), p = 2e-05, 3,000 scored rows, before labels;
    reference 0.61``."""
    d = r.details
    bound_value = r.threshold if status == Status.ALERT else d.get("warning")
    level = math.nan if bound_value is None else float(bound_value)
    text = reason_sentence(
        subject=r.metric if r.feature is None else f"{r.metric} where {r.feature} = {d.get('segment')}",
        label="",
        value=r.value,
        status=status,
        threshold=Threshold(level, level, higher_is_worse=lower_is_better(r.metric)),
        pvalue=p_adj,
    )
    if r.metric.startswith(ESTIMATED_PREFIX):
        rows_text = f"{d.get('rows') or 0:,} scored rows, before labels"
    else:
        rows_text = f"{d.get('labelled_rows', 0):,} labelled rows"
    if r.feature is not None and d.get("window_rows"):
        rows_text += f" ({d.get('rows', 0) / d['window_rows']:.0%} of the window's rows)"
    return f"{text}, {rows_text}; reference {format_number(d.get('reference_value'))}"


def explain_performance(context: WindowContext, results: list[Result]) -> list[Result]:
    """Likely causes of a flagged overall metric, in ``details.likely_causes`` and its sentence.

    The segments whose metric fell most (one per feature, largest relative fall first, with their
    share of the window's rows) and the features that drifted this window, largest effect first
    (each feature's primary drift statistic, computed from the profiles the window already has).
    """
    flagged = [i for i, r in enumerate(results) if r.feature is None and r.status in (Status.WARNING, Status.ALERT)]
    if not flagged:
        return results
    segments = []
    for r in results:
        if r.feature is None or r.status == Status.UNKNOWN:
            continue
        for s in r.details.get("worst_segments", [])[:1]:
            if s.get("degradation") is not None and s["degradation"] > 0:
                window_rows = r.details.get("window_rows")
                segments.append(
                    {
                        "feature": r.feature,
                        "segment": s["segment"],
                        "value": s["value"],
                        "reference_value": s["reference_value"],
                        "degradation": s["degradation"],
                        "row_share": round(s["rows"] / window_rows, 4) if window_rows else None,
                    }
                )
    segments.sort(key=lambda s: -s["degradation"])
    causes: dict[str, Any] = {"segments": segments[:3], "drifted_features": _drift_ranking(context)[:3]}
    parts = []
    if causes["segments"]:
        parts.append(
            "worst segments "
            + ", ".join(
                f"{s['feature']} = {s['segment']} ({format_number(s['value'])} vs {format_number(s['reference_value'])}"
                + (f", {s['row_share']:.0%} of rows)" if s["row_share"] is not None else ")")
                for s in causes["segments"]
            )
        )
    if causes["drifted_features"]:
        parts.append(
            "drifted features "
            + ", ".join(
                f"{f['feature']} ({f['metric']} {format_number(f['effect'])})" for f in causes["drifted_features"]
            )
        )
    if parts:
        causes["text"] = "; ".join(parts)  # kept, so a re-judged family can say it again
    out = list(results)
    for i in flagged:
        r = out[i]
        details = dict(r.details) | {"likely_causes": causes}
        if parts:
            details["reason"] = f"{details.get('reason', r.metric)}; likely causes: {causes['text']}"
        out[i] = replace(r, details=details)
    return out


def _drift_ranking(context: WindowContext) -> list[dict[str, Any]]:
    """Features whose primary drift statistic reached a level this window, largest effect first."""
    if context.reference is None:
        return []
    from driftline.tasks.drift import evaluate_drift  # a sibling task; lazily, so importing stays cheap

    ranked = []
    for r in evaluate_drift(context.model, context.window, context.reference, context.current):
        if r.feature is None or not r.details.get("primary") or r.status not in (Status.WARNING, Status.ALERT):
            continue
        effect = r.details.get("effect_value", r.value)
        ranked.append({"feature": r.feature, "metric": r.metric, "effect": effect, "status": str(r.status)})
    ranked.sort(key=lambda f: -(f["effect"] or 0))
    return ranked


def overall_sampling(model_config: ModelConfig, rows: _Rows) -> dict[str, Any]:
    """What the significance tests of the overall metrics need, on the labelled rows, as JSON.

    Classification: ``n`` (rows with a label and a prediction: accuracy's denominator),
    ``predicted_positives`` (precision's), ``actual_positives`` (recall's); with a score column
    also ``positives`` and ``negatives`` (labelled rows with a score: ROC AUC's Hanley-McNeil
    variance) and, when the scores are probabilities, ``log_loss_std`` and ``brier_score_std``: the
    standard deviations of the per-row log loss (scores clipped to ``[eps, 1 - eps]`` as
    scikit-learn does) and squared error, whose means are the metrics. Regression: ``n`` and the
    standard deviations of the per-row absolute error (``mae_std``), squared error (``mse_std``)
    and absolute percentage error (``mape_std``, ``|y - p| / max(|y|, eps)`` as scikit-learn).
    A standard deviation needs two rows, else it is ``null``.
    """
    if model_config.task == "regression":
        t = pd.to_numeric(rows.truth, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        p = pd.to_numeric(rows.pred, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        keep = np.isfinite(t) & np.isfinite(p)
        t, p = t[keep], p[keep]
        errors = np.abs(t - p)
        eps = np.finfo(np.float64).eps
        return {
            "n": int(errors.size),
            "mae_std": _std(errors),
            "mse_std": _std(errors**2),
            "mape_std": _std(errors / np.maximum(np.abs(t), eps)),
        }
    keep = (rows.truth.notna() & rows.pred.notna()).to_numpy()
    out: dict[str, Any] = {"n": int(keep.sum()), "predicted_positives": 0, "actual_positives": 0}
    if keep.any():
        (t, p), positive = comparable(
            rows.truth[keep], rows.pred[keep], positive_label=model_config.performance.positive_label
        )
        out["predicted_positives"], out["actual_positives"] = int((p == positive).sum()), int((t == positive).sum())
    if rows.score is None:
        return out
    y, s = _scored(model_config, rows)
    out |= {"positives": int(y.sum()), "negatives": int(y.size - y.sum())}
    if y.size and np.all((s >= 0) & (s <= 1)):
        eps = np.finfo(np.float64).eps
        clipped = np.clip(s, eps, 1 - eps)
        out["log_loss_std"] = _std(-(y * np.log(clipped) + (1 - y) * np.log1p(-clipped)))
        out["brier_score_std"] = _std((y - s) ** 2)
    return out


def _std(values: np.ndarray) -> float | None:
    return _json_float(np.std(values, ddof=1)) if values.size > 1 else None


@dataclass
class _Test:
    """A one-sided test that a metric is worse on the window than on the reference."""

    name: str
    p_value: float
    #: The metric whose test gates another (f1: precision or recall).
    tested: str | None = None


def _overall_tests(
    values: dict[str, float], window: dict[str, Any], reference_perf: ReferencePerformance
) -> dict[str, _Test]:
    """The significance test of each overall metric defined on both sides (calibration error aside).

    ``values`` are the window's metrics, ``window`` is :func:`overall_sampling` of its rows; the
    reference's is the stored ``sampling`` (absent from references before version 2: they count as
    exact).
    """
    reference_metrics = reference_perf.metrics
    reference = reference_perf.sampling
    tests: dict[str, _Test] = {}

    def both(metric: str) -> tuple[float, float] | None:
        value, ref_value = values.get(metric, NAN), _json_float(reference_metrics.get(metric))
        if ref_value is None or not math.isfinite(value):
            return None
        return value, ref_value

    for metric, count in (("accuracy", "n"), ("precision", "predicted_positives"), ("recall", "actual_positives")):
        if pair := both(metric):
            p_value = _proportion_pvalue(pair[0], window.get(count), pair[1], reference.get(count))
            tests[metric] = _Test("two_proportion_z", p_value)
    if pair := both("roc_auc"):
        variance = _auc_variance(pair[1], window.get("positives"), window.get("negatives"))
        variance += _auc_variance(pair[1], reference.get("positives"), reference.get("negatives"))
        tests["roc_auc"] = _Test("hanley_mcneil_z", _normal_pvalue(pair[0] - pair[1], variance))
    scored, scored0 = _scored_rows(window), _scored_rows(reference)
    for metric in ("log_loss", "brier_score", "mae", "mape"):
        if pair := both(metric):
            # The probability metrics are on the labelled rows with a score, the others on ``n``.
            n, n0 = (scored, scored0) if metric in SCORE_METRICS else (window.get("n"), reference.get("n"))
            std, std0 = window.get(f"{metric}_std"), reference.get(f"{metric}_std")
            tests[metric] = _Test("welch_t", _welch_pvalue(pair[0], std, n, pair[1], std0, n0))
    if pair := both("rmse"):
        n, n0 = window.get("n"), reference.get("n")
        mse = _welch_pvalue(pair[0] ** 2, window.get("mse_std"), n, pair[1] ** 2, reference.get("mse_std"), n0)
        tests["rmse"] = _Test("welch_t_mse", mse)
        if both("r2"):
            tests["r2"] = _Test("welch_t_mse", mse, "mse")
    if both("f1"):
        gates = [(tests[m].p_value, m) for m in ("precision", "recall") if m in tests]
        gates = [(p_value, m) for p_value, m in gates if not math.isnan(p_value)]
        if gates:
            p_value, tested = min(gates)
            tests["f1"] = _Test("min_precision_recall", min(1.0, 2 * p_value), tested)
    return tests


def _scored_rows(sampling: dict[str, Any]) -> int:
    return int(sampling.get("positives") or 0) + int(sampling.get("negatives") or 0)


def _proportion_pvalue(value: float, n: Any, reference: float, n0: Any) -> float:
    """One-sided p-value that a proportion of ``value`` on ``n`` rows is below ``reference`` by chance.

    Two-proportion z-test on the variance-stabilised scale, ``asin(sqrt(p))`` with variance
    ``1 / (4 n)`` per side, with a continuity correction of ``0.5 / n`` per side. The plain z-test
    with the pooled variance is anti-conservative in this tail for proportions above 0.5 (its exact
    size at ``ALPHA = 0.01`` is 1.4% at 0.75 on 150 rows, 2% at 0.9 on 100, 1.8% at 0.99 on 150);
    this one's is at most 1.12% from 0.3 to 0.99 on 50 to 1,500 rows (exact binomial sums, the
    reference proportion held fixed). Without ``n0`` the reference counts as exact.
    """
    n, n0 = int(n or 0), int(n0 or 0)
    if not n or not (math.isfinite(value) and math.isfinite(reference)):
        return NAN
    variance = 1 / (4 * n) + (1 / (4 * n0) if n0 else 0.0)
    if value >= reference:
        return _normal_pvalue(_arcsine(value) - _arcsine(reference), variance)
    # Continuity correction: each side half a count towards the other (never past it).
    corrected = _arcsine(value + 0.5 / n) - _arcsine(reference - (0.5 / n0 if n0 else 0.0))
    return _normal_pvalue(min(corrected, 0.0), variance)


def _arcsine(p: float) -> float:
    return math.asin(math.sqrt(min(max(p, 0.0), 1.0)))


@dataclass
class _SegmentOutcome:
    name: str
    rows: int
    labelled_rows: int
    value: float
    reference_value: float
    reference_labelled_rows: int
    degradation: float
    p_value: float


def _segment_result(
    context: WindowContext,
    state: WindowPerformance,
    feature: str,
    kind: str,
    reference_perf: ReferencePerformance | None,
    reason: str | None,
    features: int = 1,
) -> Result:
    """The most degraded segment of one feature. Its p-value is Bonferroni-adjusted for the segments
    compared *and* the features checked in the window (each feature gets one such test per hour)."""
    model = context.model
    metric = segment_metric(model)
    name = f"segment_{metric}"
    warning, alert = tolerance_for(model, name)
    minimum = min_segment_labels(model)
    details: dict[str, Any] = {
        "column_kind": kind,
        "min_segment_labels": minimum,
        "tolerance": {"warning": warning, "alert": alert},
    }

    def unknown(why: str) -> Result:
        return context.result(
            kind=Kind.PERFORMANCE,
            metric=name,
            feature=feature,
            value=None,
            threshold=None,
            status=Status.UNKNOWN,
            details={**details, "reason": why},
        )

    if reason is not None:
        return unknown(reason)
    assert reference_perf is not None
    reference_segments = (reference_perf.segments.get(feature) or {}).get("segments")
    if reference_perf.segment_metric != metric or not reference_segments:
        return unknown(f"no reference {metric} per segment of {feature!r}")
    window_segments = state.segments.get(feature)
    if window_segments is None:
        return unknown(f"feature {feature!r} is not in the reference profile or the window's rows")

    compared: list[_SegmentOutcome] = []
    for segment, segment_state in window_segments.items():
        n_labelled = segment_state.labelled
        ref = reference_segments.get(segment) or {}
        ref_value = _json_float(ref.get("value"))
        ref_labelled = int(ref.get("labelled_rows") or 0)
        if n_labelled < minimum or ref_value is None or ref_labelled < minimum:
            continue
        value, sampling = _segment_state_statistics(metric, segment_state)
        if not math.isfinite(value):
            continue
        compared.append(
            _SegmentOutcome(
                segment,
                segment_state.rows,
                n_labelled,
                value,
                ref_value,
                ref_labelled,
                degradation(metric, ref_value, value),
                _degradation_pvalue(metric, value, sampling, ref_value, ref),
            )
        )
    if not compared:
        return unknown(
            f"no segment of {feature!r} has {minimum} labelled rows and a defined {metric} "
            "in both the window and the reference"
        )

    compared.sort(key=lambda s: (-s.degradation, s.p_value))
    worst = compared[0]
    alpha = _alpha(model)
    p_adjusted = min(1.0, worst.p_value * len(compared) * max(features, 1))
    alert_bound, warning_bound = bound(name, worst.reference_value, alert), bound(name, worst.reference_value, warning)
    status = _status(name, worst.value, warning_bound, alert_bound)
    details |= {
        "level_reached": str(status),
        "p_value_bonferroni": p_adjusted,
        "window_rows": state.overall.rows,
        "segment": worst.name,
        "rows": worst.rows,
        "labelled_rows": worst.labelled_rows,
        "reference_value": worst.reference_value,
        "reference_labelled_rows": worst.reference_labelled_rows,
        "degradation": _json_float(worst.degradation),
        "warning": warning_bound,
        "p_value": _json_float(worst.p_value),
        "alpha": alpha,
        "segments_compared": len(compared),
        "features_compared": max(features, 1),
        "worst_segments": [
            {
                "segment": s.name,
                "value": s.value,
                "reference_value": s.reference_value,
                "degradation": _json_float(s.degradation),
                "rows": s.rows,
                "labelled_rows": s.labelled_rows,
            }
            for s in compared[:3]
        ],
        # Every compared segment's realised value: an estimated segment (performance_estimation) is put
        # beside the realised value of the same segment, not beside the realised worst one.
        "segment_values": {s.name: {"value": s.value, "labelled_rows": s.labelled_rows} for s in compared},
    }
    return context.result(
        kind=Kind.PERFORMANCE,
        metric=name,
        feature=feature,
        value=worst.value,
        threshold=alert_bound,
        status=status,
        details=details,
    )


def _segment_state_statistics(metric: str, state: PerformanceState) -> tuple[float, dict[str, Any]]:
    """:func:`_segment_statistics` from a segment's folded state."""
    value = state.metrics()[metric]
    if metric == "accuracy":
        return value, {"n": state.compared}
    if metric == "roc_auc":
        positives = int(state.score_counts.positives.sum())
        return value, {"positives": positives, "negatives": state.scored_rows - positives}
    return value, {"n": state.absolute_error.count, "error_std": _json_float(state.absolute_error.std())}


def _segment_statistics(model_config: ModelConfig, metric: str, rows: _Rows) -> tuple[float, dict[str, Any]]:
    """A segment's primary metric and what its sampling variance needs (stored with the reference).

    accuracy: ``n`` rows compared; roc_auc: ``positives`` and ``negatives``; mae: ``n`` and the
    standard deviation of the absolute errors ``error_std``.
    """
    value = _metrics(model_config, rows, only=[metric])[metric]
    if metric == "accuracy":
        return value, {"n": int((rows.truth.notna() & rows.pred.notna()).sum())}
    if metric == "roc_auc":
        y, _ = _scored(model_config, rows)
        return value, {"positives": int(y.sum()), "negatives": int(y.size - y.sum())}
    t = pd.to_numeric(rows.truth, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    p = pd.to_numeric(rows.pred, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    errors = np.abs(t - p)[np.isfinite(t) & np.isfinite(p)]
    return value, {"n": int(errors.size), "error_std": _json_float(np.std(errors, ddof=1)) if errors.size > 1 else None}


def _degradation_pvalue(
    metric: str, value: float, window: dict[str, Any], reference: float, reference_stats: dict[str, Any]
) -> float:
    """One-sided p-value that a segment's ``metric`` is worse than on the reference only by chance.

    A normal approximation of the difference, with the sampling variance of both sides (the
    reference's when its counts are stored; older references count as exact): accuracy — binomial
    variance at the reference accuracy; ROC AUC — Hanley & McNeil (1982) at the reference AUC; MAE —
    Welch's t on the absolute errors.
    """

    def inverse(count: Any) -> float:
        return 1.0 / count if count else 0.0

    if metric == "accuracy":
        a = min(max(reference, 0.0), 1.0)
        variance = a * (1 - a) * (inverse(window.get("n")) + inverse(reference_stats.get("n")))
        return _normal_pvalue(value - reference, variance)
    if metric == "roc_auc":
        variance = _auc_variance(reference, window.get("positives"), window.get("negatives"))
        if reference_stats.get("positives") and reference_stats.get("negatives"):
            variance += _auc_variance(reference, reference_stats["positives"], reference_stats["negatives"])
        return _normal_pvalue(value - reference, variance)
    # mae: larger errors are worse.
    sd, sd0 = window.get("error_std"), reference_stats.get("error_std")
    return _welch_pvalue(value, sd, window.get("n"), reference, sd0, reference_stats.get("n"))


def _welch_pvalue(value: float, sd: Any, n: Any, reference: float, sd0: Any, n0: Any) -> float:
    """One-sided p-value that a mean loss of ``value`` (window) exceeds ``reference`` only by chance.

    Welch's t with the Welch-Satterthwaite degrees of freedom; ``sd``/``sd0`` are the per-row standard
    deviations on ``n``/``n0`` rows. A side without them (an older reference) counts as exact.
    """
    n, n0 = int(n or 0), int(n0 or 0)
    sd, sd0 = float(sd or 0.0), float(sd0 or 0.0)
    var_w, var_r = sd * sd / n if n else 0.0, (sd0 * sd0 / n0 if n0 else 0.0)
    if var_w + var_r <= 0:
        return _normal_pvalue(reference - value, 0.0)
    if not math.isfinite(value - reference):
        return 1.0
    denominator = (var_w**2 / (n - 1) if n > 1 else 0.0) + (var_r**2 / (n0 - 1) if n0 > 1 else 0.0)
    dof = (var_w + var_r) ** 2 / denominator if denominator > 0 else math.inf
    return float(stats.t.cdf((reference - value) / math.sqrt(var_w + var_r), dof))


def _normal_pvalue(difference: float, variance: float) -> float:
    """P(Z <= difference / sd): small when ``difference`` (better minus worse) is far below zero."""
    if not math.isfinite(difference):
        return 1.0
    if variance <= 0:
        return 0.0 if difference < 0 else 1.0
    # ``ndtr`` is what ``stats.norm.cdf`` evaluates, without ~0.1 ms of argument handling per call (#15).
    return float(ndtr(difference / math.sqrt(variance)))


def _alpha(model_config: ModelConfig) -> float:
    return float(getattr(model_config.performance, "alpha", ALPHA))


def _calibration_change_pvalue(context: WindowContext, overall: Any, label_column: str) -> tuple[float, str]:
    """P-value that the window's labels follow its scores as the reference's did, and the test's name.

    The label rate per reference score decile against the reference's (``label_rate_by_score``'s
    test, :func:`driftline.stats.concept.calibration_shift_of`, on the concept state folded with the
    window, or on the rows when they are in hand): the calibration error's bound is relative to the
    reference's own, so its test asks whether the calibration *changed*. Without the reference's
    score/label summary (a profile fitted before it existed) or either source of counts,
    Hosmer-Lemeshow, which asks whether the window is calibrated at all.
    """
    from driftline.tasks.profiles import CONCEPT_STATE  # profiles imports this module

    summary = context.reference.fitted.calibration if context.reference is not None else None
    if summary is not None and summary.bins:
        relation = context.current.states.get(CONCEPT_STATE) if context.current is not None else None
        if not isinstance(relation, RelationState) and context.rows.loaded:
            y, s = _scored(context.model, _rows(context.model, context.frame, label_column))
            relation = RelationState.of(summary, int(y.size), s, y)
        if isinstance(relation, RelationState):
            pvalue = calibration_shift_of(summary, relation).pvalue
            if pvalue is not None:
                return pvalue, "label_rate_by_score_chi2"
    return overall.calibration_pvalue(), "hosmer_lemeshow"


def _scored(model_config: ModelConfig, rows: _Rows) -> tuple[np.ndarray, np.ndarray]:
    """1/0 for the positive class, and the score, on the labelled rows that have a score."""
    if rows.score is None:
        return np.empty(0, np.int64), np.empty(0)
    s = pd.to_numeric(rows.score, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    keep = rows.truth.notna().to_numpy() & np.isfinite(s)
    (t,), positive = comparable(rows.truth[keep], positive_label=model_config.performance.positive_label)
    return (t == positive).astype(np.int64), s[keep]


def _auc_variance(auc: float, positives: Any, negatives: Any) -> float:
    """Hanley & McNeil (1982): the variance of an AUC of ``auc`` estimated on these class counts."""
    if not positives or not negatives:
        return 0.0
    a = min(max(auc, 0.0), 1.0)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return max((a * (1 - a) + (positives - 1) * (q1 - a * a) + (negatives - 1) * (q2 - a * a)), 0.0) / (
        positives * negatives
    )
