"""Mergeable performance statistics against scikit-learn / scipy on the raw rows."""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as skm

from driftline.stats.performance import AUC_GRID, STORED_AUC_GRID, PerformanceState, ScoreCounts
from driftline.tasks.performance import calibration_pvalue, compute_metrics, expected_calibration_error


def _blocks(n: int, parts: int) -> list[slice]:
    edges = np.linspace(0, n, parts + 1).astype(int)
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _folded(task, truth, pred, score=None, positive=1, parts=7) -> PerformanceState:
    states = [
        PerformanceState.fold(task, truth[b], pred[b], None if score is None else score[b], positive)
        for b in _blocks(len(truth), parts)
    ]
    return reduce(lambda a, b: a.merge(b), states)


def _classifier_rows(n=4000, seed=3):
    rng = np.random.default_rng(seed)
    score = rng.beta(2, 3, n)
    label = (rng.random(n) < score).astype(float)
    pred = (score > 0.45).astype(float)
    label[rng.random(n) < 0.1] = np.nan  # unlabelled rows
    pred[rng.random(n) < 0.02] = np.nan
    score[rng.random(n) < 0.02] = np.nan
    return pd.Series(label), pd.Series(pred), pd.Series(score)


def test_classification_metrics_equal_sklearn_in_any_blocks():
    truth, pred, score = _classifier_rows()
    state = _folded("classification", truth, pred, score)
    got = state.metrics()
    keep = truth.notna() & pred.notna()
    t, p = truth[keep], pred[keep]
    scored = truth.notna() & score.notna()
    y, s = truth[scored].to_numpy(), score[scored].to_numpy()
    expected = {
        "accuracy": skm.accuracy_score(t, p),
        "precision": skm.precision_score(t, p),
        "recall": skm.recall_score(t, p),
        "f1": skm.f1_score(t, p),
        "roc_auc": skm.roc_auc_score(y, s),
        "log_loss": skm.log_loss(y, s),
        "brier_score": skm.brier_score_loss(y, s),
        "calibration_error": expected_calibration_error(y, s),
    }
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
    # The same as the frame path's metrics on the whole rows.
    frame_metrics = compute_metrics("classification", truth, pred, score)
    assert got == pytest.approx(frame_metrics, rel=1e-12, abs=1e-12)
    assert state.calibration_pvalue() == pytest.approx(calibration_pvalue(y, s), rel=1e-9)
    assert state.rows == 4000 and state.labelled == int(truth.notna().sum())


def test_sampling_standard_deviations_equal_numpy():
    truth, pred, score = _classifier_rows(seed=5)
    sampling = _folded("classification", truth, pred, score).sampling()
    scored = truth.notna() & score.notna()
    y, s = truth[scored].to_numpy(), score[scored].to_numpy()
    eps = np.finfo(np.float64).eps
    c = np.clip(s, eps, 1 - eps)
    assert sampling["log_loss_std"] == pytest.approx(np.std(-(y * np.log(c) + (1 - y) * np.log1p(-c)), ddof=1))
    assert sampling["brier_score_std"] == pytest.approx(np.std((y - s) ** 2, ddof=1))
    assert sampling["positives"] == int(y.sum()) and sampling["negatives"] == int(y.size - y.sum())
    keep = truth.notna() & pred.notna()
    assert sampling["n"] == int(keep.sum())
    assert sampling["predicted_positives"] == int((pred[keep] == 1).sum())


def test_text_labels_and_undefined_metrics():
    truth = pd.Series(["yes", "no", "no", None, "no"])
    pred = pd.Series(["no", "no", "no", "yes", "no"])
    got = _folded("classification", truth, pred, positive="yes", parts=2).metrics()
    assert got["accuracy"] == pytest.approx(0.75)
    assert math.isnan(got["precision"])  # no predicted positives among the compared rows
    assert got["recall"] == 0.0 and got["f1"] == 0.0
    assert got == pytest.approx(compute_metrics("classification", truth, pred, positive_label="yes"), nan_ok=True)


def test_scores_outside_unit_interval_leave_auc_but_not_probability_metrics():
    truth = pd.Series([0, 1, 0, 1, 1, 0], dtype=float)
    score = pd.Series([-2.0, 3.0, 0.1, 0.9, 0.8, 0.7])
    got = _folded("classification", truth, truth, score, parts=3).metrics()
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(truth, score))
    assert all(math.isnan(got[m]) for m in ("log_loss", "brier_score", "calibration_error"))


