"""Profiles: counts, NULL/inf handling, degenerate inputs, merging and JSON round-trips.

Pure numpy/pandas; no database, no Prefect, no shared fixtures.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.stats import profile as P
from driftline.stats.model_profile import (
    ModelProfile,
    categorical_values,
    fit_model_profile,
    numeric_values,
    window_model_profile,
)
from driftline.stats.profile import (
    FINE_BINS,
    CategoricalProfile,
    NumericProfile,
    fit_categorical,
    fit_numeric,
    profile_categorical,
    profile_from_json,
    profile_numeric,
)


def json_round_trip(data: dict) -> dict:
    """Through real JSON text, as the store does (NaN is not JSON: it must already be None)."""
    return json.loads(json.dumps(data, allow_nan=False))


def assert_numeric_equal(a: NumericProfile, b: NumericProfile, rel: float = 0.0) -> None:
    np.testing.assert_array_equal(a.edges, b.edges)
    np.testing.assert_array_equal(a.groups, b.groups)
    np.testing.assert_array_equal(a.counts, b.counts)
    assert (a.nulls, a.pos_inf, a.neg_inf, a.unparsed) == (b.nulls, b.pos_inf, b.neg_inf, b.unparsed)
    for x, y in [(a.minimum, b.minimum), (a.maximum, b.maximum)]:
        assert (math.isnan(x) and math.isnan(y)) or x == y
    assert a.total == pytest.approx(b.total, rel=rel, abs=1e-9)
    assert a.total_sq == pytest.approx(b.total_sq, rel=rel, abs=1e-9)


def dirty_sample(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    """Normal values with NaN, +inf and -inf sprinkled in at known rates."""
    values = rng.normal(shift, 1.0, n)
    kind = rng.uniform(size=n)
    values[kind < 0.05] = np.nan
    values[(kind >= 0.05) & (kind < 0.07)] = np.inf
    values[(kind >= 0.07) & (kind < 0.08)] = -np.inf
    return values


# ---------------------------------------------------------------- numeric: counts


@pytest.mark.parametrize("n", [1, 7, 1_000, 50_000])
def test_fit_numeric_counts_add_up(n: int) -> None:
    values = dirty_sample(np.random.default_rng(n), n)
    ref = fit_numeric(values)
    assert ref.n + ref.nulls + ref.pos_inf + ref.neg_inf == n
    assert ref.nulls == int(np.isnan(values).sum())
    assert ref.pos_inf == int((values == np.inf).sum())
    assert ref.neg_inf == int((values == -np.inf).sum())
    finite = values[np.isfinite(values)]
    assert ref.n == finite.size
    assert len(ref.counts) == len(ref.edges) + 1 == len(ref.groups)
    if finite.size:
        # Every finite reference value lies inside the reference range: overflow bins are empty.
        assert ref.counts[0] == 0 and ref.counts[-1] == 0
        assert ref.minimum == finite.min() and ref.maximum == finite.max()
        assert ref.edges[0] == finite.min()
        if finite.min() < finite.max():
            assert ref.edges[-1] == finite.max()
        else:  # a constant reference gets the one closed bin [c, nextafter(c)]
            assert ref.edges[-1] == np.nextafter(finite.max(), np.inf)
        assert ref.mean == pytest.approx(finite.mean(), rel=1e-12)
        assert ref.std == pytest.approx(finite.std(), rel=1e-9, abs=1e-12)


def test_fit_numeric_uses_fine_quantile_bins() -> None:
    values = np.random.default_rng(3).normal(size=100_000)
    ref = fit_numeric(values)
    assert len(ref.edges) == FINE_BINS + 1
    inner = ref.counts[1:-1]
    # Quantile bins of continuous data: each holds 1/200 of the rows (+-1 row for rounding).
    assert np.all(np.abs(inner - len(values) / FINE_BINS) <= 1)
    # Coarse groups: 10 groups of about equal reference mass, numbered 0..9 in order.
    assert np.array_equal(np.unique(ref.groups), np.arange(P.COARSE_BINS))
    assert np.all(np.diff(ref.groups) >= 0)
    coarse = ref.coarse_counts()
    assert coarse.sum() == len(values)
    assert np.all(np.abs(coarse - len(values) / P.COARSE_BINS) <= P.COARSE_BINS)


@pytest.mark.parametrize("n", [10, 5_000])
def test_profile_numeric_counts_add_up_and_separate_nan_from_inf(n: int) -> None:
    rng = np.random.default_rng(100 + n)
    ref = fit_numeric(rng.normal(size=2_000))
    values = dirty_sample(rng, n, shift=0.3)
    win = profile_numeric(values, ref)
    assert win.n + win.nulls + win.pos_inf + win.neg_inf == n
    assert win.nulls == int(np.isnan(values).sum())
    assert win.pos_inf == int((values == np.inf).sum())
    assert win.neg_inf == int((values == -np.inf).sum())
    finite = values[np.isfinite(values)]
    # Counts on the reference bins, checked against a direct count per bin.
    edges = ref.edges
    expected = [np.sum(finite < edges[0])]
    expected += [np.sum((finite >= lo) & (finite < hi)) for lo, hi in zip(edges[:-2], edges[1:-1], strict=True)]
    expected += [np.sum((finite >= edges[-2]) & (finite <= edges[-1])), np.sum(finite > edges[-1])]
    np.testing.assert_array_equal(win.counts, expected)
    assert win.edges is ref.edges or np.array_equal(win.edges, ref.edges)
    np.testing.assert_array_equal(win.groups, ref.groups)
    # Moments are sums of (x - shift), the shift being the reference median.
    assert win.shift == ref.shift
    assert win.total == pytest.approx((finite - ref.shift).sum(), rel=1e-9, abs=1e-9)
    assert win.mean == pytest.approx(finite.mean(), rel=1e-9)


def test_nan_and_infinities_are_never_binned() -> None:
    values = np.array([np.nan, np.inf, -np.inf, np.inf, 1.0, 2.0, 3.0])
    ref = fit_numeric(values)
    assert (ref.n, ref.nulls, ref.pos_inf, ref.neg_inf) == (3, 1, 2, 1)
    assert (ref.minimum, ref.maximum) == (1.0, 3.0)
    assert np.isfinite(ref.edges).all()
    # Shifted by the median (2.0): sum(x - 2) = 0 and sum((x - 2) ** 2) = 2.
    assert ref.shift == 2.0 and ref.total == 0.0 and ref.total_sq == 2.0
    assert ref.mean == 2.0 and ref.std == pytest.approx(math.sqrt(2 / 3))
    win = profile_numeric([np.inf, np.inf, np.nan, -np.inf], ref)
    assert (win.n, win.nulls, win.pos_inf, win.neg_inf) == (0, 1, 2, 1)
    assert math.isnan(win.minimum) and math.isnan(win.maximum) and math.isnan(win.mean)


def test_python_none_in_a_numeric_list_is_a_null() -> None:
    ref = fit_numeric([1.0, None, 2.0])  # np.asarray(..., float) turns None into NaN
    assert (ref.n, ref.nulls) == (2, 1)


@pytest.mark.parametrize("values", [[4.25], [4.25] * 1_000])
def test_constant_reference(values: list[float]) -> None:
    ref = fit_numeric(values)
    assert ref.n == len(values)
    assert ref.minimum == ref.maximum == 4.25
    assert ref.std == 0.0
    assert len(ref.edges) == 2 and ref.edges[0] == 4.25 and ref.edges[1] > 4.25
    # All reference rows are in the single closed bin between the two overflow bins.
    np.testing.assert_array_equal(ref.counts, [0, len(values), 0])
    win = profile_numeric([1.0, 4.25, 4.25, 9.0, np.nan], ref)
    np.testing.assert_array_equal(win.counts, [1, 2, 1])
    assert (win.n, win.nulls) == (4, 1)


@pytest.mark.parametrize("values", [[], [np.nan] * 9, [np.nan, np.inf, -np.inf]])
def test_reference_without_finite_values(values: list[float]) -> None:
    ref = fit_numeric(values)
    assert ref.n == 0
    assert ref.edges.size == 0
    assert ref.n + ref.nulls + ref.pos_inf + ref.neg_inf == len(values)
    assert math.isnan(ref.minimum) and math.isnan(ref.maximum)
    assert math.isnan(ref.mean) and math.isnan(ref.std)
    # A window on such a reference has one bin holding all its finite values.
    win = profile_numeric([1.0, 2.0, np.nan], ref)
    np.testing.assert_array_equal(win.counts, [2])
    assert len(win.groups) == len(win.counts)
    assert (win.n, win.nulls) == (2, 1)
    # Both survive JSON (NaN extremes are stored as null).
    for profile in (ref, win):
        assert_numeric_equal(profile_from_json(json_round_trip(profile.to_json())), profile)


@pytest.mark.parametrize("values", [[], [np.nan] * 4])
def test_empty_and_all_nan_window(values: list[float]) -> None:
    ref = fit_numeric(np.random.default_rng(5).normal(size=1_000))
    win = profile_numeric(values, ref)
    assert win.n == 0 and win.nulls == len(values)
    assert len(win.counts) == len(ref.counts) and win.counts.sum() == 0
    assert math.isnan(win.minimum) and math.isnan(win.maximum)


# ---------------------------------------------------------------- numeric: merge and JSON


@pytest.mark.parametrize("sizes", [(1_000, 3_000), (1, 5_000), (0, 200), (4_000, 4)])
def test_merged_window_profiles_equal_profile_of_concatenated_rows(sizes: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(sizes))
    ref = fit_numeric(rng.lognormal(size=20_000))
    # Windows drift beyond the reference range on both sides, so the overflow bins are used.
    a = dirty_sample(rng, sizes[0], shift=0.5) * 4
    b = dirty_sample(rng, sizes[1], shift=-0.5) * 4
    merged = profile_numeric(a, ref).merge(profile_numeric(b, ref))
    whole = profile_numeric(np.concatenate([a, b]), ref)
    assert_numeric_equal(merged, whole, rel=1e-12)
    assert merged.mean == pytest.approx(whole.mean, rel=1e-12)
    assert merged.std == pytest.approx(whole.std, rel=1e-9)


def test_merge_is_associative_over_many_hours() -> None:
    rng = np.random.default_rng(11)
    ref = fit_numeric(rng.exponential(size=10_000))
    hours = [rng.exponential(size=int(rng.integers(0, 300))) for _ in range(24)]
    day = profile_numeric(hours[0], ref)
    for hour in hours[1:]:
        day = day.merge(profile_numeric(hour, ref))
    assert_numeric_equal(day, profile_numeric(np.concatenate(hours), ref), rel=1e-12)


def test_merge_rejects_different_edges() -> None:
    rng = np.random.default_rng(12)
    a = fit_numeric(rng.normal(size=500))
    b = fit_numeric(rng.normal(size=500))
    with pytest.raises(ValueError, match="different bin edges"):
        a.merge(b)


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(13).normal(size=3_000),
        np.array([7.5] * 20 + [np.nan, np.inf]),
        np.random.default_rng(14).poisson(2.0, size=2_000).astype(float),
        np.array([np.nan, np.nan]),
    ],
    ids=["normal", "constant", "poisson", "all-nan"],
)
def test_numeric_json_round_trip(values: np.ndarray) -> None:
    ref = fit_numeric(values)
    win = profile_numeric(np.random.default_rng(15).normal(size=400) * 3, ref)
    for profile in (ref, win):
        back = profile_from_json(json_round_trip(profile.to_json()))
        assert isinstance(back, NumericProfile)
        assert_numeric_equal(back, profile)  # exact: JSON keeps float64 exactly
        assert back.counts.dtype == np.int64 and back.groups.dtype == np.int64


def test_profile_from_json_rejects_unknown_type() -> None:
    with pytest.raises(ValueError, match="unknown profile type"):
        profile_from_json({"type": "histogram"})


# ---------------------------------------------------------------- categorical


def test_categorical_counts_and_nulls() -> None:
    values = ["a", "b", None, float("nan"), np.nan, "a", "c", "a", None]
    profile = profile_categorical(values)
    assert profile.counts == {"a": 3, "b": 1, "c": 1}
    assert profile.nulls == 4  # None, float NaN and numpy NaN are all NULL
    assert profile.overflow == 0
    assert profile.n + profile.nulls == len(values)


def test_categorical_values_are_compared_as_text() -> None:
    profile = profile_categorical(np.array([1, 2, 2, "2", True, np.nan], dtype=object))
    assert profile.counts == {"1": 1, "2": 3, "True": 1}
    assert profile.nulls == 1
    assert all(isinstance(k, str) for k in profile.counts)


@pytest.mark.parametrize("values", [[], [None, None], [np.nan]])
def test_categorical_empty_and_all_null(values: list) -> None:
    profile = profile_categorical(values)
    assert profile.counts == {} and profile.n == 0
    assert profile.nulls == len(values)


def test_fit_categorical_is_profile_categorical() -> None:
    values = ["x", "y", "x", None]
    assert fit_categorical(values) == profile_categorical(values)


def test_category_cap_keeps_most_frequent_and_counts_the_rest_as_overflow() -> None:
    counts = {"a": 10, "b": 7, "c": 7, "d": 3, "e": 1}
    capped = P._capped(dict(counts), nulls=2, overflow=4, cap=3)
    # The 3 most frequent, ties broken by name; dropped rows go to overflow, none are lost.
    assert capped.counts == {"a": 10, "b": 7, "c": 7}
    assert capped.overflow == 4 + 3 + 1
    assert capped.nulls == 2
    assert capped.n == sum(counts.values()) + 4
    # At or under the cap nothing moves.
    assert P._capped(dict(counts), 0, 0, cap=5).counts == counts
    assert P._capped(dict(counts), 0, 0, cap=5).overflow == 0


def test_categorical_merge_adds_counts_and_nulls() -> None:
    rng = np.random.default_rng(21)
    a = rng.choice(["x", "y", "z", None], size=500, p=[0.5, 0.3, 0.1, 0.1]).tolist()
    b = rng.choice(["x", "w", None], size=300, p=[0.6, 0.3, 0.1]).tolist()
    merged = profile_categorical(a).merge(profile_categorical(b))
    assert merged == profile_categorical(a + b)


def test_categorical_merge_keeps_overflow() -> None:
    a = CategoricalProfile({"x": 3}, nulls=1, overflow=5)
    b = CategoricalProfile({"x": 1, "y": 2}, nulls=0, overflow=7)
    merged = a.merge(b)
    assert merged.counts == {"x": 4, "y": 2}
    assert (merged.nulls, merged.overflow, merged.n) == (1, 12, 18)


def test_categorical_json_round_trip() -> None:
    profile = CategoricalProfile({"a": 3, "1.5": 2, "é": 1}, nulls=4, overflow=9)
    back = profile_from_json(json_round_trip(profile.to_json()))
    assert back == profile
    # Older stored profiles have no "overflow" key.
    assert CategoricalProfile.from_json({"type": "categorical", "counts": {"a": 1}, "nulls": 0}).overflow == 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"]), st.just(float("nan"))), max_size=60))
def test_categorical_counts_property(values: list) -> None:
    profile = profile_categorical(values)
    expected_nulls = sum(v is None or (isinstance(v, float) and math.isnan(v)) for v in values)
    assert profile.nulls == expected_nulls
    assert profile.n + profile.nulls == len(values)
    for category, count in profile.counts.items():
        assert count == sum(v == category for v in values)


FLOATS_WITH_SPECIALS = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([float("nan"), float("inf"), float("-inf")]))


@settings(max_examples=50, deadline=None)
@given(
    st.lists(FLOATS_WITH_SPECIALS, max_size=80),
    st.lists(FLOATS_WITH_SPECIALS, max_size=80),
)
def test_numeric_counts_property(reference: list[float], window: list[float]) -> None:
    ref = fit_numeric(reference)
    win = profile_numeric(window, ref)
    for values, profile in [(reference, ref), (window, win)]:
        array = np.asarray(values, dtype=float)
        assert profile.n == int(np.isfinite(array).sum())
        assert profile.nulls == int(np.isnan(array).sum())
        assert profile.n + profile.nulls + profile.pos_inf + profile.neg_inf == len(values)
    assert ref.counts[0] == 0 and ref.counts[-1] == 0  # the reference is inside its own range
    assert len(win.counts) == len(win.groups)


# ---------------------------------------------------------------- model profiles


def frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    income = rng.normal(50_000 + shift, 10_000, n).astype(object)
    income[rng.uniform(size=n) < 0.05] = None
    income[rng.uniform(size=n) < 0.01] = "n/a"  # not a number: counted as unparsed, not as NULL
    region = rng.choice(["north", "south", "east"], size=n).astype(object)
    region[rng.uniform(size=n) < 0.03] = None
    return pd.DataFrame({"income": income, "age": rng.integers(18, 80, n).astype(float), "region": region})


def test_column_conversions() -> None:
    numeric = numeric_values(pd.Series([1, "2.5", None, "x", np.inf]))
    np.testing.assert_array_equal(np.isnan(numeric), [False, False, True, True, False])
    assert numeric[1] == 2.5 and numeric[4] == np.inf
    categorical = categorical_values(pd.Series(["a", None, np.nan, pd.NA, "b"], dtype=object))
    assert categorical.tolist() == ["a", None, None, None, "b"]


def test_model_profile_fit_window_merge_and_json() -> None:
    rng = np.random.default_rng(31)
    reference = fit_model_profile(frame(rng, 5_000), numeric=["income", "age"], categorical=["region"])
    assert reference.row_count == 5_000
    assert isinstance(reference.features["income"], NumericProfile)
    assert isinstance(reference.features["region"], CategoricalProfile)
    income = reference.features["income"]
    assert income.n + income.nulls + income.unparsed == 5_000
    assert 20 < income.unparsed < 80, "the ~1% 'n/a' are counted, not dropped (#19.6)"

    first, second = frame(rng, 700, shift=5_000), frame(rng, 300, shift=-5_000)
    merged = window_model_profile(first, reference).merge(window_model_profile(second, reference))
    whole = window_model_profile(pd.concat([first, second], ignore_index=True), reference)
    assert merged.row_count == whole.row_count == 1_000
    assert merged.features.keys() == whole.features.keys() == {"income", "age", "region"}
    for name in ("income", "age"):
        assert_numeric_equal(merged.features[name], whole.features[name], rel=1e-12)
    assert merged.features["region"] == whole.features["region"]

    for profile in (reference, merged):
        back = ModelProfile.from_json(json_round_trip(profile.to_json()))
        assert back.row_count == profile.row_count
        assert back.features.keys() == profile.features.keys()
        for name in ("income", "age"):
            assert_numeric_equal(back.features[name], profile.features[name])
        assert back.features["region"] == profile.features["region"]


def test_model_profile_merge_keeps_features_missing_from_the_other_side() -> None:
    a = ModelProfile(3, {"f": CategoricalProfile({"x": 3})})
    b = ModelProfile(2, {})
    merged = a.merge(b)
    assert merged.row_count == 5
    assert merged.features["f"] == CategoricalProfile({"x": 3})


@pytest.mark.parametrize("offset", [1e8, 1.7e9])
def test_std_survives_a_large_offset(offset: float) -> None:
    """Regression: raw moments (total_sq / n - mean**2) read 2.0 at 1e8 + N(0, 1) and 0.0 at epoch
    seconds; the moments are now shifted by the reference median."""
    rng = np.random.default_rng(91)
    values = offset + rng.normal(0.0, 1.0, 10_000)
    reference = fit_numeric(values)
    assert reference.std == pytest.approx(values.std(), rel=0.01)
    assert reference.mean == pytest.approx(values.mean(), rel=1e-12)
    window_values = offset + rng.normal(0.5, 2.0, 5_000)
    window = profile_numeric(window_values, reference)
    assert window.std == pytest.approx(window_values.std(), rel=0.01)
    assert window.mean == pytest.approx(window_values.mean(), rel=1e-12)


def test_float_categories_counted_as_their_printed_text() -> None:
    """A float column (a label or prediction) is counted by distinct value, then printed (#15): the
    same categories and counts as printing every row — 1.0 is "1", -0.0 and 0.0 are "0", 2**60 and
    non-integral values keep their own text, NaN is a null."""
    import collections

    values = np.array([1.0, 0.0, -0.0, 1.0, 2.0**60, 0.5, np.nan, -np.inf, 1.0, 0.25])
    profile = profile_categorical(pd.Series(values))
    printed = []
    for v in values[~np.isnan(values)]:
        integral = np.isfinite(v) and v == np.floor(v) and abs(v) < 2.0**53
        printed.append(str(int(v)) if integral else str(v))
    assert profile.counts == dict(collections.Counter(printed))
    assert list(profile.counts) == list(dict.fromkeys(printed))  # in order of first appearance
    assert profile.nulls == 1
