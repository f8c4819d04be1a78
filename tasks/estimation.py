"""Estimated performance before the labels arrive: the ``performance_estimation`` monitor.

Fit once on the reference (:func:`fit_estimator`, stored as the reference profile's ``fitted.estimator``):

* classifiers with a score — isotonic calibration of the score on the labelled reference rows
  (:func:`driftline.stats.estimation.fit_isotonic`), and how well it predicts held-out reference
  performance (``calibration``: ``poor`` when it does not);
* regressors — additive loss models of the absolute and squared error on the reference's feature
  and prediction segments (:func:`driftline.stats.estimation.fit_additive_loss`).

Fold every window (:func:`window_state`, called wherever a window is profiled, block by block when
streamed): plateau counts per predicted class, or sums of the fitted loss — overall and per feature
segment — kept in ``ModelProfile.states["estimation"]`` and merged into days and weeks.

Evaluate (:func:`estimate_results`): one ``performance`` result ``estimated_<metric>`` per metric
(classifiers: roc_auc, accuracy, precision, recall, f1; regressors: mae, rmse), and per feature
``estimated_segment_<roc_auc|mae>`` for its most degraded segment. ``value`` is the estimate,
``details.band`` its ``[low, high]`` at ``performance.estimation.confidence``. Verdicts use the
realised metric's tolerances (``performance.tolerance``) around the *reference's own estimate*
(so a bias of the estimator, e.g. ROC AUC's ties within a plateau, cancels), gated like the
realised verdicts by a one-sided test with both sides' sampling error, judged in the window's
performance family (:func:`driftline.tasks.performance.judge_performance_family`: Holm across the
estimates, an alert at ``alpha / 10``; with the realised metrics when the labels are in). When the
window's labels arrive, :func:`attach_realised` puts the realised value beside the estimate
(``details.realised``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from scipy import stats as sps

from driftline.config.monitors import ModelConfig
from driftline.core.results import Kind, Result, Status
from driftline.core.window import Window
from driftline.stats.estimation import (
    CLASSIFICATION_ESTIMATES,
    AdditiveLoss,
    Calibrator,
    Estimate,
    EstimationState,
    LevelError,
    design_counts,
    estimate_classification,
    estimate_regression,
    fit_additive_loss,
    fit_isotonic,
    one_sided_pvalue,
    plateau_counts,
)
from driftline.stats.model_profile import ModelProfile, numeric_values
from driftline.stats.reference_state import ReferenceState
from driftline.stats.verdict import Threshold
from driftline.tasks._prefect import NO_RETRIES
from driftline.tasks.context import WindowContext
from driftline.tasks.performance import (
    ALPHA,
    LOWER_IS_BETTER,
    BlockSegments,
    bound,
    degradation,
    judge_performance_family,
    lower_is_better,
    min_segment_labels,
    segment_codes,
    segment_vocabulary,
    tolerance_for,
)

#: Key of the window state in ``ModelProfile.states`` (the estimator itself is ``ModelProfile.fitted.estimator``).
ESTIMATION = "estimation"
MONITOR_NAME = "performance_estimation"
ESTIMATOR_VERSION = 1
REGRESSION_ESTIMATES = ("mae", "rmse")
#: The regressors' loss model has at most this many coefficients (main effects, then pairs of segments).
MAX_LOSS_LEVELS = 4000
PREFIX = "estimated_"
#: Calibration is called poor when, fitted on one half of the reference (in time order) and checked on
#: the other, an estimate misses the realised accuracy or ROC AUC by more than this (or 3 standard errors).
POOR_CALIBRATION_GAP = 0.03
#: ... or the held-out expected calibration error of the calibrated scores exceeds this.
POOR_CALIBRATION_ECE = 0.05


def estimated(metric: str) -> str:
    return PREFIX + metric


def is_estimate(result: Result) -> bool:
    return result.metric.startswith(PREFIX)


# --------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------


def _indicator(values: pd.Series, positive: float | str) -> np.ndarray:
    """1.0 where ``values`` is the positive class, 0.0 another class, NaN where NULL."""
    known = values.notna().to_numpy()
    if isinstance(positive, int | float) and not isinstance(positive, bool):
        hits = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan) == float(positive)
    else:
        hits = values.astype(str).to_numpy() == str(positive)
    return np.where(known, hits.astype(float), np.nan)


def _column(frame: pd.DataFrame, name: str | None) -> pd.Series:
    if name is not None and name in frame.columns:
        return frame[name].reset_index(drop=True)
    return pd.Series(np.full(len(frame), np.nan))




def applies(model_config: ModelConfig) -> bool:
    """Whether the model can have estimates: labels on the reference, and a score for a classifier."""
    if (
        not model_config.performance.enabled
        or not model_config.performance.estimation.enabled
        or model_config.label_field is None
    ):
        return False
    return model_config.task == "regression" or model_config.score_column is not None


def active(model_config: ModelConfig) -> bool:
    """Whether the ``performance_estimation`` monitor runs for the model: it can (:func:`applies`) and
    ``monitors:`` is absent (every built-in runs) or names it. Only then are windows folded for it."""
    if not applies(model_config):
        return False
    return model_config.runs_builtin(MONITOR_NAME)


# --------------------------------------------------------------------------------------------
# Fit on the reference
# --------------------------------------------------------------------------------------------


def fit_estimator(frame: pd.DataFrame, model_config: ModelConfig, profile: ModelProfile) -> dict[str, Any] | None:
    """The estimator for the model, JSON-ready, with the reference's own estimates; None when the
    model cannot have one (see :func:`applies`) or the reference has no labelled rows."""
    if not applies(model_config) or frame.empty:
        return None
    frame = frame.reset_index(drop=True)
    features = [f for f, _ in model_config.features.items() if f in profile.features and f in frame.columns]
    vocabularies = {f: segment_vocabulary(profile.features[f]) for f in features}
    base = {"version": ESTIMATOR_VERSION, "task": model_config.task, "segment_features": vocabularies}
    if model_config.task == "classification":
        fitted = _fit_classifier(frame, model_config)
        if fitted is None:
            return None
        estimator = {**base, **fitted}
    else:
        fitted = _fit_regressor(frame, model_config, profile, features)
        if fitted is None:
            return None
        estimator = {**base, **fitted}
    reference_profile = ModelProfile(len(frame), dict(profile.features), ReferenceState(estimator=estimator))
    state = window_state(frame, model_config, reference_profile)
    if state is not None:
        calibration = _calibration(estimator)
        estimator["reference"] = _estimates_json(_estimates(estimator, state.overall, calibration=calibration))
        estimator["reference_segments"] = {
            feature: {
                name: {
                    "rows": _rows_in(model_config, value),
                    **_estimates_json(_estimates(estimator, value, segment=True, calibration=calibration)),
                }
                for name, value in segments.items()
            }
            for feature, segments in state.segments.items()
        }
    return estimator


def _fit_classifier(frame: pd.DataFrame, model_config: ModelConfig) -> dict[str, Any] | None:
    score = numeric_values(_column(frame, model_config.score_column))
    positive = _indicator(_column(frame, model_config.label_field), model_config.performance.positive_label)
    predicted = _indicator(_column(frame, model_config.prediction_column), model_config.performance.positive_label)
    labelled = np.isfinite(score) & np.isfinite(positive)
    if labelled.sum() < 2:
        return None
    calibrator = fit_isotonic(score, positive)
    return {
        "method": "isotonic calibration (confidence-based estimation)",
        "calibrator": calibrator.to_json(),
        "calibration": calibration_quality(score, positive, predicted),
        # More than two classes: the realised accuracy counts every class, the score speaks of one.
        "label_classes": int(_column(frame, model_config.label_field).dropna().astype(str).nunique()),
    }


def calibration_quality(score: np.ndarray, positive: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """How well the calibration predicts performance on reference rows it was not fitted on.

    The labelled rows are split in two halves in their order (the reference is read in time order);
    the calibrator is fitted on each half and judged on the other: expected calibration error (ten
    equal-width bins) of the raw and of the calibrated scores, and the gap between the estimated and
    the realised accuracy and ROC AUC. ``poor`` when a gap exceeds ``max(POOR_CALIBRATION_GAP, 3 SE)``
    or the calibrated error exceeds ``POOR_CALIBRATION_ECE``; ``reason`` says which.
    """
    keep = np.flatnonzero(np.isfinite(score) & np.isfinite(positive) & np.isfinite(predicted))
    out: dict[str, Any] = {"held_out_rows": int(keep.size)}
    if keep.size < 200:
        return {**out, "poor": None, "reason": "fewer than 200 labelled reference rows: calibration not checked"}
    halves = (keep[: keep.size // 2], keep[keep.size // 2 :])
    raw_ece, calibrated_ece, gaps = [], [], {"accuracy": [], "roc_auc": []}
    problems: list[str] = []
    for fit_on, check_on in (halves, halves[::-1]):
        calibrator = fit_isotonic(score[fit_on], positive[fit_on])
        y, s = positive[check_on] > 0.5, score[check_on]
        probability = calibrator.calibrate(s)
        raw_ece.append(_ece(y, s))
        calibrated_ece.append(_ece(y, probability))
        counts = plateau_counts(calibrator.plateau(s), predicted[check_on], calibrator.plateaus)
        estimates = estimate_classification(calibrator.levels, counts)
        realised = {
            "accuracy": float(np.mean(y == (predicted[check_on] > 0.5))),
            "roc_auc": _auc(y, s),
        }
        for metric in gaps:
            estimate = estimates[metric]
            gap = estimate.value - realised[metric]
            gaps[metric].append(gap)
            if math.isfinite(gap) and abs(gap) > max(POOR_CALIBRATION_GAP, 3 * estimate.standard_error):
                problems.append(f"held-out {metric} estimated {estimate.value:.3f}, realised {realised[metric]:.3f}")
    out |= {
        "raw_ece": _rounded(float(np.nanmean(raw_ece))),
        "calibrated_ece": _rounded(float(np.nanmean(calibrated_ece))),
        "held_out_gap": {m: _rounded(float(np.nanmean(np.abs(v)))) for m, v in gaps.items()},
    }
    if np.nanmean(calibrated_ece) > POOR_CALIBRATION_ECE:
        problems.append(f"held-out calibration error {np.nanmean(calibrated_ece):.3f} > {POOR_CALIBRATION_ECE}")
    out["poor"] = bool(problems)
    if problems:
        out["reason"] = "; ".join(problems)
    return out


def _ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    keep = np.isfinite(p)
    y, p = y[keep].astype(float), p[keep]
    if p.size == 0 or not np.all((p >= 0) & (p <= 1)):
        return math.nan
    index = np.searchsorted(np.linspace(0, 1, bins + 1)[1:-1], p)
    gaps = np.abs(np.bincount(index, weights=y, minlength=bins) - np.bincount(index, weights=p, minlength=bins))
    return float(gaps.sum() / p.size)


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney ROC AUC with average ranks for ties (scikit-learn's value)."""
    positives = int(y.sum())
    negatives = int(y.size - positives)
    if positives == 0 or negatives == 0:
        return math.nan
    ranks = sps.rankdata(s)
    return float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _fit_regressor(
    frame: pd.DataFrame, model_config: ModelConfig, profile: ModelProfile, features: list[str]
) -> dict[str, Any] | None:
    truth = numeric_values(_column(frame, model_config.label_field))
    prediction = numeric_values(_column(frame, model_config.prediction_column))
    error = truth - prediction
    if np.isfinite(error).sum() < 2:
        return None
    inputs = _loss_inputs(model_config, profile, features)
    codes, levels = _loss_codes(frame, profile, inputs, model_config.prediction_column)
    finite = error[np.isfinite(error)]
    mse = float(np.mean(finite**2))
    return {
        "method": "additive loss model (direct loss estimation)",
        "loss_inputs": [name for name, _ in inputs],
        "interactions": model_config.prediction_column,
        "absolute_loss": fit_additive_loss(codes, levels, np.abs(error)).to_json(),
        "squared_loss": fit_additive_loss(codes, levels, error**2).to_json(),
        # E[e^4] / E[e^2]^2 on the reference: the spread of the squared errors for the RMSE band.
        "kurtosis": float(np.mean(finite**4) / mse**2) if mse > 0 else 3.0,
    }