def test_one_class_and_empty_windows_are_nan():
    one = pd.Series([1.0, 1.0, 1.0])
    assert math.isnan(_folded("classification", one, one, pd.Series([0.2, 0.5, 0.9]), parts=2).metrics()["roc_auc"])
    empty = pd.Series([], dtype=float)
    metrics = PerformanceState.fold("classification", empty, empty, empty).metrics()
    assert all(math.isnan(v) for v in metrics.values())
    assert all(math.isnan(v) for v in PerformanceState.fold("regression", empty, empty, None).metrics().values())


def test_regression_metrics_equal_sklearn():
    rng = np.random.default_rng(11)
    t = rng.normal(1e4, 50, 3000)  # a large mean: the moments must not cancel catastrophically
    p = t + rng.normal(0, 5, 3000)
    t[rng.random(3000) < 0.05] = np.nan
    truth, pred = pd.Series(t), pd.Series(p)
    state = _folded("regression", truth, pred)
    keep = np.isfinite(t)
    expected = {
        "mae": skm.mean_absolute_error(t[keep], p[keep]),
        "rmse": skm.root_mean_squared_error(t[keep], p[keep]),
        "mape": skm.mean_absolute_percentage_error(t[keep], p[keep]),
        "r2": skm.r2_score(t[keep], p[keep]),
    }
    assert state.metrics() == pytest.approx(expected, rel=1e-9)
    errors = np.abs(t[keep] - p[keep])
    sampling = state.sampling()
    assert sampling["mae_std"] == pytest.approx(np.std(errors, ddof=1), rel=1e-9)
    assert sampling["mse_std"] == pytest.approx(np.std(errors**2, ddof=1), rel=1e-9)
    assert sampling["n"] == int(keep.sum())


def test_constant_label_r2_follows_sklearn():
    truth = pd.Series([2.0, 2.0, 2.0, 2.0])
    assert _folded("regression", truth, truth, parts=2).metrics()["r2"] == skm.r2_score(truth, truth) == 1.0
    off = pd.Series([2.0, 3.0, 2.0, 2.0])
    assert _folded("regression", truth, off, parts=2).metrics()["r2"] == skm.r2_score(truth, off) == 0.0


def test_hosmer_lemeshow_equals_chi_square_of_the_bins():
    rng = np.random.default_rng(2)
    s = rng.uniform(0, 1, 5000)
    y = (rng.random(5000) < s).astype(float)
    state = PerformanceState.fold("classification", pd.Series(y), pd.Series(y), pd.Series(s))
    bins = np.searchsorted(np.linspace(0, 1, 11)[1:-1], s)
    statistic = sum(
        (y[bins == b].sum() - s[bins == b].sum()) ** 2 / (s[bins == b] * (1 - s[bins == b])).sum() for b in range(10)
    )
    assert state.calibration_pvalue() == pytest.approx(stats.chi2.sf(statistic, 10), rel=1e-9)


@pytest.mark.slow
def test_auc_on_the_grid_beyond_the_distinct_cap_is_within_its_bound():
    """1M continuous scores exceed the exact cap: the gridded AUC against sklearn's exact one."""
    rng = np.random.default_rng(7)
    n = 1_000_000
    s = rng.beta(2, 2, n)
    y = (rng.random(n) < s).astype(np.int64)
    counts = reduce(lambda a, b: a.merge(b), [ScoreCounts.of(y[b], s[b]) for b in _blocks(n, 20)])
    assert counts.gridded and counts.scores.size <= AUC_GRID
    exact = skm.roc_auc_score(y, s)
    # Bound: half the share of positive-negative pairs in one bin.
    bins = np.minimum(np.floor(s * AUC_GRID), AUC_GRID - 1).astype(np.int64)
    pos = np.bincount(bins, weights=y, minlength=AUC_GRID)
    neg = np.bincount(bins, weights=1 - y, minlength=AUC_GRID)
    bound = 0.5 * float((pos * neg).sum()) / (pos.sum() * neg.sum())
    error = abs(counts.roc_auc() - exact)
    assert error <= bound + 1e-12
    assert error < 1e-5


def test_merge_refuses_other_tasks():
    a = PerformanceState("classification")
    with pytest.raises(ValueError):
        a.merge(PerformanceState("regression"))


