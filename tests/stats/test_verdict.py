"""Verdicts: Benjamini-Hochberg adjustment, the judge, and the false-alarm rate on unchanged data."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from driftline.core.results import Status
from driftline.stats.profile import NumericProfile, fit_numeric, profile_numeric
from driftline.stats.registry import REGISTRY
from driftline.stats.verdict import adjust_pvalues, judge

# ---------------------------------------------------------------- adjust_pvalues


def test_adjust_pvalues_equals_false_discovery_control_and_keeps_none_in_place() -> None:
    pvalues = [0.01, None, 0.04, 0.03, None, 0.5, 0.0001, float("nan")]
    adjusted = adjust_pvalues(pvalues)
    present = [0.01, 0.04, 0.03, 0.5, 0.0001]
    expected = sps.false_discovery_control(present, method="bh")
    assert [i for i, v in enumerate(adjusted) if v is None] == [1, 4, 7]  # NaN becomes None too
    np.testing.assert_allclose([v for v in adjusted if v is not None], expected, rtol=1e-12)


@pytest.mark.parametrize("pvalues", [[], [None], [None, float("nan")]])
def test_adjust_pvalues_without_values(pvalues: list) -> None:
    assert adjust_pvalues(pvalues) == [None] * len(pvalues)


def test_adjust_single_pvalue_is_unchanged() -> None:
    assert adjust_pvalues([None, 0.02]) == [None, pytest.approx(0.02)]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(0.0, 1.0)), max_size=30))
def test_adjust_pvalues_property(pvalues: list[float | None]) -> None:
    adjusted = adjust_pvalues(pvalues)
    assert len(adjusted) == len(pvalues)
    present = [p for p in pvalues if p is not None]
    assert [a is None for a in adjusted] == [p is None for p in pvalues]
    if present:
        expected = sps.false_discovery_control(present, method="bh")
        np.testing.assert_allclose([a for a in adjusted if a is not None], expected, rtol=1e-12)
    for p, a in zip(pvalues, adjusted, strict=True):
        if p is not None:
            assert a is not None and p - 1e-15 <= a <= 1.0  # BH never lowers a p-value


# ---------------------------------------------------------------- judge


@pytest.mark.parametrize("effect", [float("nan"), None])
def test_judge_unknown_without_an_effect(effect: float | None) -> None:
    assert judge(effect, 0.1, 0.2, 0.0, 0.01) is Status.UNKNOWN  # type: ignore[arg-type]
    assert judge(effect, 0.1, 0.2, None, 0.01) is Status.UNKNOWN  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("effect", "expected"),
    [
        (0.0, Status.OK),
        (0.0999999, Status.OK),
        (0.1, Status.WARNING),  # the levels are inclusive
        (0.1999999, Status.WARNING),
        (0.2, Status.ALERT),
        (7.0, Status.ALERT),
        (float("inf"), Status.ALERT),
    ],
)
@pytest.mark.parametrize("pvalue", [None, 0.0, 0.009999])
def test_judge_levels_when_significant(effect: float, expected: Status, pvalue: float | None) -> None:
    assert judge(effect, 0.1, 0.2, pvalue, alpha=0.01) is expected


@pytest.mark.parametrize("pvalue", [0.01, 0.5, 1.0])  # alpha itself is not significant
@pytest.mark.parametrize("effect", [0.0, 0.15, 0.2, 10.0])
def test_non_significant_pvalue_blocks_warning_and_alert(effect: float, pvalue: float) -> None:
    assert judge(effect, 0.1, 0.2, pvalue, alpha=0.01) is Status.OK


def test_equal_warning_and_alert_levels_go_straight_to_alert() -> None:
    assert judge(0.3, 0.3, 0.3, None, 0.05) is Status.ALERT
    assert judge(0.29, 0.3, 0.3, None, 0.05) is Status.OK


@settings(max_examples=50, deadline=None)
@given(
    st.floats(0.0, 2.0),
    st.floats(0.0, 2.0),
    st.floats(0.0, 1.0),
    st.one_of(st.none(), st.floats(0.0, 1.0)),
    st.floats(0.001, 0.2),
)
def test_judge_property(effect: float, warning: float, extra: float, pvalue: float | None, alpha: float) -> None:
    alert = warning + extra
    status = judge(effect, warning, alert, pvalue, alpha)
    significant = pvalue is None or pvalue < alpha
    if not significant or effect < warning:
        assert status is Status.OK
    elif effect >= alert:
        assert status is Status.ALERT
    else:
        assert status is Status.WARNING


# ---------------------------------------------------------------- false alarms on unchanged data

ALPHA = 0.01  # the configuration default (driftline.config.monitors: drift.alpha)
REFERENCE_ROWS = 50_000
WINDOWS = 40

Sampler = Callable[[np.random.Generator, int], np.ndarray]
FEATURES: dict[str, Sampler] = {
    "normal": lambda rng, n: rng.normal(100.0, 15.0, n),
    "lognormal": lambda rng, n: rng.lognormal(0.0, 1.0, n),
    "poisson": lambda rng, n: rng.poisson(3.0, n).astype(np.float64),
}


def window_verdicts(reference: dict[str, NumericProfile], window: dict[str, NumericProfile]) -> list[Status]:
    """What tasks/drift.py does for numeric features, with only the stats layer: every statistic on
    every feature, each metric's p-values BH-adjusted across the window's features, then judged with
    the registry's default levels."""
    statuses = []
    for statistic in REGISTRY["numeric"].values():
        outcomes = [statistic.compute(reference[f], window[f]) for f in FEATURES]
        adjusted = adjust_pvalues([o.pvalue for o in outcomes])
        for outcome, p_adj in zip(outcomes, adjusted, strict=True):
            effect = (
                outcome.details.get("cohens_w", float("nan")) if statistic.effect == "cohens_w" else outcome.statistic
            )
            statuses.append(judge(effect, statistic.warning, statistic.alert, p_adj, ALPHA))
    return statuses


