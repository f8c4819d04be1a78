"""Estimated performance: checked against scikit-learn on raw rows and by simulation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.isotonic import isotonic_regression
from sklearn.linear_model import Ridge

from driftline.stats.estimation import (
    AdditiveLoss,
    Calibrator,
    EstimationState,
    auc_variance,
    design_counts,
    estimate_classification,
    estimate_regression,
    fit_additive_loss,
    fit_isotonic,
    pava,
    plateau_counts,
)


def test_pava_equals_scikit_learn_isotonic_regression() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=300).cumsum() * 0.1 + rng.normal(size=300)
    w = rng.uniform(0.5, 2.0, 300)
    block, means = pava(y, w)
    np.testing.assert_allclose(means[block], isotonic_regression(y, sample_weight=w), rtol=1e-10, atol=1e-12)
    assert np.all(np.diff(means) > 0)


def _calibrated_rows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    score = rng.uniform(size=n)
    return score, (rng.uniform(size=n) < score).astype(float)


def test_isotonic_calibration_is_monotone_and_keeps_plateaus_large_enough() -> None:
    score, label = _calibrated_rows(20_000)
    calibrator = fit_isotonic(score, label)
    assert np.all(np.diff(calibrator.levels) >= 0)
    assert np.all(np.diff(calibrator.starts) > 0)
    assert calibrator.rows.min() >= 50 and calibrator.plateaus == 200  # score bins of >= MIN_BIN_ROWS rows
    assert calibrator.rows.sum() == 20_000
    plateaus = fit_isotonic(score, label, interpolate=False)
    assert plateaus.rows.min() >= 100 and plateaus.plateaus < 200  # merged to max(20, 20_000 // 200) rows
    # Calibrated scores: the calibrated probability tracks the true one (here the score itself).
    grid = np.linspace(0.05, 0.95, 19)
    assert np.max(np.abs(calibrator.calibrate(grid) - grid)) < 0.08
    # A miscalibrated score (squared) is mapped back: P(y | s^2 = t) = sqrt(t).
    squared = fit_isotonic(score**2, label)
    assert np.max(np.abs(squared.calibrate(grid**2) - grid)) < 0.08


def test_isotonic_edge_cases() -> None:
    empty = fit_isotonic([np.nan, 0.3], [1.0, np.nan])
    assert empty.plateaus == 0
    one_class = fit_isotonic(np.linspace(0, 1, 50), np.zeros(50))
    assert one_class.plateaus == 1 and one_class.levels[0] == pytest.approx(0.5 / 51)
    assert list(one_class.plateau([np.nan, -5.0, 5.0])) == [-1, 0, 0]


def _weighted_metrics(levels: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """scikit-learn on the expanded rows: every row once positive (weight p), once negative (1 - p)."""
    score, predicted, truth, weight = [], [], [], []
    for cls in (0, 1):
        for k, n in enumerate(counts[cls]):
            for label, w in ((1, levels[k]), (0, 1 - levels[k])):
                score.append(k)
                predicted.append(cls)
                truth.append(label)
                weight.append(w * n)
    kw = {"sample_weight": np.asarray(weight)}
    return {
        "accuracy": skm.accuracy_score(truth, predicted, **kw),
        "precision": skm.precision_score(truth, predicted, **kw),
        "recall": skm.recall_score(truth, predicted, **kw),
        "f1": skm.f1_score(truth, predicted, **kw),
        "roc_auc": skm.roc_auc_score(truth, score, **kw),
    }


def test_estimates_equal_scikit_learn_metrics_with_probability_weights() -> None:
    levels = np.array([0.05, 0.2, 0.35, 0.5, 0.7, 0.9])
    counts = np.array([[40, 30, 25, 10, 5, 1], [2, 5, 10, 20, 30, 45]])
    estimates = estimate_classification(levels, counts)
    expected = _weighted_metrics(levels, counts)
    for metric, value in expected.items():
        assert estimates[metric].value == pytest.approx(value, rel=1e-12), metric


@pytest.mark.slow
def test_standard_errors_match_the_spread_of_simulated_labels() -> None:
    rng = np.random.default_rng(7)
    levels = np.array([0.05, 0.2, 0.4, 0.6, 0.8, 0.95])
    counts = np.array([[300, 200, 150, 60, 20, 5], [10, 30, 60, 150, 200, 300]])
    estimates = estimate_classification(levels, counts)
    p = np.concatenate([np.repeat(levels, counts[0]), np.repeat(levels, counts[1])])
    predicted = np.concatenate([np.zeros(counts[0].sum()), np.ones(counts[1].sum())])
    score = np.concatenate([np.repeat(np.arange(6), counts[0]), np.repeat(np.arange(6), counts[1])])
    draws: dict[str, list[float]] = {m: [] for m in estimates}
    for _ in range(2000):
        y = rng.uniform(size=p.size) < p
        tp = np.sum(y & (predicted == 1))
        draws["accuracy"].append(np.mean(y == (predicted == 1)))
        draws["precision"].append(tp / np.sum(predicted == 1))
        draws["recall"].append(tp / y.sum())
        draws["f1"].append(2 * tp / (np.sum(predicted == 1) + y.sum()))
        draws["roc_auc"].append(skm.roc_auc_score(y, score))
    for metric, values in draws.items():
        mean, spread = float(np.mean(values)), float(np.std(values))
        assert estimates[metric].value == pytest.approx(mean, abs=0.004), metric
        # The delta method (and Hanley-McNeil for ROC AUC) within 15% of the simulated spread.
        assert estimates[metric].standard_error == pytest.approx(spread, rel=0.15), metric


def test_undefined_estimates_are_nan_not_errors() -> None:
    nothing_predicted_positive = estimate_classification([0.2, 0.8], [[10, 10], [0, 0]])
    assert np.isnan(nothing_predicted_positive["precision"].value)
    assert not np.isnan(nothing_predicted_positive["recall"].value)
    empty = estimate_classification([0.2, 0.8], [[0, 0], [0, 0]])
    assert all(np.isnan(e.value) for e in empty.values())
    assert auc_variance(0.8, 0, 10) == 0.0


def test_plateau_counts_leave_out_unscored_rows() -> None:
    counts = plateau_counts(np.array([0, 1, 1, -1, 2]), np.array([1.0, 0.0, 1.0, 1.0, np.nan]), 3)
    assert counts.tolist() == [[0, 1, 0], [1, 1, 0]]


def test_additive_loss_equals_scikit_learn_ridge_on_one_hot_columns() -> None:
    rng = np.random.default_rng(3)
    codes = [rng.integers(0, 4, 500), rng.integers(0, 3, 500)]
    target = 1.0 + np.array([0.0, 0.5, 1.0, 2.0])[codes[0]] + np.array([0.3, 0.0, -0.2])[codes[1]]
    target = target + rng.normal(scale=0.1, size=500)
    fitted = fit_additive_loss(codes, [4, 3], target, ridge=2.0)
    one_hot = np.hstack([np.eye(4)[codes[0]], np.eye(3)[codes[1]]])
    ridge = Ridge(alpha=2.0).fit(one_hot, target)
    np.testing.assert_allclose(fitted.predict(codes), ridge.predict(one_hot), rtol=1e-8, atol=1e-8)
    # A changed mix of the inputs moves the mean loss as the model says.
    assert fitted.predict([np.full(10, 3), np.full(10, 0)]).mean() > fitted.predict(codes).mean() + 0.5


def test_regression_estimates_closed_form() -> None:
    out = estimate_regression(rows=100, absolute_sum=200.0, squared_sum=500.0, kurtosis=3.0)
    assert out["mae"].value == pytest.approx(2.0)
    assert out["mae"].standard_error == pytest.approx(np.sqrt((5.0 - 4.0) / 100))
    assert out["rmse"].value == pytest.approx(np.sqrt(5.0))
    assert out["rmse"].standard_error == pytest.approx(np.sqrt(2.0) * 5.0 / 10 / (2 * np.sqrt(5.0)))
    assert np.isnan(estimate_regression(0, 0.0, 0.0, 3.0)["mae"].value)


def test_estimation_states_merge_by_addition_and_round_trip_json() -> None:
    a = EstimationState(
        "classification", np.array([[1, 2], [3, 4]]), {"region": {"north": np.array([[1, 0], [0, 1]])}}, 1
    )
    b = EstimationState("classification", np.array([[1, 1], [1, 1]]), {"region": {"south": np.array([[0, 1], [1, 0]])}})
    merged = EstimationState.from_json(a.merge(b).to_json())
    assert merged.overall.tolist() == [[2, 3], [4, 5]]
    assert set(merged.segments["region"]) == {"north", "south"} and merged.skipped == 1
    with pytest.raises(ValueError):
        a.merge(EstimationState("classification", np.zeros((2, 3), np.int64)))


def test_calibration_error_is_the_delta_method_in_the_levels() -> None:
    """``sqrt(g' C g)`` with ``g`` the exact gradient: checked against central finite differences."""
    rng = np.random.default_rng(3)
    levels = np.sort(rng.uniform(0.05, 0.95, 8))
    counts = rng.integers(5, 200, (2, 8))
    covariance = np.diag(rng.uniform(1e-4, 1e-3, 8))
    estimates = estimate_classification(levels, counts, covariance)
    for metric, estimate in estimates.items():
        gradient = np.zeros(levels.size)
        for k in range(levels.size):
            up, down = levels.copy(), levels.copy()
            up[k], down[k] = up[k] + 1e-6, down[k] - 1e-6
            gradient[k] = (
                estimate_classification(up, counts)[metric].value - estimate_classification(down, counts)[metric].value
            ) / 2e-6
        assert estimate.calibration_error == pytest.approx(np.sqrt(gradient @ covariance @ gradient), rel=1e-6)
        assert estimate.total_error == pytest.approx(np.hypot(estimate.standard_error, estimate.calibration_error))
    assert all(e.calibration_error == 0.0 for e in estimate_classification(levels, counts).values())


@pytest.mark.slow
def test_calibration_error_matches_the_spread_of_refits_on_simulated_reference_labels() -> None:
    """The reference's labels are redrawn 300 times from known probabilities and the calibration
    refitted; the spread of one window's estimate over the refits is what ``calibration_error`` says."""
    rng = np.random.default_rng(11)
    score = rng.uniform(size=5_000) ** 0.8
    probability = 1 / (1 + np.exp(-6 * (score - 0.55)))  # the raw score is not calibrated
    window = rng.uniform(size=3_000) ** 1.5  # and the window's mix differs from the reference's
    predicted = (window > 0.5).astype(float)
    values: dict[str, list[float]] = {}
    errors: dict[str, list[float]] = {}
    for _ in range(300):
        calibrator = fit_isotonic(score, (rng.uniform(size=score.size) < probability).astype(float))
        counts = plateau_counts(calibrator.plateau(window), predicted, calibrator.plateaus)
        for metric, e in estimate_classification(calibrator.levels, counts, calibrator.level_error()).items():
            values.setdefault(metric, []).append(e.value)
            errors.setdefault(metric, []).append(e.calibration_error)
    for metric in values:
        # Binomial plateaus, interpolated: within 25% of the simulated spread (measured: 7-15% above it).
        assert float(np.mean(errors[metric])) == pytest.approx(float(np.std(values[metric])), rel=0.25), metric


def test_interpolated_levels_are_the_stored_mix_of_plateau_rates() -> None:
    score, label = _calibrated_rows(20_000, seed=4)
    fine, plateaus = fit_isotonic(score, label), fit_isotonic(score, label, interpolate=False)
    rates = plateaus.levels
    upper = np.minimum(fine.step_plateau + 1, rates.size - 1)
    mixed = (1 - fine.step_weight) * rates[fine.step_plateau] + fine.step_weight * rates[upper]
    np.testing.assert_allclose(mixed, fine.levels, atol=1e-12)
    np.testing.assert_allclose(plateaus.plateau_variance, rates * (1 - rates) / (plateaus.rows + 1.0))
    # The sparse form gives what the dense covariance gives, for the bins and for weighted groups of them.
    error, covariance = fine.level_error(), fine.level_covariance()
    gradient = np.random.default_rng(5).normal(size=fine.plateaus)
    assert error.of(gradient) == pytest.approx(gradient @ covariance @ gradient, rel=1e-10)
    group = np.arange(fine.plateaus) // 10
    mean_of = np.zeros((int(group.max()) + 1, fine.plateaus))
    mean_of[group, np.arange(fine.plateaus)] = fine.rows / np.bincount(group, weights=fine.rows)[group]
    np.testing.assert_allclose(
        error.grouped(group, fine.rows.astype(float)).covariance(), mean_of @ covariance @ mean_of.T, rtol=1e-10
    )
    old = Calibrator.from_json({k: v for k, v in fine.to_json().items() if k in ("starts", "levels", "rows")})
    assert old.level_covariance() is None  # an estimator stored before: no calibration error, no crash


def _loss_rows(n: int, rng: np.random.Generator, shifted: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
    """Three one-hot features and the pair of the first two; the loss is larger (and noisier) on high
    levels of the first feature. ``shifted`` moves the rows towards the rare high levels."""
    first = np.minimum(rng.geometric(0.25 if shifted else 0.55, n) - 1, 5)
    second, third = rng.integers(0, 5, n), rng.integers(0, 4, n)
    scale = 1.0 + 0.8 * first + 0.2 * (second == 4)
    loss = np.abs(rng.normal(0.0, scale))
    return [first, second, third, first * 5 + second], loss


LOSS_LEVELS = [6, 5, 4, 30]


def test_loss_model_error_is_the_sandwich_covariance_of_the_ridge_fit() -> None:
    """With many replicates the sketch converges on the closed form ``g' A^-1 X' diag(r^2) X A^-1 g``
    (dense one-hot columns, ridge 1 off the intercept); the window's mean fitted loss is ``g' beta``."""
    rng = np.random.default_rng(21)
    codes, loss = _loss_rows(3_000, rng)
    fitted = fit_additive_loss(codes, LOSS_LEVELS, loss, replicates=8_000, seed=4)
    one_hot = np.hstack([np.ones((loss.size, 1)), *[np.eye(k)[c] for c, k in zip(codes, LOSS_LEVELS, strict=True)]])
    system = one_hot.T @ one_hot + np.diag([0.0, *[1.0] * (one_hot.shape[1] - 1)])
    beta = np.linalg.solve(system, one_hot.T @ loss)
    residual = loss - one_hot @ beta
    inverse = np.linalg.inv(system)
    sandwich = inverse @ (one_hot.T * residual**2) @ one_hot @ inverse
    window_codes, _ = _loss_rows(2_000, rng, shifted=True)
    design = design_counts(window_codes, LOSS_LEVELS)
    g = np.concatenate([[1.0], design / 2_000])
    assert g @ beta == pytest.approx(fitted.predict(window_codes).mean(), rel=1e-9)
    assert fitted.model_error(design, 2_000) == pytest.approx(np.sqrt(g @ sandwich @ g), rel=0.05)
    # Stored (four significant digits) and read back: the same error; a design of another model: NaN.
    stored = AdditiveLoss.from_json(fitted.to_json())
    assert stored.model_error(design, 2_000) == pytest.approx(fitted.model_error(design, 2_000), rel=0.01)
    assert np.isnan(stored.model_error(design[:-1], 2_000)) and np.isnan(stored.model_error(None, 2_000))
    assert AdditiveLoss.from_json(fitted.to_json(), replicates=False).replicates.size == 0


@pytest.mark.slow
def test_loss_model_error_matches_the_spread_of_refits_on_resampled_reference_rows() -> None:
    """The reference rows are resampled (with replacement) 300 times and the loss model refitted; the
    spread of one shifted window's mean fitted loss over the refits is what ``model_error`` says, for
    the default number of replicates kept."""
    rng = np.random.default_rng(22)
    codes, loss = _loss_rows(4_000, rng)
    fitted = fit_additive_loss(codes, LOSS_LEVELS, loss)
    window_codes, _ = _loss_rows(3_000, rng, shifted=True)
    design = design_counts(window_codes, LOSS_LEVELS)
    means = []
    for _ in range(300):
        rows = rng.integers(0, loss.size, loss.size)
        refit = fit_additive_loss([c[rows] for c in codes], LOSS_LEVELS, loss[rows], replicates=0)
        means.append(refit.predict(window_codes).mean())
    spread = float(np.std(means))
    # Measured: 0.085 against a spread of 0.080. The window's own sampling error (0.042 here) is not in
    # it: the band combines the two, sqrt(SE_window^2 + SE_model^2).
    assert fitted.model_error(design, 3_000) == pytest.approx(spread, rel=0.25)
    # On rows like the reference's the error is close to the mean loss's own, std(loss) / sqrt(n).
    reference_design = design_counts(codes, LOSS_LEVELS)
    assert fitted.model_error(reference_design, loss.size) == pytest.approx(loss.std() / np.sqrt(loss.size), rel=0.3)


def test_regression_model_error_joins_the_band_and_design_counts_merge() -> None:
    plain = estimate_regression(rows=100, absolute_sum=200.0, squared_sum=500.0, kurtosis=3.0)
    with_model = estimate_regression(100, 200.0, 500.0, 3.0, absolute_model_error=0.05, squared_model_error=0.4)
    assert with_model["mae"].calibration_error == pytest.approx(0.05)
    assert with_model["rmse"].calibration_error == pytest.approx(0.4 / (2 * np.sqrt(5.0)))
    assert with_model["mae"].total_error == pytest.approx(np.hypot(plain["mae"].standard_error, 0.05))
    unknown = estimate_regression(100, 200.0, 500.0, 3.0, absolute_model_error=float("nan"))
    assert unknown["mae"].total_error == pytest.approx(plain["mae"].standard_error)
    rng = np.random.default_rng(23)
    codes, _ = _loss_rows(1_000, rng)
    whole = design_counts(codes, LOSS_LEVELS)
    halves = [
        EstimationState("regression", np.zeros(3), design=design_counts([c[s] for c in codes], LOSS_LEVELS))
        for s in (slice(0, 400), slice(400, None))
    ]
    merged = EstimationState.from_json(halves[0].merge(halves[1]).to_json())
    np.testing.assert_array_equal(merged.design, whole)
    assert whole.sum() == 1_000 * len(LOSS_LEVELS)
    assert halves[0].merge(EstimationState("regression", np.zeros(3))).design is None  # a state folded before
