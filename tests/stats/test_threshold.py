"""The one threshold object, window-level families and the reason sentence (#16, #20)."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.core.results import Status
from driftline.stats.verdict import Threshold, format_pvalue, holm_adjust, judge, judge_family, reason_sentence


def test_alert_needs_the_stricter_alert_alpha() -> None:
    t = Threshold(0.1, 0.25, alpha=0.01)
    assert t.alpha_for_alert == pytest.approx(0.001)
    assert t.judge(0.3, 0.0005) is Status.ALERT
    # Past the alert level but only a warning's evidence: a warning, not a page.
    assert t.judge(0.3, 0.005) is Status.WARNING
    assert t.judge(0.3, 0.02) is Status.OK
    assert t.judge(0.15, 0.0) is Status.WARNING
    assert t.judge(0.05, 0.0) is Status.OK
    assert t.judge(float("nan"), 0.0) is Status.UNKNOWN
    assert t.judge(0.3, None) is Status.ALERT  # no test: the effect decides
    assert Threshold(0.1, 0.25, alpha=0.01, alert_alpha=0.005).judge(0.3, 0.004) is Status.ALERT


def test_lower_is_worse_direction() -> None:
    t = Threshold(0.9, 0.8, alpha=None, higher_is_worse=False)
    assert t.judge(0.79) is Status.ALERT and t.judge(0.85) is Status.WARNING and t.judge(0.95) is Status.OK


def test_strict_levels_are_reached_beyond_the_bound_not_at_it() -> None:
    """A tolerance allows its bound (performance bounds, the volume band, the silence limit)."""
    up = Threshold(0.1, 0.2, alpha=None, strict=True)
    assert [up.judge(v) for v in (0.1, 0.1000001, 0.2, 0.2000001)] == [
        Status.OK,
        Status.WARNING,
        Status.WARNING,
        Status.ALERT,
    ]
    down = Threshold(0.9, 0.8, alpha=None, higher_is_worse=False, strict=True)
    assert [down.judge(v) for v in (0.9, 0.89, 0.8, 0.79)] == [Status.OK, Status.WARNING, Status.WARNING, Status.ALERT]
    # Inclusive (the default) at the same bounds.
    assert Threshold(0.1, 0.2, alpha=None).judge(0.1) is Status.WARNING
    assert Threshold(0.1, 0.2, alpha=None).judge(0.2) is Status.ALERT


def test_one_level_is_ok_or_alert() -> None:
    limit = Threshold(60.0, 60.0, alpha=None, strict=True)
    assert limit.judge(60.0) is Status.OK and limit.judge(60.5) is Status.ALERT
    assert limit.judge(float("inf")) is Status.ALERT and limit.judge(float("nan")) is Status.UNKNOWN


def test_the_old_judge_keeps_one_alpha_for_both_levels() -> None:
    assert judge(0.3, 0.1, 0.2, 0.005, 0.01) is Status.ALERT


def holm_reference(pvalues: list[float]) -> list[float]:
    """Holm by its definition: reject in ascending order while p_(j) <= alpha / (m - j + 1)."""
    m = len(pvalues)
    order = np.argsort(pvalues)
    out = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[index]))
        out[index] = running
    return list(out)


def test_holm_matches_its_definition_and_keeps_none_in_place() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        values = list(rng.random(12) ** 3)
        np.testing.assert_allclose(holm_adjust(values), holm_reference(values), rtol=1e-12)
    assert holm_adjust([0.01, None, float("nan"), 0.04]) == [pytest.approx(0.02), None, None, pytest.approx(0.04)]
    assert holm_adjust([]) == []


def test_family_is_holm_across_every_test_of_the_window() -> None:
    pvalues = [0.004, 0.03, None, 0.5, 0.0001]
    effects = [0.5, 0.5, 0.5, 0.5, 0.5]
    statuses, adjusted = judge_family(effects, pvalues, [Threshold(0.1, 0.2)] * 5)
    assert adjusted[2] is None
    np.testing.assert_allclose(
        [a for a in adjusted if a is not None], holm_reference([0.004, 0.03, 0.5, 0.0001]), rtol=1e-12
    )
    # 0.004 -> 0.012: not significant in a family of four; 0.0001 -> 0.0004 alerts.
    assert statuses == [Status.OK, Status.OK, Status.ALERT, Status.OK, Status.ALERT]


def test_a_calm_feature_does_not_ride_along_with_drifted_ones() -> None:
    """Regression (#16): the demo's credit_lines (p 0.0049) warned at 17:00 because income and region
    had drifted and Benjamini-Hochberg relaxes the others' bar; Holm does not."""
    pvalues = [1e-30, 1e-22, 0.0049, 0.3, 0.6, 0.9]
    statuses, _ = judge_family([0.8, 0.6, 0.2032, 0.0, 0.0, 0.0], pvalues, [Threshold(0.1, 0.2)] * 6)
    assert statuses[:3] == [Status.ALERT, Status.ALERT, Status.OK]


def test_family_false_alarm_rate_on_uniform_pvalues_is_about_alpha() -> None:
    """Under the global null the chance that any of 30 tests reaches a level is ~alpha (BH = Simes),
    where 30 separate tests at alpha would flag ~26% of windows."""
    rng = np.random.default_rng(16)
    windows = 4_000
    warned = alerted = 0
    for _ in range(windows):
        statuses, _ = judge_family([1.0] * 30, list(rng.random(30)), [Threshold(0.5, 0.9)] * 30)
        warned += Status.WARNING in statuses or Status.ALERT in statuses
        alerted += Status.ALERT in statuses
    assert warned / windows <= 0.015
    assert alerted / windows <= 0.003


def test_reason_sentence_reads_like_the_issue() -> None:
    text = reason_sentence(
        subject="income",
        label="PSI",
        value=0.3612,
        status=Status.ALERT,
        threshold=Threshold(0.1, 0.25),
        pvalue=1e-9,
        rows=2_000,
        reference_rows=14_000,
    )
    assert text == "income: PSI 0.361 ≥ 0.25 (alert), p < 1e-6, 2,000 rows vs 14,000 reference"
    warning = reason_sentence(
        subject="age", label="KS", value=0.13, status=Status.WARNING, threshold=Threshold(0.1, 0.2), pvalue=0.004
    )
    assert warning == "age: KS 0.13 ≥ 0.1 (warning), p = 0.004"  # a warning names the warning level
    assert format_pvalue(None) is None and format_pvalue(float("nan")) is None