@pytest.mark.parametrize("window_rows", [1_000, 10_000])
def test_false_alarm_rate_on_unchanged_data_is_at_most_1_percent(window_rows: int) -> None:
    started = time.perf_counter()
    rng = np.random.default_rng(71 + window_rows)
    reference = {f: fit_numeric(draw(rng, REFERENCE_ROWS)) for f, draw in FEATURES.items()}
    tally: Counter[Status] = Counter()
    for _ in range(WINDOWS):
        window = {f: profile_numeric(draw(rng, window_rows), reference[f]) for f, draw in FEATURES.items()}
        tally.update(window_verdicts(reference, window))
    total = sum(tally.values())
    assert total == WINDOWS * len(FEATURES) * len(REGISTRY["numeric"])
    assert tally[Status.UNKNOWN] == 0
    # Measured on these seeds: 0 alerts and 0 warnings out of 720 verdicts per window size.
    assert tally[Status.ALERT] / total <= 0.01, tally
    assert tally[Status.WARNING] / total <= 0.01, tally
    assert time.perf_counter() - started < 20


def test_the_same_machinery_does_alert_on_real_drift() -> None:
    # Guards the false-alarm test against passing vacuously: a 1-sd shift of every feature.
    rng = np.random.default_rng(72)
    reference = {f: fit_numeric(draw(rng, REFERENCE_ROWS)) for f, draw in FEATURES.items()}
    shifted = {
        "normal": rng.normal(115.0, 15.0, 1_000),
        "lognormal": rng.lognormal(0.0, 1.0, 1_000) + 2.16,
        "poisson": rng.poisson(3.0, 1_000).astype(np.float64) + 2.0,
    }
    window = {f: profile_numeric(shifted[f], reference[f]) for f in FEATURES}
    statuses = window_verdicts(reference, window)
    assert Counter(statuses)[Status.ALERT] == len(statuses)


def test_bh_adjustment_is_what_gates_many_features() -> None:
    # 20 features, one with p = 0.004 and the rest unremarkable: alone it would be significant at
    # alpha 0.01, across 20 features its BH-adjusted p-value (0.08) no longer is.
    pvalues = [0.004] + [0.5 + 0.02 * i for i in range(19)]
    adjusted = adjust_pvalues(pvalues)
    assert adjusted[0] == pytest.approx(0.004 * 20)
    assert judge(0.3, 0.1, 0.2, pvalues[0], ALPHA) is Status.ALERT
    assert judge(0.3, 0.1, 0.2, adjusted[0], ALPHA) is Status.OK
    assert not math.isnan(adjusted[-1])  # type: ignore[arg-type]
