"""The label rate per score bin (``label_rate_by_score``, and the calibration error's test): closed
forms, the exact small-sample p-value, its false-alarm rate on calm data and its power."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from driftline.stats.concept import (
    MIN_EXPECTED_FOR_CHI2,
    ScoreCalibration,
    calibration_shift,
    exact_upper_tail,
    fit_calibration,
    label_rate_change,
)


def _calm(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated scores: the label is Bernoulli(score); scores as a credit model's (most below 0.5)."""
    score = rng.beta(2, 3, rows)
    return score, (rng.random(rows) < score).astype(float)


def _true_rates(edges: list[float]) -> ScoreCalibration:
    """A reference summary holding the exact label rate of each bin of ``_calm`` (a huge reference)."""
    bounds = [0.0, *edges, 1.0]
    counts, positives = [], []
    for low, high in itertools.pairwise(bounds):
        mass = sps.beta.cdf(high, 2, 3) - sps.beta.cdf(low, 2, 3)
        mean = (sps.beta(3, 3).cdf(high) - sps.beta(3, 3).cdf(low)) * 2 / 5 / mass  # E[score | bin]
        counts.append(10**9)
        positives.append(int(round(10**9 * mean)))
    return ScoreCalibration(tuple(edges), tuple(counts), tuple(positives))


def test_exact_tail_closed_form_and_enumeration() -> None:
    # One bin of 10 rows at 0.5 with 8 positives: (8 - 5)^2 / 2.5 = 3.6; P(|O - 5| >= 3) = 112 / 1024.
    one = exact_upper_tail(np.array([10]), np.array([0.5]), np.array([2.5]), 3.6)
    assert one == pytest.approx(112 / 1024, rel=1e-12)
    assert exact_upper_tail(np.array([10]), np.array([0.5]), np.array([2.5]), 3.61) == pytest.approx(22 / 1024)
    assert exact_upper_tail(np.array([10]), np.array([0.5]), np.array([2.5]), 0.0) == 1.0
    # Two bins, every outcome enumerated.
    rows, rate = np.array([6, 8]), np.array([0.2, 0.6])
    variance = rows * rate * (1 - rate)
    for observed in (0.5, 5.0, 12.0):
        expected = sum(
            sps.binom.pmf(a, 6, 0.2) * sps.binom.pmf(b, 8, 0.6)
            for a in range(7)
            for b in range(9)
            if (a - 1.2) ** 2 / variance[0] + (b - 4.8) ** 2 / variance[1] >= observed - 1e-12
        )
        got = exact_upper_tail(rows, rate, variance, observed)
        assert expected - 1e-12 <= got <= expected + 1e-3  # never smaller; larger only by the grid rounding


def test_small_bins_take_the_exact_tail_not_the_chi_square() -> None:
    """Regression (#16): a bin expecting 0.75 positives that sees 4 gave chi-square p = 1.2e-4 (one
    degree of freedom); the binomial chance of 4 or more is 0.0055. Such bins made the check warn in
    1.7% of calm 300-row hours."""
    reference = ScoreCalibration((0.5,), (10**9, 10**9), (5 * 10**7, 5 * 10**8))
    shifted = label_rate_change(reference, rows=[15, 0], positives=[4, 0])
    assert shifted.details["test"] == "exact"
    chi2 = (4 - 0.75) ** 2 / 0.7125
    assert shifted.details["chi2"] == pytest.approx(chi2, rel=1e-6)
    assert sps.chi2.sf(chi2, 1) < 2e-4
    assert shifted.pvalue == pytest.approx(sps.binom.sf(3, 15, 0.05), rel=1e-3)
    assert shifted.statistic == pytest.approx(abs(4 / 15 - 0.05), rel=1e-6)


def test_large_bins_take_the_chi_square_with_both_sides_variance() -> None:
    rng = np.random.default_rng(3)
    reference = fit_calibration(*_calm(rng, 20_000))
    score, label = _calm(rng, 20_000)  # as large as the reference: its own noise matters as much
    outcome = calibration_shift(reference, score, label)
    assert outcome.details["test"] == "chi2"
    edges = np.asarray(reference.edges)
    index = np.searchsorted(edges, score, side="right")
    n = np.bincount(index, minlength=10).astype(float)
    o = np.bincount(index, weights=label, minlength=10)
    m = np.asarray(reference.counts, float)
    r = (np.asarray(reference.positives) + 0.5) / (m + 1)
    assert np.all(np.minimum(n * r, n * (1 - r)) >= MIN_EXPECTED_FOR_CHI2)
    chi2 = float(np.sum((o - n * r) ** 2 / (n * r * (1 - r) * (1 + n / m))))
    assert outcome.details["chi2"] == pytest.approx(chi2, rel=1e-9)
    assert outcome.pvalue == pytest.approx(sps.chi2.sf(chi2, 10), rel=1e-9)


def test_counts_and_rows_give_the_same_answer() -> None:
    rng = np.random.default_rng(4)
    reference = fit_calibration(*_calm(rng, 5_000))
    score, label = _calm(rng, 400)
    label[::9] = np.nan  # unlabelled rows are left out
    from_rows = calibration_shift(reference, score, label)
    keep = ~np.isnan(label)
    index = np.searchsorted(np.asarray(reference.edges), score[keep], side="right")
    from_counts = label_rate_change(
        reference, np.bincount(index, minlength=10), np.bincount(index, weights=label[keep], minlength=10)
    )
    assert from_rows == from_counts
    assert from_rows.details["labelled_rows"] == int(keep.sum())


def test_empty_sides_are_undefined_not_errors() -> None:
    reference = fit_calibration(*_calm(np.random.default_rng(5), 1_000))
    assert math.isnan(calibration_shift(ScoreCalibration(), [0.3], [1.0]).statistic)
    nothing = calibration_shift(reference, [0.3, np.nan], [np.nan, 1.0])
    assert math.isnan(nothing.statistic) and nothing.pvalue is None
    assert "no labelled rows" in nothing.details["reason"]


@pytest.mark.slow
def test_calm_small_windows_hold_the_level() -> None:
    """On calibrated scores judged against the exact rates, p < alpha no more often than alpha."""
    rng = np.random.default_rng(16)
    score, _ = _calm(rng, 50_000)
    reference = _true_rates(np.quantile(score, np.linspace(0, 1, 11)[1:-1]).tolist())
    windows = 2_000
    pvalues = np.array([calibration_shift(reference, *_calm(rng, 150)).pvalue for _ in range(windows)])
    assert np.mean(pvalues < 0.05) <= 0.06
    assert np.mean(pvalues < 0.01) <= 0.016  # 0.01 expected; sd 0.0022 over 2,000 windows


def test_a_changed_relation_is_seen_in_small_windows() -> None:
    rng = np.random.default_rng(17)
    reference = fit_calibration(*_calm(rng, 50_000))
    score, _ = _calm(rng, 50)
    flipped = (rng.random(50) < 1 - score).astype(float)  # labels follow 1 - score
    assert calibration_shift(reference, score, flipped).pvalue < 1e-4
    score, _ = _calm(rng, 300)
    logit = np.log(score / (1 - score)) + 1.0  # the odds of the label up 2.7 times at every score
    assert calibration_shift(reference, score, (rng.random(300) < 1 / (1 + np.exp(-logit))).astype(float)).pvalue < 1e-4
