"""Drift statistics checked against scipy and closed forms on the RAW rows.

Tolerances are stated next to each check. Measured on these seeds (a wider sweep of 6 seeds x
5 size pairs while writing the tests gave the same picture):

* KS: profile statistic <= ``ks_2samp`` statistic, and the gap is at most the largest reference bin
  mass (<= 0.005 for continuous data, 0 for the Poisson shape); worst observed gap 0.004.
  Tolerance 0.01. Worst observed |p_profile - p_ks_2samp(asymp)| 0.092 (only where p is large).
* Wasserstein: |profile W1 * std - scipy W1| <= 5% of scipy W1 + 0.02 reference std for location
  shifts and unchanged data (worst observed: 2.2% beyond the 0.02 sd term; 9.3% relative on its
  own, for a 0.1 sd shift); scale changes, which move window mass into the wide reference tail
  bins, within 20% + 0.02 sd (worst observed 12% beyond the sd term, 16% relative on its own).
* Categorical chi-square / JS / Hellinger / TVD / PSI / unseen share: exact (rel 1e-9 or 1e-12).
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from driftline.stats import distances as d
from driftline.stats.profile import (
    CategoricalProfile,
    NumericProfile,
    fit_numeric,
    profile_categorical,
    profile_numeric,
)
from driftline.stats.registry import REGISTRY

KS_TOLERANCE = 0.01
W_REL, W_ABS_SD = 0.05, 0.02  # location shifts and unchanged data
W_REL_SCALE = 0.20  # scale changes (window mass in the reference's wide tail bins)

Sampler = Callable[[np.random.Generator, int, float], np.ndarray]

# Each sampler draws n rows; `shift` moves the distribution by about `shift` of its own sd.
SHAPES: dict[str, Sampler] = {
    "normal": lambda rng, n, s: rng.normal(s, 1.0, n),
    "lognormal": lambda rng, n, s: rng.lognormal(0.0, 1.0, n) + 2.16 * s,
    "exponential": lambda rng, n, s: rng.exponential(1.0, n) + s,
    "uniform": lambda rng, n, s: rng.uniform(0.0, 1.0, n) + 0.2887 * s,
    "shifted_normal": lambda rng, n, s: rng.normal(1_000.0 + 25.0 * s, 25.0, n),
    "poisson": lambda rng, n, s: rng.poisson(4.0 + 2.0 * s, n).astype(np.float64),
}

SIZES = [(1_000, 1_000), (1_000, 200_000), (200_000, 1_000), (50_000, 5_000), (200_000, 20_000)]


def seed_of(*parts: object) -> int:
    """A seed fixed by the test parameters (``hash`` of a str changes between processes)."""
    return zlib.crc32(repr(parts).encode())


def profiles(reference: np.ndarray, window: np.ndarray) -> tuple[NumericProfile, NumericProfile]:
    ref = fit_numeric(reference)
    return ref, profile_numeric(window, ref)


def largest_reference_bin_mass(ref: NumericProfile) -> float:
    return float(ref.counts.max() / ref.n)


# ---------------------------------------------------------------- KS against scipy on raw rows


@pytest.mark.parametrize("sizes", SIZES, ids=[f"{a}x{b}" for a, b in SIZES])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_ks_matches_scipy_ks_2samp_within_0_01(shape: str, sizes: tuple[int, int]) -> None:
    n_ref, n_win = sizes
    rng = np.random.default_rng(seed_of(shape, *sizes))
    reference = SHAPES[shape](rng, n_ref, 0.0)
    for shift in (0.0, 0.1, 0.5):
        window = SHAPES[shape](rng, n_win, shift)
        ref, win = profiles(reference, window)
        result = d.ks_numeric(ref, win)
        raw = sps.ks_2samp(reference, window, method="asymp")
        gap = raw.statistic - result.statistic
        # The binned ECDFs are compared at the reference edges only: never above the raw
        # statistic, and below it by at most the largest reference bin mass.
        assert -1e-12 <= gap <= largest_reference_bin_mass(ref) + 1e-12
        assert abs(gap) <= KS_TOLERANCE
        if shape == "poisson":
            assert gap == pytest.approx(0.0, abs=1e-12)  # every integer in range is its own bin
        # p-value: scipy's asymptotic formula, kstwo.sf(D, round(n m / (n + m))).
        n_eff = round(ref.n * win.n / (ref.n + win.n))
        assert result.pvalue == pytest.approx(sps.kstwo.sf(result.statistic, n_eff), rel=1e-9, abs=1e-300)
        # Against the raw test: sandwiched between the raw p-value and the p-value of the raw
        # statistic minus the largest bin mass, and loosely close (measured max |diff| 0.092).
        assert raw.pvalue - 1e-12 <= result.pvalue
        assert result.pvalue <= sps.kstwo.sf(raw.statistic - largest_reference_bin_mass(ref), n_eff) + 1e-12
        assert (result.pvalue < 1e-3 and raw.pvalue < 1e-3) or abs(result.pvalue - raw.pvalue) < 0.15
        if gap == 0:
            assert result.pvalue == pytest.approx(raw.pvalue, rel=1e-9, abs=1e-300)
        assert result.details == {"reference_rows": n_ref, "window_rows": n_win}


def test_ks_excludes_nan_and_inf_like_scipy_on_finite_rows() -> None:
    rng = np.random.default_rng(41)
    reference, window = rng.normal(size=5_000), rng.normal(0.2, 1.0, 3_000)
    dirty_ref = np.concatenate([reference, [np.nan] * 50, [np.inf] * 10])
    dirty_win = np.concatenate([window, [np.nan] * 500, [-np.inf] * 30])
    clean = d.ks_numeric(*profiles(reference, window))
    dirty = d.ks_numeric(*profiles(dirty_ref, dirty_win))
    assert dirty.statistic == clean.statistic and dirty.pvalue == clean.pvalue
    assert dirty.details["window_rows"] == 3_000
    assert abs(sps.ks_2samp(reference, window).statistic - dirty.statistic) <= KS_TOLERANCE


@pytest.mark.parametrize("side", ["above", "below"])
def test_window_entirely_outside_reference_range_gives_ks_1(side: str) -> None:
    rng = np.random.default_rng(42)
    reference = rng.uniform(0.0, 1.0, 2_000)
    window = rng.uniform(1.5, 3.0, 500) if side == "above" else rng.uniform(-3.0, -0.5, 500)
    ref, win = profiles(reference, window)
    result = d.ks_numeric(ref, win)
    assert result.statistic == 1.0
    assert sps.ks_2samp(reference, window).statistic == 1.0
    assert result.pvalue < 1e-100
    # All window rows sit in one overflow bin.
    assert win.counts[-1 if side == "above" else 0] == 500


def test_ks_constant_reference_matches_scipy() -> None:
    reference = np.full(1_000, 4.25)
    window = np.array([1.0, 4.25, 4.25, 9.0] * 50)
    ref, win = profiles(reference, window)
    result = d.ks_numeric(ref, win)
    assert result.statistic == pytest.approx(sps.ks_2samp(reference, window).statistic, abs=1e-12)
    assert result.statistic == pytest.approx(0.25)
    assert d.ks_numeric(ref, profile_numeric(np.full(30, 4.25), ref)).statistic == 0.0


# ---------------------------------------------------------------- Wasserstein against scipy


W_CASES = [("location", 0.1), ("location", 0.5), ("null", 0.0), ("scale", 1.3), ("scale", 0.8)]


@pytest.mark.parametrize("case", W_CASES, ids=[f"{k}-{v}" for k, v in W_CASES])
@pytest.mark.parametrize("shape", ["normal", "uniform", "exponential", "lognormal_0.5", "poisson"])
def test_wasserstein_times_std_matches_scipy(shape: str, case: tuple[str, float]) -> None:
    kind, amount = case
    shift = amount if kind == "location" else 0.0
    scale = amount if kind == "scale" else 1.0

    def draw(rng: np.random.Generator, n: int, s: float, k: float) -> np.ndarray:
        if shape == "normal":
            return rng.normal(s, k, n)
        if shape == "uniform":
            return rng.uniform(0.0, k, n) + 0.2887 * s
        if shape == "exponential":
            return rng.exponential(k, n) + s
        if shape == "lognormal_0.5":
            return rng.lognormal(math.log(k), 0.5, n) + 0.6 * s
        return rng.poisson(4.0 * k + 2.0 * s, n).astype(np.float64)

    rel = W_REL_SCALE if kind == "scale" else W_REL
    rng = np.random.default_rng(seed_of(shape, *case))
    for n_ref, n_win in [(1_000, 1_000), (50_000, 5_000), (200_000, 1_000), (10_000, 50_000)]:
        reference, window = draw(rng, n_ref, 0.0, 1.0), draw(rng, n_win, shift, scale)
        ref, win = profiles(reference, window)
        result = d.wasserstein_numeric(ref, win)
        expected = sps.wasserstein_distance(reference, window)
        assert ref.std == pytest.approx(reference.std(), rel=1e-9)
        assert result.details["distance"] == pytest.approx(result.statistic * ref.std, rel=1e-12)
        assert abs(result.details["distance"] - expected) <= rel * expected + W_ABS_SD * ref.std
        # Its p-value is the binned chi-square test's on the 10 coarse groups.
        coarse = binned_table(ref, win)
        assert result.pvalue == pytest.approx(chi2_pvalue(coarse), rel=1e-9, abs=1e-300)


def test_wasserstein_window_outside_reference_range() -> None:
    # The overflow bin is spread evenly over [reference max, window max]: exact for a uniform
    # window that starts at the reference maximum.
    rng = np.random.default_rng(43)
    reference = np.linspace(0.0, 1.0, 10_001)
    window = rng.uniform(1.0, 3.0, 200_000)
    ref, win = profiles(reference, window)
    result = d.wasserstein_numeric(ref, win)
    expected = sps.wasserstein_distance(reference, window)
    assert result.details["distance"] == pytest.approx(expected, rel=0.01)


def test_wasserstein_of_identical_rows_is_zero_and_constant_reference_is_undefined() -> None:
    values = np.random.default_rng(44).gamma(2.0, size=3_000)
    ref, win = profiles(values, values)
    assert d.wasserstein_numeric(ref, win).statistic == pytest.approx(0.0, abs=1e-12)
    constant = fit_numeric(np.full(100, 3.0))
    result = d.wasserstein_numeric(constant, profile_numeric(values, constant))
    assert math.isnan(result.statistic) and result.pvalue is None
    assert "standard deviation is 0" in result.details["reason"]


@pytest.mark.xfail(
    strict=True,
    reason="known limitation: values are spread evenly inside a bin and "
    "the top reference bin of a heavy tail is very wide, so W1 of a lognormal(0, 1) -> "
    "lognormal(0.5, 1) change at 100k rows is overestimated by 17-76% (20 seeds, "
    "median 32%); a tighter estimate would need per-bin sums in the profile",
)
def test_wasserstein_heavy_tail_scale_change_within_10_percent() -> None:
    rng = np.random.default_rng(45)
    reference, window = rng.lognormal(0.0, 1.0, 100_000), rng.lognormal(0.5, 1.0, 100_000)
    ref, win = profiles(reference, window)
    expected = sps.wasserstein_distance(reference, window)
    assert d.wasserstein_numeric(ref, win).details["distance"] == pytest.approx(expected, rel=0.1)


# ---------------------------------------------------------------- binned numeric divergences


def binned_table(ref: NumericProfile, win: NumericProfile) -> tuple[np.ndarray, np.ndarray]:
    """Reference and window counts on the 10 coarse reference-quantile groups, from first principles."""
    groups = ref.groups
    n_groups = groups.max() + 1
    ref_c = np.array([ref.counts[groups == g].sum() for g in range(n_groups)], dtype=float)
    win_c = np.array([win.counts[groups == g].sum() for g in range(n_groups)], dtype=float)
    return ref_c, win_c


def chi2_pvalue(table: tuple[np.ndarray, np.ndarray]) -> float:
    ref_c, win_c = table
    keep = (ref_c + win_c) > 0
    return float(sps.chi2_contingency([ref_c[keep], win_c[keep]], correction=False).pvalue)


def closed_psi(p: np.ndarray, q: np.ndarray) -> float:
    p, q = np.maximum(p, 1e-4), np.maximum(q, 1e-4)
    return float(np.sum((q - p) * np.log(q / p)))


def closed_js(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_pm = np.sum(np.where(p > 0, p * np.log2(p / m), 0.0))
        kl_qm = np.sum(np.where(q > 0, q * np.log2(q / m), 0.0))
    return math.sqrt(max((kl_pm + kl_qm) / 2, 0.0))


def closed_hellinger(p: np.ndarray, q: np.ndarray) -> float:
    return math.sqrt(max(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2), 0.0))


def closed_tvd(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.sum(np.abs(p - q)))


CLOSED_FORMS = {"psi": closed_psi, "jensen_shannon": closed_js, "hellinger": closed_hellinger, "tvd": closed_tvd}


@pytest.mark.parametrize("shape", ["normal", "lognormal", "poisson"])
def test_binned_numeric_divergences_equal_closed_forms(shape: str) -> None:
    rng = np.random.default_rng(46)
    reference = SHAPES[shape](rng, 20_000, 0.0)
    window = np.concatenate([SHAPES[shape](rng, 3_000, 0.3), [1e9, -1e9]])  # overflow bins too
    ref, win = profiles(reference, window)
    ref_c, win_c = binned_table(ref, win)
    assert ref_c.sum() == ref.n and win_c.sum() == win.n
    p, q = ref_c / ref_c.sum(), win_c / win_c.sum()
    for name, closed in CLOSED_FORMS.items():
        result = REGISTRY["numeric"][name].compute(ref, win)
        assert result.statistic == pytest.approx(closed(p, q), rel=1e-9, abs=1e-12), name
        assert result.pvalue == pytest.approx(chi2_pvalue((ref_c, win_c)), rel=1e-9, abs=1e-300)
        assert result.details["bins"] == len(ref_c)


def test_binned_chi_square_drops_empty_columns_and_degenerate_tables() -> None:
    stat, pvalue, dof = d.binned_chi_square([10, 0, 5, 7], [3, 0, 9, 1])
    expected = sps.chi2_contingency([[10, 5, 7], [3, 9, 1]], correction=False)
    assert stat == pytest.approx(expected.statistic, rel=1e-12)
    assert pvalue == pytest.approx(expected.pvalue, rel=1e-12)
    assert dof == 2
    assert d.binned_chi_square([10, 0], [4, 0]) == (0.0, 1.0, 0)  # one non-empty column
    assert d.binned_chi_square([0, 0], [0, 0]) == (0.0, 1.0, 0)
    assert d.binned_chi_square([3, 4], [0, 0]) == (0.0, 1.0, 0)  # an empty side


def test_binned_chi_square_gives_scipys_floats_exactly() -> None:
    """The written-out test (no scipy call per table) returns chi2_contingency's very floats, on
    small, huge, sparse and shifted tables."""
    rng = np.random.default_rng(15)
    compared = 0
    for trial in range(2_000):
        k = int(rng.integers(2, 60))
        table = rng.integers(0, [10, 1_000, 10**6, 10**9][trial % 4], size=(2, k)).astype(float)
        if trial % 3 == 0:
            table[1] = rng.poisson(table[0] * rng.uniform(0.1, 3))
        if trial % 5 == 0:
            table[:, rng.integers(0, k, size=k // 2)] = 0
        kept = table[:, table.sum(axis=0) > 0]
        if kept.shape[1] < 2 or (kept.sum(axis=1) == 0).any():
            continue
        expected = sps.chi2_contingency(kept, correction=False)
        got = d.binned_chi_square(table[0], table[1])
        assert got == (float(expected.statistic), float(expected.pvalue), int(expected.dof)), table
        compared += 1
    assert compared > 1_900


# ---------------------------------------------------------------- categorical against scipy


def categorical_sample(rng: np.random.Generator, n: int, categories: list[str], alpha: float) -> list[str]:
    weights = rng.dirichlet(np.full(len(categories), alpha))
    return rng.choice(categories, size=n, p=weights).tolist()


@pytest.mark.parametrize("k", [2, 5, 30, 50])
def test_chi_square_categorical_equals_chi2_contingency(k: int) -> None:
    rng = np.random.default_rng(k)
    categories = [f"c{i}" for i in range(k)]
    reference = categorical_sample(rng, 5_000, categories, 2.0) + categories  # every category seen
    window = categorical_sample(rng, 800, categories, 2.0) + [None] * 20
    ref, win = profile_categorical(reference), profile_categorical(window)
    ref_counts = Counter(reference)
    win_counts = Counter(v for v in window if v is not None)
    # Cochran's rule: categories expected fewer than 5 times in the window are pooled into one cell.
    tested = [c for c in categories if 800 * ref_counts[c] / len(reference) >= d.MIN_EXPECTED]
    rare = [c for c in categories if c not in tested]
    table = [[ref_counts[c] for c in tested], [win_counts[c] for c in tested]]
    if rare:
        table[0].append(sum(ref_counts[c] for c in rare))
        table[1].append(sum(win_counts[c] for c in rare))
    expected = sps.chi2_contingency(table, correction=False)
    result = d.chi_square_categorical(ref, win)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert result.pvalue == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert result.details["dof"] == expected.dof == len(table[0]) - 1
    assert result.details["levels"] == len(table[0])
    # Cohen's w of the difference: sqrt(chi2 * (1/n + 1/m)), independent of the sample sizes.
    scale = 1 / len(reference) + 1 / 800
    w = math.sqrt(expected.statistic * scale)
    assert result.details["cohens_w"] == pytest.approx(w, rel=1e-12)
    assert result.details["cramers_v"] == pytest.approx(w / math.sqrt(expected.dof), rel=1e-12)


def test_chi_square_pools_rare_and_unseen_levels_so_one_rare_row_is_not_drift() -> None:
    """Regression (#16): a Zipf column's rare level, or a level the reference never saw, turning up
    once in a 300-row hour made its own chi-square cell with an expected count near 0: chi2 in the
    hundreds, Cohen's w ~0.7, an alert on unchanged data. Pooled with the other rare levels it is not."""
    reference = CategoricalProfile({"a": 30_000, "b": 15_000, "c": 4_900, "r1": 60, "r2": 40})
    window = CategoricalProfile({"a": 180, "b": 90, "c": 28, "r2": 1, "never_seen": 1})
    result = d.chi_square_categorical(reference, window)
    expected = sps.chi2_contingency([[30_000, 15_000, 4_900, 100], [180, 90, 28, 2]], correction=False)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert result.pvalue > 0.1 and result.details["cohens_w"] < 0.15  # below the warning level
    unpooled = sps.chi2_contingency([[30_000, 15_000, 4_900, 60, 40, 0], [180, 90, 28, 0, 1, 1]], correction=False)
    assert unpooled.pvalue < 1e-6  # what the old buckets said


def test_chi_square_pools_unseen_window_categories_into_one_bucket() -> None:
    ref = CategoricalProfile({"a": 500, "b": 300, "c": 200})
    win = CategoricalProfile({"a": 40, "b": 30, "x": 5, "y": 3}, nulls=7)
    result = d.chi_square_categorical(ref, win)
    expected = sps.chi2_contingency([[500, 300, 200, 0], [40, 30, 0, 8]], correction=False)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert result.pvalue == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.details["dof"] == 3


def raw_proportions(ref: CategoricalProfile, win: CategoricalProfile) -> tuple[np.ndarray, np.ndarray]:
    """Proportions over the union of raw categories (no pooling at all)."""
    union = sorted(set(ref.counts) | set(win.counts))
    p = np.array([ref.counts.get(c, 0) for c in union], dtype=float)
    q = np.array([win.counts.get(c, 0) for c in union], dtype=float)
    return p / p.sum(), q / q.sum()


@pytest.mark.parametrize("unseen", [0, 1, 4])
@pytest.mark.parametrize("k", [1, 3, 20, 50])
def test_categorical_divergences_equal_scipy_and_closed_forms(k: int, unseen: int) -> None:
    rng = np.random.default_rng(100 * k + unseen)
    seen = [f"s{i}" for i in range(k)]
    new = [f"new{i}" for i in range(unseen)]
    ref = profile_categorical(categorical_sample(rng, 4_000, seen, 1.0) + seen)
    win_values = categorical_sample(rng, 600, seen, 1.0)
    win_values += [new[i % unseen] for i in range(37)] if unseen else []
    win = profile_categorical(win_values)
    p, q = raw_proportions(ref, win)
    # JS, Hellinger and TVD are linear in categories the reference never saw, so pooling them
    # into one "__unseen__" bucket leaves them equal to the raw-category values.
    js = d.js_categorical(ref, win).statistic
    assert js == pytest.approx(jensenshannon(p, q, base=2), rel=1e-9, abs=1e-12)
    assert js == pytest.approx(closed_js(p, q), rel=1e-9, abs=1e-7)
    assert d.hellinger_categorical(ref, win).statistic == pytest.approx(closed_hellinger(p, q), rel=1e-9, abs=1e-7)
    assert d.tvd_categorical(ref, win).statistic == pytest.approx(closed_tvd(p, q), rel=1e-9, abs=1e-12)
    # PSI is not: its floored logarithm is applied to the pooled unseen bucket.
    labels = sorted(set(ref.counts) | set(win.counts))
    seen_idx = [i for i, c in enumerate(labels) if c in ref.counts]
    new_idx = [i for i, c in enumerate(labels) if c not in ref.counts]
    pooled_p = np.concatenate([p[seen_idx], [0.0]])
    pooled_q = np.concatenate([q[seen_idx], [q[new_idx].sum()]])
    assert d.psi_categorical(ref, win).statistic == pytest.approx(closed_psi(pooled_p, pooled_q), rel=1e-9, abs=1e-12)
    # The significance of all four is the chi-square test of homogeneity on the same buckets.
    chi = d.chi_square_categorical(ref, win)
    for compute in (d.js_categorical, d.hellinger_categorical, d.tvd_categorical, d.psi_categorical):
        result = compute(ref, win)
        assert result.pvalue == chi.pvalue
        assert result.details["binned_dof"] == chi.details["dof"]


def test_more_than_top_categories_pools_the_rare_ones() -> None:
    counts = {f"c{i:03d}": 1_000 - i for i in range(d.TOP_CATEGORIES + 20)}
    ref = CategoricalProfile(counts, overflow=11)
    win = CategoricalProfile({"c000": 5, "c060": 7, "c065": 1, "zzz": 2}, overflow=3)
    labels, ref_c, win_c = d.aligned_categories(ref, win)
    assert labels[: d.TOP_CATEGORIES] == [f"c{i:03d}" for i in range(d.TOP_CATEGORIES)]
    assert labels[-2:] == ["__other__", d.UNSEEN]
    rest = sum(v for c, v in counts.items() if int(c[1:]) >= d.TOP_CATEGORIES)
    assert ref_c[-2] == rest + 11 and ref_c[-1] == 0
    assert win_c[0] == 5 and win_c[-2] == 8 and win_c[-1] == 2 + 3
    assert ref_c.sum() == ref.n and win_c.sum() == win.n
    p, q = ref_c / ref_c.sum(), win_c / win_c.sum()
    assert d.js_categorical(ref, win).statistic == pytest.approx(jensenshannon(p, q, base=2), rel=1e-9)
    assert d.psi_categorical(ref, win).statistic == pytest.approx(closed_psi(p, q), rel=1e-9)


@pytest.mark.parametrize("overflow", [0, 6])
def test_unseen_share_closed_form(overflow: int) -> None:
    ref = CategoricalProfile({"a": 50, "b": 30})
    win = CategoricalProfile({"a": 10, "x": 4, "y": 9, "b": 1}, nulls=100, overflow=overflow)
    result = d.unseen_share_categorical(ref, win)
    assert result.statistic == pytest.approx((4 + 9 + overflow) / (10 + 4 + 9 + 1 + overflow), rel=1e-12)
    # No reference category was seen once: an unchanged window has no unseen rows, so any is significant.
    assert result.details["chance_share"] == 0.0 and result.pvalue == 0.0
    assert result.details["unseen_categories"] == 2
    assert result.details["examples"] == ["y", "x"]  # most frequent first
    assert d.unseen_share_categorical(ref, CategoricalProfile({"a": 3})).statistic == 0.0
    assert d.unseen_share_categorical(ref, CategoricalProfile({"q": 3})).statistic == 1.0


def test_single_category_on_both_sides_is_no_drift() -> None:
    ref, win = profile_categorical(["only"] * 200), profile_categorical(["only"] * 30 + [None])
    chi = d.chi_square_categorical(ref, win)
    assert (chi.statistic, chi.pvalue, chi.details["dof"], chi.details["cohens_w"]) == (0.0, 1.0, 0, 0.0)
    for name, statistic in REGISTRY["categorical"].items():
        result = statistic.compute(ref, win)
        assert result.statistic == pytest.approx(0.0, abs=1e-7), name


def test_window_of_only_unseen_categories() -> None:
    ref, win = profile_categorical(["a"] * 100), profile_categorical(["z"] * 40)
    assert d.unseen_share_categorical(ref, win).statistic == 1.0
    assert d.tvd_categorical(ref, win).statistic == 1.0
    assert d.js_categorical(ref, win).statistic == pytest.approx(1.0, abs=1e-12)
    assert d.hellinger_categorical(ref, win).statistic == 1.0
    chi = d.chi_square_categorical(ref, win)
    # Disjoint supports: chi2 = N = 140 on the 2 x 2 table, so w = sqrt(140 * (1/100 + 1/40)).
    assert chi.details["cohens_w"] == pytest.approx(math.sqrt(140 * (1 / 100 + 1 / 40)))
    assert chi.pvalue < 1e-20


# ---------------------------------------------------------------- degenerate inputs never raise


NUMERIC_EMPTY = {
    "empty reference": ([], [1.0, 2.0]),
    "all-NaN reference": ([np.nan] * 5, [1.0, 2.0]),
    "only-inf reference": ([np.inf, -np.inf], [1.0]),
    "empty window": ([1.0, 2.0, 3.0], []),
    "all-NaN window": ([1.0, 2.0, 3.0], [np.nan] * 7),
    "only-inf window": ([1.0, 2.0, 3.0], [np.inf, np.inf]),
}


@pytest.mark.parametrize("case", list(NUMERIC_EMPTY))
@pytest.mark.parametrize("name", list(REGISTRY["numeric"]))
def test_numeric_empty_side_gives_nan_with_reason(name: str, case: str) -> None:
    reference, window = NUMERIC_EMPTY[case]
    ref = fit_numeric(reference)
    result = REGISTRY["numeric"][name].compute(ref, profile_numeric(window, ref))
    assert math.isnan(result.statistic)
    assert result.pvalue is None
    side = "reference" if "reference" in case else "window"
    assert result.details["reason"] == f"{side} has no finite values"


CATEGORICAL_EMPTY = {
    "empty reference": ([], ["a"]),
    "all-null reference": ([None, np.nan], ["a"]),
    "empty window": (["a", "b"], []),
    "all-null window": (["a", "b"], [None, float("nan")]),
}


@pytest.mark.parametrize("case", list(CATEGORICAL_EMPTY))
@pytest.mark.parametrize("name", list(REGISTRY["categorical"]))
def test_categorical_empty_side_gives_nan_with_reason(name: str, case: str) -> None:
    reference, window = CATEGORICAL_EMPTY[case]
    result = REGISTRY["categorical"][name].compute(profile_categorical(reference), profile_categorical(window))
    assert math.isnan(result.statistic)
    assert result.pvalue is None
    side = "reference" if "reference" in case else "window"
    assert result.details["reason"] == f"{side} has no non-null values"


@pytest.mark.parametrize("name", list(REGISTRY["numeric"]))
def test_numeric_statistics_on_constant_reference_do_not_raise(name: str) -> None:
    ref = fit_numeric([2.0] * 50)
    result = REGISTRY["numeric"][name].compute(ref, profile_numeric([2.0, 2.0, 5.0, -1.0], ref))
    if name == "wasserstein":
        assert math.isnan(result.statistic) and "reason" in result.details
    else:
        assert math.isfinite(result.statistic) and result.statistic > 0
        assert result.pvalue is not None and 0.0 <= result.pvalue <= 1.0


# ---------------------------------------------------------------- properties (Hypothesis)


def proportion_pair(max_k: int = 20) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    weight = st.one_of(st.just(0.0), st.floats(1e-6, 1.0))

    def vectors(k: int) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
        vector = st.lists(weight, min_size=k, max_size=k).filter(lambda w: sum(w) > 0)
        return st.tuples(vector, vector).map(
            lambda pair: tuple(np.asarray(v) / np.sum(v) for v in pair)  # type: ignore[return-value]
        )

    return st.integers(1, max_k).flatmap(vectors)


DISTANCES = {"psi": d.psi, "js": d.js_distance, "hellinger": d.hellinger, "tvd": d.tvd}


@settings(max_examples=50, deadline=None)
@given(proportion_pair())
def test_distance_of_a_vector_to_itself_is_zero(pair: tuple[np.ndarray, np.ndarray]) -> None:
    p, _ = pair
    for name, distance in DISTANCES.items():
        # Hellinger is sqrt(1 - sum(sqrt(p p))): a rounding error of ~1e-15 in the sum gives ~3e-8.
        assert distance(p, p) == pytest.approx(0.0, abs=1e-7), name


@settings(max_examples=50, deadline=None)
@given(proportion_pair())
def test_distances_are_symmetric(pair: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pair
    for name, distance in DISTANCES.items():
        assert distance(p, q) == pytest.approx(distance(q, p), rel=1e-9, abs=1e-12), name


def test_js_of_nearly_equal_histograms_is_zero_not_nan() -> None:
    """Regression: scipy's jensenshannon returned NaN here (a divergence rounded to just below 0),
    found by test_bounded_distances_lie_in_unit_interval."""
    p = np.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0])
    q = np.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.5, 1.0, 0.9999999999999999])
    assert d.js_distance(p / p.sum(), q / q.sum()) == pytest.approx(0.0, abs=1e-7)


