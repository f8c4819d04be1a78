"""The latency quantile sketch against numpy.percentile on the raw values, and its exact merge."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from driftline.stats.checks import OperationalState
from driftline.stats.sketch import MAX_BUCKETS, QuantileSketch

PERCENTILES = (0, 1, 25, 50, 90, 95, 99, 99.9, 100)


def _distributions() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    with_zeros = rng.gamma(2.0, 20.0, 20_000)
    with_zeros[rng.random(20_000) < 0.3] = 0.0
    return {
        "lognormal": rng.lognormal(4.0, 1.0, 50_000),
        "gamma": rng.gamma(3.0, 10.0, 50_000),
        # Heavy tail: Pareto with shape 1.1 (no variance), latencies from 1 ms to millions.
        "pareto": (rng.pareto(1.1, 50_000) + 1.0) * 5.0,
        "zeros": with_zeros,
        "all_zero": np.zeros(1_000),
        "integer_ms": rng.poisson(80, 30_000).astype(float),
        "tiny_and_huge": np.concatenate([rng.uniform(1e-6, 1e-5, 500), rng.uniform(1e5, 1e6, 500)]),
        "few": np.array([3.0, 700.0, 12.0]),
        "one": np.array([42.0]),
    }


@pytest.mark.parametrize("name", list(_distributions()))
@pytest.mark.parametrize("accuracy", [0.01, 0.05])
def test_quantiles_within_the_relative_accuracy_of_numpy(name: str, accuracy: float) -> None:
    values = _distributions()[name]
    sketch = QuantileSketch.of(values, accuracy)
    assert sketch.count == values.size and sketch.rejected == 0
    for q in PERCENTILES:
        exact = float(np.percentile(values, q))
        approx = sketch.quantile(q)
        # The guarantee, with room for float rounding of log() at a bucket boundary only.
        assert abs(approx - exact) <= accuracy * abs(exact) * (1 + 1e-9) + 1e-300, (name, q, approx, exact)


def test_the_error_is_not_zero_so_the_check_above_can_fail() -> None:
    values = _distributions()["lognormal"]
    errors = [abs(QuantileSketch.of(values).quantile(q) / np.percentile(values, q) - 1) for q in (50, 95, 99)]
    assert 0 < max(errors) <= 0.01
    # A coarser sketch is off by more than 1% somewhere: the accuracy is what the buckets give.
    coarse = QuantileSketch.of(values, 0.1)
    assert max(abs(coarse.quantile(q) / np.percentile(values, q) - 1) for q in range(1, 100)) > 0.01


def test_nan_is_skipped_negative_and_infinite_are_rejected() -> None:
    values = np.array([np.nan, -1.0, -0.0, 0.0, 5.0, np.inf, -np.inf, 10.0, np.nan, 20.0])
    sketch = QuantileSketch.of(values)
    assert sketch.count == 5  # -0.0, 0.0, 5, 10, 20
    assert sketch.zeros == 2
    assert sketch.rejected == 3  # -1, inf, -inf
    valid = np.array([0.0, 0.0, 5.0, 10.0, 20.0])
    for q in PERCENTILES:
        assert sketch.quantile(q) == pytest.approx(np.percentile(valid, q), rel=0.01)
    empty = QuantileSketch.of(np.array([np.nan, -3.0]))
    assert empty.count == 0 and empty.rejected == 1 and math.isnan(empty.quantile(50))
    with pytest.raises(ValueError, match="percentile"):
        sketch.quantile(101)


@pytest.mark.parametrize("name", ["lognormal", "pareto", "zeros", "tiny_and_huge", "one"])
def test_merge_of_sketches_equals_the_sketch_of_all_values(name: str) -> None:
    values = _distributions()[name]
    rng = np.random.default_rng(3)
    values = np.concatenate([values, [np.nan, -2.0, np.inf]])
    rng.shuffle(values)
    cuts = sorted(rng.integers(0, values.size, 4).tolist())
    blocks = np.split(values, cuts)
    merged = QuantileSketch.of(blocks[0])
    for block in blocks[1:]:
        merged = merged.merge(QuantileSketch.of(block))
    whole = QuantileSketch.of(values)
    assert merged == whole
    # Merging is commutative, and an empty sketch is its identity.
    a, b = QuantileSketch.of(blocks[0]), QuantileSketch.of(np.concatenate(blocks[1:]))
    assert a.merge(b) == b.merge(a) == whole
    assert whole.merge(QuantileSketch()) == QuantileSketch().merge(whole) == whole


def test_the_span_is_bounded_and_collapses_the_lowest_buckets_the_same_way_merged_or_not() -> None:
    # 1e-200 .. 1e3 needs far more than MAX_BUCKETS buckets at 1%.
    low, high = np.geomspace(1e-200, 1e-190, 1_000), np.geomspace(1.0, 1e3, 1_000)
    whole = QuantileSketch.of(np.concatenate([low, high]))
    assert whole.counts.size == MAX_BUCKETS
    assert QuantileSketch.of(low).merge(QuantileSketch.of(high)) == whole
    assert QuantileSketch.of(high).merge(QuantileSketch.of(low)) == whole
    # The upper half keeps the guarantee.
    values = np.concatenate([low, high])
    for q in (60, 90, 99, 100):
        assert whole.quantile(q) == pytest.approx(np.percentile(values, q), rel=0.01)


def test_count_above_is_exact_but_for_the_bucket_holding_the_threshold() -> None:
    values = _distributions()["lognormal"]
    sketch = QuantileSketch.of(values)
    gamma = sketch.gamma
    for threshold in (np.percentile(values, 50), np.percentile(values, 99), 1.0, 1e9):
        exact = int((values > threshold).sum())
        # The values within one bucket of the threshold bound the error.
        near = int(((values > threshold / gamma) & (values <= threshold * gamma)).sum())
        assert abs(sketch.count_above(threshold) - exact) <= near
    assert sketch.count_above(-1.0) == sketch.count
    assert QuantileSketch.of(np.array([0.0, 0.0, 3.0])).count_above(0.0) == 1


def test_sketch_and_operational_state_round_trip_through_json() -> None:
    values = _distributions()["zeros"]
    state = OperationalState(values.size + 2, QuantileSketch.of(np.concatenate([values, [-1.0]])), 7, 100)
    loaded = OperationalState.from_json(json.loads(json.dumps(state.to_json())))
    assert loaded == state
    assert loaded.latency is not None and loaded.latency.quantile(99) == state.latency.quantile(99)  # type: ignore[union-attr]
    # A state stored before the sketch (no latency key) loads with its latencies unknown.
    old = OperationalState.from_json({"type": "operational", "rows": 5, "errors": 1, "error_rows": 5})
    assert old.latency is None and old.merge(state).latency is None


def test_sketches_of_different_accuracy_do_not_merge() -> None:
    with pytest.raises(ValueError, match="relative accuracy"):
        QuantileSketch.of(np.ones(3), 0.01).merge(QuantileSketch.of(np.ones(3), 0.02))
    with pytest.raises(ValueError, match="relative_accuracy"):
        QuantileSketch(relative_accuracy=0.0)