def test_stored_state_keeps_everything_and_auc_on_coarser_bins():
    truth, pred, score = _classifier_rows(seed=9)
    state = _folded("classification", truth, pred, score)
    stored = PerformanceState.from_json(state.to_json())
    assert stored.score_counts.grid == STORED_AUC_GRID and stored.score_counts.gridded
    got, exact = stored.metrics(), state.metrics()
    assert got.pop("roc_auc") == pytest.approx(exact.pop("roc_auc"), abs=1e-4)
    assert got == pytest.approx(exact, rel=1e-12)
    assert stored.sampling() == pytest.approx(state.sampling())
    # Few distinct scores stay exact when stored, and stored states merge (hours into a day).
    rounded = score.round(2)
    small = _folded("classification", truth, pred, rounded)
    day = PerformanceState.from_json(small.to_json()).merge(PerformanceState.from_json(small.to_json()))
    assert not day.score_counts.gridded
    assert day.metrics()["roc_auc"] == pytest.approx(small.metrics()["roc_auc"], rel=1e-12)


def _state_fields(state: PerformanceState) -> dict[str, object]:
    return {
        "counts": (state.rows, state.labelled, state.compared, state.correct, state.out_of_unit, state.scored),
        "scores": state.score_counts.scores.tolist(),
        "positives": state.score_counts.positives.tolist(),
        "negatives": state.score_counts.negatives.tolist(),
        "grid": (state.score_counts.grid, state.score_counts.gridded),
        "absolute_error": state.absolute_error,
    }


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_segment_states_at_once_equal_one_segment_at_a_time(task: str) -> None:
    """The vectorised fold of every segment (#15) gives each segment the state its own rows give:
    unlabelled rows, NaN and out-of-[0, 1] scores, a segment without scored rows, one beyond the
    exact-score cap (gridded), and codes of the vocabulary no row takes."""
    from driftline.stats.performance import SEGMENT_AUC_GRID, RowFacts

    rng = np.random.default_rng(7)
    n = 30_000
    codes = rng.choice(6, size=n, p=[0.5, 0.2, 0.15, 0.1, 0.05, 0.0])
    score = rng.uniform(0, 1, n)
    score[codes == 0] = rng.beta(2, 2, int((codes == 0).sum()))  # ~15,000 distinct: beyond the segment cap
    score[rng.uniform(size=n) < 0.02] = np.nan
    score[rng.uniform(size=n) < 0.01] = 1.5
    score[rng.uniform(size=n) < 0.01] = -0.25
    truth = pd.Series((rng.uniform(size=n) < 0.4).astype(float))
    truth[rng.uniform(size=n) < 0.1] = np.nan
    truth[codes == 3] = np.nan  # a segment with rows but no labels, so no scored rows
    pred = pd.Series(np.where(task == "regression", rng.normal(size=n), (rng.uniform(size=n) < 0.5).astype(float)))
    facts = RowFacts.of(task, truth, pred, pd.Series(score) if task == "classification" else None)
    states = PerformanceState.segment_states(facts, codes, 7)
    assert list(states) == list(pd.unique(codes))  # in order of first appearance
    for code, state in states.items():
        alone = PerformanceState.of_rows(facts, np.flatnonzero(codes == code), segment=True)
        assert _state_fields(state) == _state_fields(alone)
    if task == "classification":
        assert states[0].score_counts.gridded and states[0].score_counts.grid == SEGMENT_AUC_GRID
        assert states[3].score_counts.scores.size == 0


def test_gridded_merge_equals_sorting_every_score() -> None:
    """Merging gridded score counts by bincount (#15) keeps the arrays of the sorting route, scores
    outside [0, 1] exact around the bin centres."""
    rng = np.random.default_rng(3)
    grid = 64
    parts = []
    for size in (500, 40, 900):
        s = np.concatenate([rng.uniform(0, 1, size), [-2.0, -0.5, 1.0, 0.0, 3.0]])
        y = (rng.uniform(size=s.size) < 0.5).astype(np.int64)
        parts.append(ScoreCounts.of(y, s, grid))
    merged = reduce(ScoreCounts.merge, parts)
    assert merged.gridded
    # The sorting route: every score to its bin centre (scores outside [0, 1] as they are), then unique.
    scores = np.concatenate([p.scores for p in parts])
    unit = (scores >= 0) & (scores <= 1)
    keyed = np.where(unit, (np.minimum(np.floor(scores * grid), grid - 1) + 0.5) / grid, scores)
    values, inverse = np.unique(keyed, return_inverse=True)
    for name in ("positives", "negatives"):
        summed = np.bincount(inverse, weights=np.concatenate([getattr(p, name) for p in parts]))
        assert getattr(merged, name).tolist() == summed.astype(np.int64).tolist()
    assert merged.scores.tolist() == values.tolist()
    one = ScoreCounts.of(np.ones(3000, np.int64), rng.uniform(0, 1, 3000), grid)  # beyond the cap in one block
    assert one.gridded and one.scores.tolist() == np.unique(one.scores).tolist() and one.positives.sum() == 3000