def _loss_codes(
    frame: pd.DataFrame,
    profile: ModelProfile,
    inputs: list[tuple[str, list[str]]],
    interactions: str | None,
    segments: BlockSegments | None = None,
) -> tuple[list[np.ndarray], list[int]]:
    """The loss model's one-hot blocks: each input's segment and, with ``interactions`` (the prediction
    column), each feature's segment crossed with the prediction's — the error's scale changes with the
    predicted value differently per segment (docs/estimation.md: on NannyML's car-price data the
    estimate is then within 1.4% of the realised MAE, DLE's 1.2%). ``segments``: the block's segment
    codes when another fold computed them; an input the block lacks is all ``__missing__``."""
    segments = segments or BlockSegments(frame, profile)

    def input_codes(name: str) -> np.ndarray:
        coded = segments.codes(name)
        return coded[0] if coded is not None else segment_codes(_column(frame, name), profile.features[name])[0]

    codes = [input_codes(name) for name, _ in inputs]
    levels = [len(vocabulary) for _, vocabulary in inputs]
    names = [name for name, _ in inputs]
    if interactions is None or interactions not in names:
        return codes, levels
    # The prediction crossed with each feature first, then the features' pairs, while the model stays
    # under MAX_LOSS_LEVELS coefficients (its normal equations are a dense square of that size).
    at = names.index(interactions)
    pairs = [(i, at) for i in range(len(names)) if i != at]
    pairs += [(i, j) for i in range(len(names)) for j in range(i + 1, len(names)) if at not in (i, j)]
    for i, j in pairs:
        if sum(levels) + levels[i] * levels[j] > MAX_LOSS_LEVELS:
            continue
        codes.append(codes[i] * levels[j] + codes[j])
        levels.append(levels[i] * levels[j])
    return codes, levels


