"""Window-level families for performance, operational and data-quality checks (#16 item 2)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from driftline.config.monitors import parse_config
from driftline.core.results import Kind, Result, Status
from driftline.core.window import Window
from driftline.stats.model_profile import fit_model_profile, window_model_profile
from driftline.tasks.context import WindowContext
from driftline.tasks.operational import error_rate, judge_operational_family, latency
from driftline.tasks.performance import (
    bound,
    judge_performance_family,
    judge_window_performance,
    lower_is_better,
    tolerance_for,
)

WINDOW = Window(datetime(2026, 1, 8, tzinfo=UTC), datetime(2026, 1, 8, 1, tzinfo=UTC))
MODEL = parse_config(
    {
        "models": [
            {
                "name": "m",
                "table": "t",
                "timestamp_column": "ts",
                "task": "classification",
                "prediction_column": "p",
                "features": {"numeric": ["x"]},
                "latency_column": "latency_ms",
                "error_column": "error",
                "reference": {"start": "2026-01-01", "end": "2026-01-08"},
            }
        ]
    }
).models[0]


def _perf(metric: str, level: str, p_value: float) -> Result:
    return Result(
        model="m",
        window_start=WINDOW.start,
        window_end=WINDOW.end,
        kind=Kind.PERFORMANCE,
        metric=metric,
        feature=None,
        value=0.8,
        threshold=0.85,
        status=Status.OK,
        details={
            "level_reached": level,
            "p_value": p_value,
            "reference_value": 0.95,
            "warning": 0.9,
            "labelled_rows": 300,
        },
    )


def test_performance_metrics_are_one_family() -> None:
    """Regression (#16): eight metrics each tested at 0.01 flagged calm hours. p = 0.004 each is
    not enough in a family of eight; p = 1e-6 is, and reads as a sentence."""
    calm = [
        _perf(m, "alert", 0.004)
        for m in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier_score", "calibration_error")
    ]
    judged = judge_performance_family(calm, MODEL)
    assert all(r.status is Status.OK for r in judged)
    assert judged[0].details["reason"] == "degradation not significant"
    assert judged[-1].details["reason"] == "miscalibration not significant"
    real = judge_performance_family([_perf("accuracy", "alert", 1e-6), *calm[1:]], MODEL)
    assert real[0].status is Status.ALERT
    assert real[0].details["reason"].startswith("accuracy: 0.8 ≤ 0.85 (alert), p = 8e-06, 300 labelled rows")
    # An alert's bound with only a warning's evidence is a warning.
    assert judge_performance_family([_perf("accuracy", "alert", 0.003)], MODEL)[0].status is Status.WARNING


def _context(rng: np.random.Generator, rows: int, reference, factor: float = 1.0, errors: float = 0.005):
    frame = pd.DataFrame(
        {
            "x": rng.normal(0, 1, rows),
            "latency_ms": rng.lognormal(np.log(40), 0.5, rows) * factor,
            "error": np.where(rng.random(rows) < errors, "timeout", ""),
        }
    )
    return WindowContext(MODEL, WINDOW, frame, reference, window_model_profile(frame, reference))


@pytest.mark.slow
def test_latency_and_error_rate_noise_of_small_windows_raises_nothing() -> None:
    """Regression (#16): the p99 of 300 latencies is their 3rd largest and moves by a quarter from
    noise alone; an error rate of 0.5% reads 1.5% when three more requests fail."""
    rng = np.random.default_rng(16)
    reference_frame = pd.DataFrame(
        {
            "x": rng.normal(0, 1, 50_000),
            "latency_ms": rng.lognormal(np.log(40), 0.5, 50_000),
            "error": np.where(rng.random(50_000) < 0.005, "timeout", ""),
        }
    )
    reference = fit_model_profile(reference_frame, ["x", "latency_ms"], ["error"])
    flagged = raw_flagged = 0
    windows = 200
    for _ in range(windows):
        context = _context(rng, 300, reference)
        raw = [*latency(context), *error_rate(context)]
        raw_flagged += any(r.details["level_reached"] != "ok" for r in raw)
        flagged += any(r.status in (Status.WARNING, Status.ALERT) for r in judge_operational_family(context, raw))
    assert raw_flagged >= 3, "the levels alone do fire on noise (what the gate is for)"
    assert flagged / windows <= 0.01
    slow = _context(rng, 300, reference, factor=2.0)
    judged = judge_operational_family(slow, latency(slow))
    assert {r.metric: r.status for r in judged}["latency_p99"] is Status.ALERT
    reason = {r.metric: r for r in judged}["latency_p99"].details["reason"]
    assert reason.startswith("latency_ms p99: latency ") and "(alert)" in reason and "x the reference's" in reason


def _estimate(metric: str, level: str, p_value: float, feature: str | None = None) -> Result:
    details = {"level_reached": level, "p_value": p_value, "reference_value": 0.6, "warning": 0.57, "rows": 3_000}
    if feature is not None:
        details |= {"segment": "north", "p_value_bonferroni": details.pop("p_value")}
    return Result(
        model="m",
        window_start=WINDOW.start,
        window_end=WINDOW.end,
        kind=Kind.PERFORMANCE,
        metric=metric,
        feature=feature,
        value=0.5,
        threshold=0.54,
        status=Status.OK,
        details=details,
    )


ESTIMATES = ("estimated_roc_auc", "estimated_accuracy", "estimated_precision", "estimated_f1")


def test_estimates_are_judged_in_the_performance_family() -> None:
    """Regression (#16): each estimate gated on its own at 0.01, alert included, made estimated_recall
    alert in 1.7% of calm 300-row hours. In the family (Holm, alert at alpha / 10), p = 0.004 beside four
    other estimates is nothing, p = 1e-6 is an alert that reads as a sentence."""
    calm = [_estimate("estimated_recall", "alert", 0.004), *(_estimate(m, "ok", 0.5) for m in ESTIMATES)]
    judged = judge_performance_family(calm, MODEL)
    assert [r.status for r in judged] == [Status.OK] * 5
    assert judged[0].details["reason"] == "estimated degradation not significant"
    assert judged[0].details["p_value_adjusted"] == pytest.approx(0.02)
    assert judged[0].details["family_size"] == 5 and judged[0].details["alert_alpha"] == pytest.approx(0.001)
    real = judge_performance_family([_estimate("estimated_recall", "alert", 1e-6), *calm[1:]], MODEL)[0]
    assert real.status is Status.ALERT
    assert real.details["reason"] == (
        "estimated_recall: 0.5 ≤ 0.54 (alert), p = 5e-06, 3,000 scored rows, before labels; reference 0.6"
    )
    # Segment estimates enter with their Bonferroni p-value, as realised segments do.
    segment = judge_performance_family([_estimate("estimated_segment_roc_auc", "warning", 0.002, "region")], MODEL)[0]
    assert segment.status is Status.WARNING
    assert segment.details["reason"].startswith("estimated_segment_roc_auc where region = north: 0.5 ≤ 0.57 (warning)")


def test_estimated_metrics_are_judged_as_their_realised_metric() -> None:
    """``estimated_mae`` is an error (lower is better) and takes ``mae``'s tolerance, as its realised metric."""
    model = parse_config(
        {
            "models": [
                {
                    "name": "r",
                    "table": "t",
                    "timestamp_column": "ts",
                    "task": "regression",
                    "prediction_column": "p",
                    "label_column": "y",
                    "features": {"numeric": ["x"]},
                    "performance": {"tolerance": {"mae": {"warning": 0.2, "alert": 0.4}}},
                    "reference": {"start": "2026-01-01", "end": "2026-01-08"},
                }
            ]
        }
    ).models[0]
    assert lower_is_better("estimated_mae") and lower_is_better("estimated_segment_mae")
    assert not lower_is_better("estimated_segment_roc_auc")
    assert tolerance_for(model, "estimated_mae") == (0.2, 0.4)
    assert tolerance_for(model, "estimated_segment_mae") == (0.2, 0.4)
    assert bound("estimated_mae", 10.0, 0.4) == pytest.approx(14.0)


def test_realised_and_estimated_performance_are_one_window_family() -> None:
    """With labels in, both monitors' tests are one family: a calm window's chance of any performance
    flag stays at alpha, not twice it. The union only takes levels away, and a flagged result keeps
    its likely causes."""
    causes = {"segments": [], "drifted_features": [], "text": "drifted features income (wasserstein 0.4)"}
    realised = _perf("accuracy", "alert", 0.0009)
    realised = replace(realised, details={**realised.details, "likely_causes": causes})
    drift = Result(
        model="m",
        window_start=WINDOW.start,
        window_end=WINDOW.end,
        kind=Kind.DATA_DRIFT,
        metric="psi",
        feature="x",
        value=0.3,
        threshold=0.25,
        status=Status.ALERT,
        details={},
    )
    alone = judge_window_performance([realised, drift], MODEL)
    assert alone[0].status is Status.ALERT and alone[1] is drift
    assert alone[0].details["reason"].endswith("; likely causes: drifted features income (wasserstein 0.4)")
    four = [_estimate(m, "ok", 0.5) for m in ESTIMATES]
    with_four = judge_window_performance([realised, drift, *four], MODEL)
    assert with_four[0].status is Status.WARNING and with_four[0].details["family_size"] == 5
    assert with_four[0].details["reason"].startswith("accuracy: 0.8 ≤ 0.9 (warning), p = 0.0045")
    assert "likely causes: drifted features income" in with_four[0].details["reason"]
    many = [_estimate(m, "ok", 0.5, feature=f"f{i}") for i, m in enumerate(ESTIMATES * 3)]
    with_many = judge_window_performance([realised, *many], MODEL)[0]
    assert with_many.status is Status.OK and with_many.details["reason"] == "degradation not significant"
    assert "likely_causes" not in with_many.details
    # Judging a judged family again gives the same answer.
    again = judge_window_performance(with_four, MODEL)

    def verdicts(results: list[Result]) -> list[tuple[Status, str | None]]:
        return [(r.status, r.details.get("reason")) for r in results]

    assert verdicts(again) == verdicts(with_four)
