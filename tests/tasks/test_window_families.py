"""Window-level families for performance, operational and data-quality checks (#16 item 2)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from driftline.config.monitors import parse_config
from driftline.core.results import Kind, Result, Status
from driftline.core.window import Window
from driftline.stats.model_profile import fit_model_profile, window_model_profile
from driftline.tasks.context import WindowContext
from driftline.tasks.operational import error_rate, judge_operational_family, latency
from driftline.tasks.performance import judge_performance_family

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
        "m",
        WINDOW.start,
        WINDOW.end,
        Kind.PERFORMANCE,
        metric,
        None,
        0.8,
        0.85,
        Status.OK,
        {"level_reached": level, "p_value": p_value, "reference_value": 0.95, "warning": 0.9, "labelled_rows": 300},
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