@settings(max_examples=50, deadline=None)
@given(proportion_pair())
def test_bounded_distances_lie_in_unit_interval(pair: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pair
    for name in ("js", "hellinger", "tvd"):
        value = DISTANCES[name](p, q)
        assert -1e-12 <= value <= 1.0 + 1e-12, name
    assert d.psi(p, q) >= -1e-12  # a symmetric KL divergence is never negative
    # Closed forms, from first principles.
    assert d.tvd(p, q) == pytest.approx(closed_tvd(p, q), rel=1e-9, abs=1e-12)
    assert d.hellinger(p, q) == pytest.approx(closed_hellinger(p, q), rel=1e-6, abs=1e-7)
    assert d.js_distance(p, q) == pytest.approx(closed_js(p, q), rel=1e-6, abs=1e-7)
    assert d.psi(p, q) == pytest.approx(closed_psi(p, q), rel=1e-9, abs=1e-12)


@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")  # kstwo with n=0
@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e6, 1e6), st.integers(-5, 5).map(float)), min_size=1, max_size=300))
def test_ks_of_a_profile_against_itself_is_zero(values: list[float]) -> None:
    ref = fit_numeric(values)
    same = profile_numeric(values, ref)
    np.testing.assert_array_equal(same.counts, ref.counts)
    for window in (ref, same):
        result = d.ks_numeric(ref, window)
        assert result.statistic == 0.0
        if ref.n >= 2:  # with one row each, round(1 * 1 / 2) = 0 rows and scipy's kstwo is NaN
            assert result.pvalue == 1.0
    for name in ("psi", "jensen_shannon", "hellinger", "tvd"):
        assert REGISTRY["numeric"][name].compute(ref, same).statistic == pytest.approx(0.0, abs=2e-8)


@pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning")  # kstwo with n=0
@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=200),
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=200),
)
def test_ks_never_exceeds_raw_ks_and_stays_within_bin_mass(reference: list[float], window: list[float]) -> None:
    ref, win = profiles(np.asarray(reference), np.asarray(window))
    result = d.ks_numeric(ref, win)
    raw = sps.ks_2samp(reference, window, method="asymp").statistic
    assert 0.0 <= result.statistic <= raw + 1e-12
    assert raw - result.statistic <= largest_reference_bin_mass(ref) + 1e-12


def test_unseen_share_is_tested_against_the_good_turing_missing_mass() -> None:
    """Regression (#16): a Zipf column's rare levels turn up unseen by chance; the test's baseline is
    the share of reference rows in categories seen once (plus the overflow), checked with scipy's binomial."""
    ref = CategoricalProfile({"a": 900, "b": 80, "r1": 1, "r2": 1, "r3": 1, "r4": 1}, overflow=16)
    chance = (4 + 16) / 1_000
    assert d.unseen_chance(ref) == pytest.approx(chance)
    win = CategoricalProfile({"a": 280, "b": 15, "new1": 3, "new2": 2})
    result = d.unseen_share_categorical(ref, win)
    assert result.statistic == pytest.approx(5 / 300)
    assert result.pvalue == pytest.approx(sps.binom.sf(4, 300, chance), rel=1e-12)
    assert result.pvalue > 0.1  # 5 unseen of 300 where 6 are expected: chance
    many = d.unseen_share_categorical(ref, CategoricalProfile({"a": 200, "new": 100}))
    assert many.pvalue < 1e-20