def _loss_inputs(model_config: ModelConfig, profile: ModelProfile, features: list[str]) -> list[tuple[str, list[str]]]:
    """The loss model's inputs: each feature's segments, and the prediction's reference bins."""
    names = [*features]
    if model_config.prediction_column in profile.features and model_config.prediction_column not in names:
        names.append(model_config.prediction_column)
    return [(name, segment_vocabulary(profile.features[name])) for name in names]


# --------------------------------------------------------------------------------------------
# Fold a window
# --------------------------------------------------------------------------------------------


def window_state(
    frame: pd.DataFrame,
    model_config: ModelConfig,
    reference: ModelProfile | None,
    segments: BlockSegments | None = None,
) -> EstimationState | None:
    """The window's (or one block's) estimation state; None without a fitted estimator. ``segments``:
    the block's segment codes when another fold of the same block computed them."""
    estimator = reference.fitted.estimator if reference is not None else None
    if not estimator or estimator.get("task") != model_config.task or reference is None:
        return None
    frame = frame.reset_index(drop=True)
    segment_features = {f: v for f, v in (estimator.get("segment_features") or {}).items() if f in reference.features}
    if model_config.task == "classification":
        calibrator = Calibrator.from_json(estimator["calibrator"])
        plateau = calibrator.plateau(numeric_values(_column(frame, model_config.score_column)))
        predicted = _indicator(_column(frame, model_config.prediction_column), model_config.performance.positive_label)

        group_of_bin, group_levels = segment_groups(calibrator)
        group = np.where(plateau >= 0, group_of_bin[np.maximum(plateau, 0)], -1)

        def cell(positions: np.ndarray | None) -> np.ndarray:
            # Segments count coarser score groups: 20 x 2 counts per segment instead of 200 x 2.
            return plateau_counts(group[positions], predicted[positions], group_levels.size)

        def cells(codes: np.ndarray, size: int) -> np.ndarray:
            # Every segment's cell at once: one bincount over (segment, predicted class, score group).
            return plateau_counts(
                np.where(group >= 0, codes * group_levels.size + group, -1), predicted, size * group_levels.size
            ).reshape(2, size, group_levels.size).transpose(1, 0, 2)

        overall = plateau_counts(plateau, predicted, calibrator.plateaus)
        skipped = len(frame) - int(overall.sum())
        design = None
    else:
        inputs = [
            (n, segment_vocabulary(reference.features[n])) for n in estimator["loss_inputs"] if n in reference.features
        ]
        segments = segments or BlockSegments(frame, reference)
        codes, levels = _loss_codes(frame, reference, inputs, estimator.get("interactions"), segments)
        # Without the replicates: they are read once per window's estimate, not once per folded block.
        absolute_loss = AdditiveLoss.from_json(estimator["absolute_loss"], replicates=False)
        squared_loss = AdditiveLoss.from_json(estimator["squared_loss"], replicates=False)
        absolute = absolute_loss.predict(codes) if codes else np.zeros(len(frame))
        squared = squared_loss.predict(codes) if codes else np.zeros(len(frame))
        usable = np.isfinite(numeric_values(_column(frame, model_config.prediction_column)))
        # The window's rows per loss-model level: the loss model's own error of the window's mean (overall).
        design = design_counts(codes, levels, usable)

        def cell(positions: np.ndarray | slice) -> np.ndarray:
            keep, a, q = usable[positions], absolute[positions], squared[positions]
            return np.asarray([float(keep.sum()), float(a[keep].sum()), float(q[keep].sum())])

        cells = None  # the float sums stay per segment (a bincount would add in another order)
        overall = cell(slice(None))
        skipped = len(frame) - int(overall[0])
    per_feature: dict[str, dict[str, np.ndarray]] = {}
    if model_config.performance.segments:
        segments = segments or BlockSegments(frame, reference)
        for feature in segment_features:
            coded = segments.codes(feature)
            if coded is None:
                continue
            codes, vocabulary = coded
            per_feature[feature] = _segment_cells(codes, vocabulary, cell, cells)
    return EstimationState(model_config.task, overall, per_feature, skipped, design)


