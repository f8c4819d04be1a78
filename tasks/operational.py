"""Operational health of a window (kind ``operational``).

* ``row_count`` against the volume expected for that hour of day, learned from the same hour on the
  previous ``history_days`` days (median +- ``volume_band_mads`` scaled MADs, never narrower than a
  Poisson band). An empty window is always an alert.
* ``latency_p50/p95/p99`` against the reference's percentiles (ratio levels). The window's
  percentiles come from a mergeable quantile sketch within 1% (relative) of the exact ones
  (``details.quantile_relative_error``); negative or infinite latencies are rejected from them and
  counted (``details.latency_rejected``), NULL and text are skipped.
* ``error_rate`` (rows whose error column is set) against the reference's error rate.
* ``minutes_since_last_row`` at the window's end.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, timedelta
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy import stats

from driftline.core.results import Kind, Result, Status
from driftline.core.window import optional_instant
from driftline.stats.checks import OperationalState
from driftline.stats.model_profile import ModelProfile, numeric_values
from driftline.stats.profile import CategoricalProfile, NumericProfile
from driftline.stats.sketch import QuantileSketch
from driftline.stats.verdict import Threshold, format_number, judge_family, reason_sentence
from driftline.tasks.context import WindowContext
from driftline.tasks.extract import log_table

PERCENTILES = (50, 95, 99)
NO_ERROR_VALUES = {"", "0", "0.0", "false", "False", "FALSE", "none", "None", "null", "ok", "OK"}


def hourly_history(context: WindowContext) -> tuple[list[int], Any]:
    """Row counts of the same hour of day on each previous day in the history range, and the last row time.

    Days before the log's first row are not history (the model was not serving yet).
    """
    model, window = context.model, context.window
    assert context.data_engine is not None
    table = log_table(model)
    ts = table.c[model.timestamp_column]
    since = window.start - timedelta(days=model.operational.history_days)
    hour = sa.func.date_trunc("hour", sa.func.timezone("UTC", ts))
    counts = (
        sa.select(hour.label("hour"), sa.func.count().label("n"))
        .where(ts >= since, ts < window.start)
        .where(sa.extract("hour", sa.func.timezone("UTC", ts)) == window.start.hour)
        .group_by(hour)
    )
    with context.data_engine.connect() as connection:
        # Hours and naive timestamps (a `timestamp` column) are read as UTC whatever the session's zone.
        connection.execute(sa.text("SET LOCAL TIME ZONE 'UTC'"))
        found = {row.hour.replace(tzinfo=UTC): row.n for row in connection.execute(counts)}
        first = optional_instant(connection.execute(sa.select(sa.func.min(ts))).scalar())
        last = optional_instant(connection.execute(sa.select(sa.func.max(ts)).where(ts < window.end)).scalar())
    history = []
    for days_back in range(1, model.operational.history_days + 1):
        start = window.start - timedelta(days=days_back)
        if first is None or start + timedelta(hours=1) <= first:
            continue
        history.append(int(found.get(start, 0)))
    return history, last


def expected_band(history: list[int], mads: float) -> tuple[float, float, float]:
    """(median, low, high): median +- ``mads`` x 1.4826 x MAD, at least +- ``mads`` x sqrt(median)."""
    values = np.asarray(history, dtype=float)
    median = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - median)))
    half = mads * max(spread, math.sqrt(max(median, 1.0)))
    return median, max(median - half, 0.0), median + half


#: Key of the window's operational state in ``ModelProfile.states``.
OPERATIONAL_STATE = "operational"


def operational_state(frame: pd.DataFrame, model: Any) -> OperationalState:
    """The operational state of some rows of a window (a block or all of them): the latencies'
    quantile sketch (NULL and text skipped, negative or infinite ones rejected and counted)."""
    latency = QuantileSketch()
    if model.latency_column and model.latency_column in frame:
        latency = QuantileSketch.of(numeric_values(frame[model.latency_column]))
    errors, error_rows = 0, 0
    if model.error_column and model.error_column in frame:
        errors, error_rows = _error_share(frame[model.error_column])
    return OperationalState(len(frame), latency, errors, error_rows)


def _state(context: WindowContext) -> OperationalState:
    """The state folded with the window's profile, else (a caller's own context) counted on the frame."""
    state = context.current.states.get(OPERATIONAL_STATE) if isinstance(context.current, ModelProfile) else None
    if isinstance(state, OperationalState) and state.latency is not None:
        return state
    return operational_state(context.frame, context.model)


def volume(context: WindowContext, history: list[int], state: OperationalState | None = None) -> Result:
    cfg = context.model.operational
    n = (state or _state(context)).rows
    details: dict[str, Any] = {"history_hours": len(history)}
    if len(history) >= cfg.min_history:
        median, low, high = expected_band(history, cfg.volume_band_mads)
        details |= {"expected": median, "low": low, "high": high}
        if n == 0:
            status, reason = Status.ALERT, "no rows logged in this window"
        elif n < low:
            # Below the band a warning, below half its lower edge an alert.
            status = Threshold(low, low / 2, None, higher_is_worse=False, strict=True).judge(float(n))
            reason = f"fewer rows than expected ({low:.0f})"
        elif n > high:
            status, reason = Status.WARNING, f"more rows than expected ({high:.0f})"
        else:
            status, reason = Status.OK, None
        threshold: float | None = low
    else:
        threshold = None
        status, reason = (
            (Status.ALERT, "no rows logged in this window")
            if n == 0
            else (Status.OK, f"only {len(history)} hours of history; band needs {cfg.min_history}")
        )
    if reason:
        details["reason"] = reason
    return context.result(
        kind=Kind.OPERATIONAL,
        metric="row_count",
        feature=None,
        value=float(n),
        threshold=threshold,
        status=status,
        details=details,
    )


def _reference_percentile(profile: NumericProfile, q: float) -> float:
    """Percentile from the reference's quantile bins (exact at bin edges, linear inside a bin)."""
    cdf = np.concatenate([[0.0], np.cumsum(profile.counts[1:-1]) / max(profile.counts[1:-1].sum(), 1)])
    return float(np.interp(q / 100, cdf, profile.edges))


