"""Operational results' one-sentence reasons: latency and error rate read their own level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from driftline.core.results import Kind, Result, Status
from driftline.tasks.operational import with_reason

START = datetime(2026, 3, 3, 14, tzinfo=UTC)


def _result(metric: str, value: float, status: Status, **details: object) -> Result:
    return Result(
        model="loan",
        window_start=START,
        window_end=START + timedelta(hours=1),
        kind=Kind.OPERATIONAL,
        metric=metric,
        feature="latency_ms",
        value=value,
        threshold=0.04,
        status=status,
        details=details,
    )


def test_error_rate_sentence_names_the_level_reached_without_a_label() -> None:
    details = {"warning": 0.015, "p_value_adjusted": 2e-4, "rows": 3000, "errors": 90, "reference_rate": 0.005}
    alert = with_reason(_result("error_rate", 0.03, Status.ALERT, **details))
    assert alert.details["reason"] == (
        "latency_ms error rate: 0.03 ≥ 0.04 (alert), p = 0.0002, 3,000 rows; 90 errors, reference rate 0.005"
    )
    warning = with_reason(_result("error_rate", 0.03, Status.WARNING, **details))
    assert warning.details["reason"].startswith("latency_ms error rate: 0.03 ≥ 0.015 (warning), ")


def test_latency_sentence_and_unflagged_results() -> None:
    details = {"warning": 0.02, "rows": 300, "ratio": 2.5, "reference": 40.0}
    latency = with_reason(_result("latency_p99", 100.0, Status.ALERT, **details))
    assert latency.details["reason"] == "latency_ms p99: latency 100 ≥ 0.04 (alert), 300 rows; 2.5x the reference's 40"
    ok = _result("error_rate", 0.001, Status.OK)
    assert with_reason(ok) is ok