def _segment_cells(
    codes: np.ndarray,
    vocabulary: list[str],
    cell: Callable[[np.ndarray], np.ndarray],
    cells: Callable[[np.ndarray, int], np.ndarray] | None,
) -> dict[str, np.ndarray]:
    """Each segment's cell by name, in order of the segments' first rows: from ``cells`` (all segments
    in one pass) when given, else ``cell`` per segment's positions."""
    size = len(vocabulary)
    rows = np.bincount(codes, minlength=size)
    present = np.flatnonzero(rows)
    present = present[np.argsort([int(np.argmax(codes == code)) for code in present], kind="stable")]
    if cells is not None:
        table = cells(codes, size)
        return {str(vocabulary[c]): table[c] for c in present}
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(rows)])
    return {str(vocabulary[c]): cell(order[bounds[c] : bounds[c + 1]]) for c in present}


# --------------------------------------------------------------------------------------------
# Evaluate
# --------------------------------------------------------------------------------------------


#: Per segment the calibrated score bins are pooled into this many groups of ~equal reference rows.
SEGMENT_SCORE_GROUPS = 20


def segment_groups(calibrator: Calibrator) -> tuple[np.ndarray, np.ndarray]:
    """The group of each score bin (``SEGMENT_SCORE_GROUPS`` of ~equal reference rows, in score order)
    and each group's probability (its bins' reference-row-weighted mean)."""
    rows = calibrator.rows.astype(np.float64)
    if rows.size == 0 or rows.sum() <= 0:
        return np.zeros(rows.size, np.int64), calibrator.levels.copy()
    before = (np.cumsum(rows) - rows) / rows.sum()
    _, group = np.unique(
        np.minimum((before * SEGMENT_SCORE_GROUPS).astype(np.int64), SEGMENT_SCORE_GROUPS - 1), return_inverse=True
    )
    weights = np.bincount(group, weights=rows)
    levels = np.bincount(group, weights=rows * calibrator.levels) / np.where(weights > 0, weights, 1.0)
    return group.astype(np.int64), levels