def latency(context: WindowContext, state: OperationalState | None = None) -> list[Result]:
    model, cfg = context.model, context.model.operational
    column = model.latency_column
    if not column:
        return []
    reference = context.reference.features.get(column) if context.reference else None
    sketch = (state or _state(context)).latency
    assert sketch is not None
    # How the percentiles were taken, on every latency result (the rule for invalid values too).
    accuracy = {"quantile_relative_error": sketch.relative_accuracy, "latency_rejected": sketch.rejected}
    results = []
    for q in PERCENTILES:
        metric = f"latency_p{q}"
        if sketch.count == 0 or not isinstance(reference, NumericProfile) or reference.n == 0:
            why = "no latency values in the window" if sketch.count == 0 else "no reference latency"
            results.append(
                context.result(
                    kind=Kind.OPERATIONAL,
                    metric=metric,
                    feature=column,
                    value=None,
                    threshold=None,
                    status=Status.UNKNOWN,
                    details={"reason": why} | accuracy,
                )
            )
            continue
        current = sketch.quantile(q)
        baseline = _reference_percentile(reference, q)
        ratio = current / baseline if baseline > 0 else math.inf
        status = latency_threshold(context).judge(ratio)
        # Is the window's q-th percentile above the reference's, beyond chance? Under an unchanged
        # distribution the count of values above the reference percentile is Binomial(n, 1 - q/100).
        # The count comes from the sketch: exact but for the values within 1% of the baseline.
        above = round(sketch.count_above(baseline))
        p_value = float(stats.binom.sf(above - 1, sketch.count, 1 - q / 100))
        results.append(
            context.result(
                kind=Kind.OPERATIONAL,
                metric=metric,
                feature=column,
                value=current,
                threshold=baseline * cfg.latency_alert_ratio,
                status=status,
                details={
                    "reference": baseline,
                    "ratio": ratio,
                    "warning": baseline * cfg.latency_warning_ratio,
                    "rows": sketch.count,
                    "rows_above_reference": above,
                    "p_value": p_value,
                    "test": "binomial_quantile",
                    "level_reached": str(status),
                }
                | accuracy,
            )
        )
    return results