@dataclass(frozen=True)
class _Calibration:
    """A classifier's calibration read once per run: levels and how they depend on the reference's
    labels, overall (score bins) and per segment (score groups); the errors are None for an estimator
    stored before they were kept."""

    levels: np.ndarray
    error: LevelError | None
    group_levels: np.ndarray
    group_error: LevelError | None


def _calibration(estimator: dict[str, Any]) -> _Calibration | None:
    if estimator["task"] != "classification":
        return None
    calibrator = Calibrator.from_json(estimator["calibrator"])
    error = calibrator.level_error()
    group, group_levels = segment_groups(calibrator)
    # A group's level is its bins' reference-row-weighted mean (segment_groups).
    group_error = None if error is None else error.grouped(group, calibrator.rows.astype(np.float64))
    return _Calibration(calibrator.levels, error, group_levels, group_error)


def _estimates(
    estimator: dict[str, Any],
    cell: np.ndarray,
    segment: bool = False,
    calibration: _Calibration | None = None,
    design: np.ndarray | None = None,
) -> dict[str, Estimate]:
    """The estimates of one cell; pass ``calibration`` (:func:`_calibration`) when estimating many cells.
    A regressor's ``design`` (the cell's rows per loss-model level) adds the loss model's own error."""
    if estimator["task"] == "classification":
        calibration = calibration or _calibration(estimator)
        assert calibration is not None
        if segment:
            return estimate_classification(calibration.group_levels, cell, calibration.group_error)
        return estimate_classification(calibration.levels, cell, calibration.error)
    rows = float(cell[0])
    model_errors = (math.nan, math.nan)
    if design is not None:
        model_errors = (
            AdditiveLoss.from_json(estimator["absolute_loss"]).model_error(design, rows),
            AdditiveLoss.from_json(estimator["squared_loss"]).model_error(design, rows),
        )
    return estimate_regression(
        rows, float(cell[1]), float(cell[2]), float(estimator.get("kurtosis", 3.0)), *model_errors
    )


def _estimator_error(model_config: ModelConfig, estimate: Estimate, state: EstimationState) -> dict[str, Any]:
    """The estimator's own error from the reference, as a detail: the calibration's (classifiers) or
    the loss model's (regressors: ``model_error``, None for a window folded without its design counts)."""
    if model_config.task == "classification":
        return {"calibration_error": _finite(estimate.calibration_error)}
    known = state.design is not None and estimate.calibration_error > 0
    return {"model_error": _finite(estimate.calibration_error) if known else None}


def _estimates_json(estimates: dict[str, Estimate]) -> dict[str, dict[str, float | None]]:
    return {m: {"value": _finite(e.value), "standard_error": _finite(e.standard_error)} for m, e in estimates.items()}


def _rows_in(model_config: ModelConfig, cell: np.ndarray) -> int:
    return int(cell.sum()) if model_config.task == "classification" else int(cell[0])


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _rounded(value: float) -> float | None:
    return round(value, 6) if math.isfinite(value) else None