def _error_share(values: pd.Series) -> tuple[int, int]:
    present = values.dropna().astype(str).str.strip()
    return int((~present.isin(NO_ERROR_VALUES)).sum()), len(values)


def _reference_error_rate(profile: CategoricalProfile, rows: int) -> float:
    errors = sum(count for category, count in profile.counts.items() if category.strip() not in NO_ERROR_VALUES)
    return errors / rows if rows else 0.0


def error_rate(context: WindowContext, state: OperationalState | None = None) -> list[Result]:
    model, cfg = context.model, context.model.operational
    column = model.error_column
    if not column:
        return []
    state = state or _state(context)
    errors, rows = state.errors, state.error_rows
    if rows == 0:
        return [
            context.result(
                kind=Kind.OPERATIONAL,
                metric="error_rate",
                feature=column,
                value=None,
                threshold=None,
                status=Status.UNKNOWN,
                details={"reason": "no rows in the window"},
            )
        ]
    rate = errors / rows
    reference = context.reference.features.get(column) if context.reference else None
    baseline = (
        _reference_error_rate(reference, context.reference.row_count)
        if isinstance(reference, CategoricalProfile) and context.reference
        else 0.0
    )
    increase = rate - baseline
    status = Threshold(cfg.error_rate_warning, cfg.error_rate_alert, None).judge(increase)
    # More errors than the reference rate explains? One-sided binomial test.
    p_value = float(stats.binom.sf(errors - 1, rows, baseline)) if baseline > 0 else (0.0 if errors else 1.0)
    return [
        context.result(
            kind=Kind.OPERATIONAL,
            metric="error_rate",
            feature=column,
            value=rate,
            threshold=baseline + cfg.error_rate_alert,
            status=status,
            details={
                "errors": errors,
                "rows": rows,
                "reference_rate": baseline,
                "warning": baseline + cfg.error_rate_warning,
                "p_value": p_value,
                "test": "binomial",
                "level_reached": str(status),
            },
        )
    ]


def silence(context: WindowContext, last_row: Any) -> Result:
    cfg = context.model.operational
    if last_row is None:
        return context.result(
            kind=Kind.OPERATIONAL,
            metric="minutes_since_last_row",
            feature=None,
            value=None,
            threshold=cfg.max_silence_minutes,
            status=Status.ALERT,
            details={"reason": "the log has no rows before the window end"},
        )
    minutes = (context.window.end - last_row).total_seconds() / 60
    status = Threshold(cfg.max_silence_minutes, cfg.max_silence_minutes, None, strict=True).judge(minutes)
    return context.result(
        kind=Kind.OPERATIONAL,
        metric="minutes_since_last_row",
        feature=None,
        value=minutes,
        threshold=cfg.max_silence_minutes,
        status=status,
        details={"last_row": last_row.isoformat()},
    )


def latency_threshold(context: WindowContext) -> Threshold:
    cfg = context.model.operational
    return Threshold(cfg.latency_warning_ratio, cfg.latency_alert_ratio, None)


_LEVEL_INDEX = {"ok": 0.0, "warning": 1.0, "alert": 2.0}


def judge_operational_family(context: WindowContext, results: list[Result]) -> list[Result]:
    """The window-level family of the operational checks that have a test (latency percentiles, error
    rate): their p-values are Holm-adjusted together and a level counts only if the adjusted p-value
    is below its alpha (the model's ``drift.alpha`` for a warning, its alert alpha for an alert).

    Why: the 99th percentile of 300 latencies is the 3rd largest; it moves by a quarter from noise
    alone in a few hours out of a hundred, and an error rate of 0.5% reads 1.5% when 3 more requests
    fail. Volume and silence are rules (a robust band, a gap) and keep their own verdicts.
    """
    drift = context.model.drift
    family = Threshold(1.0, 2.0, drift.alpha, drift.alert_alpha)
    members = [i for i, r in enumerate(results) if "level_reached" in r.details]
    statuses, adjusted = judge_family(
        [_LEVEL_INDEX[results[i].details["level_reached"]] for i in members],
        [results[i].details.get("p_value") for i in members],
        [family] * len(members),
    )
    out = list(results)
    for i, status, p_adj in zip(members, statuses, adjusted, strict=True):
        r = results[i]
        details = dict(r.details) | {"p_value_adjusted": p_adj, **family.as_details()}
        details |= {"warning": r.details.get("warning"), "alert": r.threshold}
        if status is Status.OK and r.details["level_reached"] != "ok":
            details["reason"] = "increase not significant"
        out[i] = replace(r, status=status, details=details)
    return [with_reason(r) for r in out]


def with_reason(r: Result) -> Result:
    """A flagged operational result with its one sentence in ``details.reason``."""
    if r.status not in (Status.WARNING, Status.ALERT):
        return r
    d = r.details
    if r.metric.startswith("latency_p"):
        text = _level_sentence(r, f"{r.feature} {r.metric.removeprefix('latency_')}", "latency")
        text += f"; {format_number(d.get('ratio'))}x the reference's {format_number(d.get('reference'))}"
    elif r.metric == "error_rate":
        text = _level_sentence(r, f"{r.feature} error rate", "")
        text += f"; {d.get('errors', 0):,} errors, reference rate {format_number(d.get('reference_rate'))}"
    elif r.metric == "row_count":
        expected = d.get("expected")
        text = f"row count: {format_number(r.value)} rows ({r.status})"
        if expected is not None:
            text += (
                f", expected {format_number(expected)} (band {format_number(d.get('low'))}–"
                f"{format_number(d.get('high'))}) from the same hour on {d.get('history_hours')} previous days"
            )
        if d.get("reason"):
            text += f"; {d['reason']}"
    elif r.metric == "minutes_since_last_row":
        text = (
            f"silence: {format_number(r.value)} minutes since the last row ≥ {format_number(r.threshold)} ({r.status})"
            if r.value is not None
            else f"silence: {d.get('reason', 'no rows')} ({r.status})"
        )
    else:
        return r
    return replace(r, details=dict(d) | {"reason": text, **({"rule": d["reason"]} if d.get("reason") else {})})


def _level_sentence(r: Result, subject: str, label: str) -> str:
    """The sentence of a latency or error-rate result judged against its warning/alert levels
    (``details.warning``, ``threshold``; a missing level reads ``nan``)."""
    d = r.details
    levels = Threshold(_or_nan(d.get("warning")), _or_nan(r.threshold))
    return reason_sentence(
        subject=subject,
        label=label,
        value=r.value,
        status=r.status,
        threshold=levels,
        pvalue=d.get("p_value_adjusted"),
        rows=d.get("rows"),
    )


def _or_nan(level: float | None) -> float:
    return math.nan if level is None else float(level)


def evaluate_period_operational(context: WindowContext) -> list[Result]:
    """A day or week from its merged hourly states (no rows): the latency percentiles from the hours'
    sketches merged, and the error rate, judged as one family like an hour's. Volume and silence are
    hourly rules and are not repeated. No results when an hour's stored state lacks the sketch (stored
    before it existed): the period's latencies are then unknown, not partial."""
    state = context.current.states.get(OPERATIONAL_STATE) if context.current is not None else None
    if not isinstance(state, OperationalState) or state.latency is None:
        return []
    return judge_operational_family(context, [*latency(context, state), *error_rate(context, state)])


def evaluate_operational(context: WindowContext) -> list[Result]:
    history, last_row = hourly_history(context)
    state = _state(context)
    results = [
        volume(context, history, state),
        *latency(context, state),
        *error_rate(context, state),
        silence(context, last_row),
    ]
    return judge_operational_family(context, results)