def _z(model_config: ModelConfig) -> float:
    return float(sps.norm.ppf(0.5 + model_config.performance.estimation.confidence / 2))


def _band(model_config: ModelConfig, metric: str, estimate: Estimate) -> list[float] | None:
    """The band at ``performance.estimation.confidence``: the window's sampling error and the
    calibration's error from the reference labels, combined (independent draws)."""
    if not (math.isfinite(estimate.value) and math.isfinite(estimate.total_error)):
        return None
    half = _z(model_config) * estimate.total_error
    low, high = estimate.value - half, estimate.value + half
    if metric in CLASSIFICATION_ESTIMATES:
        low, high = max(low, 0.0), min(high, 1.0)
    else:
        low = max(low, 0.0)
    return [low, high]


def _worse_pvalue(metric: str, value: float, se: float, reference: float, reference_se: float) -> float:
    """One-sided p-value that the estimate is worse than the reference's only by sampling noise."""
    difference = (reference - value) if metric in LOWER_IS_BETTER else (value - reference)
    return one_sided_pvalue(difference, se * se + reference_se * reference_se)


def _verdict(
    model_config: ModelConfig, realised_name: str, value: float, reference: float
) -> tuple[Status, float, float]:
    """Status by the realised metric's tolerances, with the alert and warning bounds."""
    warning, alert = tolerance_for(model_config, realised_name)
    alert_bound, warning_bound = bound(realised_name, reference, alert), bound(realised_name, reference, warning)
    levels = Threshold(warning_bound, alert_bound, None, higher_is_worse=lower_is_better(realised_name), strict=True)
    status = levels.judge(value)
    return status, alert_bound, warning_bound


def _alpha(model_config: ModelConfig) -> float:
    return float(getattr(model_config.performance, "alpha", ALPHA))


def _result(
    model_config: ModelConfig,
    window: Window,
    metric: str,
    feature: str | None,
    value: float | None,
    threshold: float | None,
    status: Status,
    details: dict[str, Any],
    resolution: str,
) -> Result:
    return Result(
        model=model_config.name,
        window_start=window.start,
        window_end=window.end,
        kind=Kind.PERFORMANCE,
        metric=metric,
        feature=feature,
        value=value,
        threshold=threshold,
        status=status,
        details=details,
        resolution=resolution,
    )


def estimate_results(
    model_config: ModelConfig,
    window: Window,
    reference: ModelProfile | None,
    current: ModelProfile,
    resolution: str = "hour",
) -> list[Result]:
    """The ``estimated_*`` results of one window (or a merged day/week) from its estimation state.

    No results for a model that cannot have estimates (:func:`applies`); every result ``unknown``
    (with the reason) without a fitted estimator, or below ``performance.estimation.min_rows`` scored rows.
    """
    if not applies(model_config):
        return []
    metrics = CLASSIFICATION_ESTIMATES if model_config.task == "classification" else REGRESSION_ESTIMATES
    estimator = (reference.fitted.estimator if reference is not None else None) or None
    state = current.states.get(ESTIMATION)
    config = model_config.performance.estimation
    base: dict[str, Any] = {"estimate": True, "confidence": config.confidence}
    reason = None
    if estimator is None:
        reason = "the reference has no fitted estimator (no labelled rows with a score and prediction)"
    elif state is None:
        reason = "the window has no estimation state"
    rows = _rows_in(model_config, state.overall) if state is not None else 0
    if reason is None and rows < config.min_rows:
        reason = (
            f"{rows} rows with a score and prediction, fewer than performance.estimation.min_rows={config.min_rows}"
        )
    if reason is not None:
        return [
            _result(
                model_config,
                window,
                estimated(m),
                None,
                None,
                None,
                Status.UNKNOWN,
                {**base, "reason": reason, "rows": rows},
                resolution,
            )
            for m in metrics
        ]
    assert estimator is not None and state is not None
    calibration = estimator.get("calibration")
    base |= {"method": estimator.get("method"), "rows": rows, "skipped_rows": state.skipped}
    if calibration is not None:
        base["calibration"] = {
            k: calibration.get(k) for k in ("poor", "reason", "calibrated_ece", "held_out_gap") if k in calibration
        }
    realised_performance = reference.fitted.performance if reference is not None else None
    realised_reference = realised_performance.metrics if realised_performance is not None else {}
    reference_estimates = estimator.get("reference") or {}
    calibration = _calibration(estimator)
    estimates = _estimates(estimator, state.overall, calibration=calibration, design=state.design)
    alpha = _alpha(model_config)
    results = []
    for metric in metrics:
        estimate = estimates[metric]
        ref = reference_estimates.get(metric) or {}
        ref_value, ref_se = ref.get("value"), float(ref.get("standard_error") or 0.0)
        details = {
            **base,
            "band": _band(model_config, metric, estimate),
            "standard_error": _finite(estimate.standard_error),
            **_estimator_error(model_config, estimate, state),
            "reference_value": ref_value,
            "reference_realised": _finite(realised_reference.get(metric)),
            "direction": "lower_is_better" if metric in LOWER_IS_BETTER else "higher_is_better",
            "realised": None,
        }
        warning, alert = tolerance_for(model_config, metric)
        details["tolerance"] = {"warning": warning, "alert": alert}
        classes = int(estimator.get("label_classes") or 2)
        multiclass_accuracy = metric == "accuracy" and classes > 2
        if ref_value is None or not math.isfinite(estimate.value) or multiclass_accuracy:
            if multiclass_accuracy:
                details["reason"] = (
                    f"accuracy over {classes} classes cannot be estimated from the positive class's score alone "
                    "(ROC AUC, precision, recall and F1 of the positive class are estimated one-vs-rest)"
                )
                estimate = Estimate(math.nan, math.nan)
                details["band"] = details["standard_error"] = details["calibration_error"] = None
            else:
                details["reason"] = (
                    f"{metric} cannot be estimated on the reference"
                    if ref_value is None
                    else f"{metric} cannot be estimated on the window (e.g. no predicted positives)"
                )
            results.append(
                _result(
                    model_config,
                    window,
                    estimated(metric),
                    None,
                    _finite(estimate.value),
                    None,
                    Status.UNKNOWN,
                    details,
                    resolution,
                )
            )
            continue
        status, alert_bound, warning_bound = _verdict(model_config, metric, estimate.value, ref_value)
        p_value = _worse_pvalue(metric, estimate.value, estimate.standard_error, ref_value, ref_se)
        details |= {
            "warning": warning_bound,
            "level_reached": str(status),
            "degradation": _finite(degradation(metric, ref_value, estimate.value)),
            "p_value": p_value,
            "alpha": alpha,
            "test": "estimate_vs_reference_z",
        }
        results.append(
            _result(
                model_config, window, estimated(metric), None, estimate.value, alert_bound, status, details, resolution
            )
        )
    if model_config.performance.segments:
        features = [f for f in state.segments if f in (estimator.get("reference_segments") or {})]
        for feature in features:
            results.append(
                _segment_result(
                    model_config, window, estimator, state, feature, len(features), resolution, base, calibration
                )
            )
    # The level each bound reached counts only if significant in the window's performance family
    # (Holm across every estimate, alert at alpha / 10): the realised metrics' gate, not one of its own.
    return judge_performance_family(results, model_config)


def _segment_result(
    model_config: ModelConfig,
    window: Window,
    estimator: dict[str, Any],
    state: EstimationState,
    feature: str,
    features: int,
    resolution: str,
    base: dict[str, Any],
    calibration: _Calibration | None = None,
) -> Result:
    """The most degraded segment of one feature by its estimated primary metric. Its p-value is
    Bonferroni-adjusted over the segments compared and the features (``p_value_bonferroni``), as for
    the realised segments, before the window's performance family judges it."""
    metric = "roc_auc" if model_config.task == "classification" else "mae"
    name = estimated(f"segment_{metric}")
    minimum = min_segment_labels(model_config)
    reference_segments = estimator["reference_segments"][feature]
    compared = []
    for segment, cell in state.segments[feature].items():
        rows = _rows_in(model_config, cell)
        ref = reference_segments.get(segment) or {}
        ref_metric = ref.get(metric) or {}
        if rows < minimum or int(ref.get("rows") or 0) < minimum or ref_metric.get("value") is None:
            continue
        estimate = _estimates(estimator, cell, segment=True, calibration=calibration)[metric]
        if not math.isfinite(estimate.value):
            continue
        p_value = _worse_pvalue(
            metric,
            estimate.value,
            estimate.standard_error,
            ref_metric["value"],
            float(ref_metric.get("standard_error") or 0.0),
        )
        compared.append(
            (
                degradation(metric, ref_metric["value"], estimate.value),
                p_value,
                segment,
                rows,
                estimate,
                ref_metric["value"],
            )
        )
    details: dict[str, Any] = {**base, "min_segment_rows": minimum}
    details.pop("rows", None)
    if not compared:
        details["reason"] = f"no segment of {feature!r} has {minimum} scored rows in both the window and the reference"
        return _result(model_config, window, name, feature, None, None, Status.UNKNOWN, details, resolution)
    compared.sort(key=lambda c: (-c[0], c[1]))
    worst_degradation, p_value, segment, rows, estimate, ref_value = compared[0]
    status, alert_bound, warning_bound = _verdict(model_config, f"segment_{metric}", estimate.value, ref_value)
    p_bonferroni = min(1.0, p_value * len(compared) * max(features, 1))
    details |= {
        "level_reached": str(status),
        "degradation": _finite(worst_degradation),
        "segment": segment,
        "rows": rows,
        "band": _band(model_config, metric, estimate),
        "standard_error": _finite(estimate.standard_error),
        "calibration_error": _finite(estimate.calibration_error),
        "reference_value": ref_value,
        "warning": warning_bound,
        "p_value": p_value,
        "p_value_bonferroni": p_bonferroni,
        "alpha": _alpha(model_config),
        "segments_compared": len(compared),
        "segments": [
            {
                "segment": c[2],
                "rows": c[3],
                "value": _finite(c[4].value),
                "band": _band(model_config, metric, c[4]),
                "reference_value": c[5],
            }
            for c in compared[:12]
        ],
    }
    return _result(model_config, window, name, feature, estimate.value, alert_bound, status, details, resolution)


def estimation_monitor(context: WindowContext) -> list[Result]:
    """The ``performance_estimation`` monitor: works from the window's profile alone (``reads_rows = False``)."""
    return estimate_results(context.model, context.window, context.reference, context.current)


# --------------------------------------------------------------------------------------------
# Beside the realised metric; what reacts
# --------------------------------------------------------------------------------------------


def attach_realised(results: list[Result]) -> list[Result]:
    """Each ``estimated_<m>`` result with the window's realised ``<m>`` beside it, when the labels
    have given one. Overall: ``details.realised``, ``realised_status``, ``labelled_rows`` and
    ``within_band``. Per feature (``estimated_segment_<m>``): the realised value of the *same*
    segment (from the realised ``segment_<m>`` result's ``segment_values``) beside the headline
    segment and beside every listed segment, each with ``within_band``; ``realised_worst_segment``
    names the segment the realised metric judged worst. A segment without enough labels gets no
    realised value. Results are returned in the same order (new objects where changed)."""
    realised = {
        (r.kind, r.metric, r.feature, r.window_start, r.resolution): r
        for r in results
        if not is_estimate(r) and r.value is not None
    }
    out = []
    for r in results:
        match = (
            realised.get((r.kind, r.metric.removeprefix(PREFIX), r.feature, r.window_start, r.resolution))
            if is_estimate(r)
            else None
        )
        if match is not None and r.feature is None and math.isfinite(float(match.value)):
            value = float(match.value)
            details = {
                **r.details,
                "realised": value,
                "realised_status": str(match.status),
                "labelled_rows": match.details.get("labelled_rows"),
                "within_band": _within(r.details.get("band"), value),
            }
            r = replace(r, details=details)
        elif match is not None and r.feature is not None and match.details.get("segment_values"):
            r = replace(r, details=_segments_beside(r.details, match))
        out.append(r)
    return out


def _within(band: list[float] | None, value: float | None) -> bool | None:
    if not band or value is None or not math.isfinite(value):
        return None
    return bool(band[0] <= value <= band[1])


def _segments_beside(details: dict[str, Any], match: Result) -> dict[str, Any]:
    """The estimated segments' details with the realised value of each same segment beside it."""
    values: dict[str, dict[str, Any]] = match.details["segment_values"]

    def beside(entry: dict[str, Any]) -> dict[str, Any]:
        truth = values.get(str(entry.get("segment"))) or {}
        value = _finite(truth.get("value"))
        return {
            **entry,
            "realised": value,
            "labelled_rows": truth.get("labelled_rows"),
            "within_band": _within(entry.get("band"), value),
        }

    headline = beside({"segment": details.get("segment"), "band": details.get("band")})
    return {
        **details,
        "realised": headline["realised"],
        "labelled_rows": headline["labelled_rows"],
        "within_band": headline["within_band"],
        "realised_status": str(match.status),
        "realised_worst_segment": match.details.get("segment"),
        "segments": [beside(entry) for entry in details.get("segments") or []],
    }


def reacting(model_config: ModelConfig, results: list[Result]) -> list[Result]:
    """The results that may trigger events, notifications and automations: all but the estimates not
    named in ``performance.estimation.react`` (``null``: every estimate reacts)."""
    chosen = model_config.performance.estimation.react
    if chosen is None:
        return results
    allowed = {estimated(m) for m in chosen} | {estimated(f"segment_{m}") for m in chosen}
    return [r for r in results if not is_estimate(r) or r.metric in allowed]


estimate_results_task = task(estimate_results, name="estimate-performance", **NO_RETRIES)
