"""False alarms on unchanged data, measured: per statistic (``--mode drift``) and per model-window
across every default monitor (``--mode all``, the default).

``--mode all``: one classifier logged at 300, 3,000, 30,000 and 1,000,000 rows/hour (the mean: a
daily volume cycle moves each hour between 0.5x and 1.5x of it), with realistic shapes — a
log-normal income rounded to 100, a Pareto-tailed debt, integer ages, small-integer dependents, a
tenure with a steady 25% NULLs, a 0/1 flag, a Zipf-like region of 300 levels (rare levels: some
never in the reference), a 3-level channel, a calibrated score, its 0/1 prediction, labels drawn
from the score (the newest 6 hours of each day unlabelled), a log-normal latency and a 0.5% error
column. The reference is 7 days of the same process (capped at 1,000,000 rows; 2,000,000 for the
1M-row size). Every window is judged by every default monitor exactly as the hourly flow calls
them — data drift, concept drift, performance, completeness (Great Expectations) and operational —
except that the operational monitor's SQL history query is replaced by the same hour's counts on
28 simulated previous days (the checks themselves are the flow's). A model-window "has an alert"
if any of its results is ``alert``.

    .venv/bin/python bench/false_alarms.py                        # --mode all, markdown tables
    .venv/bin/python bench/false_alarms.py --mode drift --shift 0.25   # detection power, drift only
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from driftline.config.monitors import parse_config
from driftline.core.results import Kind
from driftline.core.window import Window
from driftline.stats.model_profile import fit_model_profile, window_model_profile
from driftline.tasks.drift import evaluate_drift

NUMERIC = ["normal", "lognormal", "exponential", "poisson"]
CATEGORIES = np.array([f"c{i:02d}" for i in range(20)], dtype=object)
WEIGHTS = 1 / np.arange(1, 21)
WEIGHTS = WEIGHTS / WEIGHTS.sum()


def draw(rng: np.random.Generator, rows: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "normal": rng.normal(10 + 2 * shift, 2, rows),
            "lognormal": rng.lognormal(0, 1, rows),
            "exponential": rng.exponential(3, rows),
            "poisson": rng.poisson(3, rows).astype(float),
            "category": CATEGORIES[rng.choice(20, rows, p=WEIGHTS)],
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["all", "drift"], default="all")
    parser.add_argument("--sizes", default=None, help="rows per window (drift) or mean rows per hour (all)")
    parser.add_argument("--windows", default=None, help="windows per size")
    parser.add_argument(
        "--shift",
        type=float,
        default=0.0,
        help="shift the normal feature by this many standard deviations (power, not false alarms)",
    )
    args = parser.parse_args()
    if args.mode == "all":
        run_all(args.sizes or "300,3000,30000,1000000", args.windows or "400,200,96,48", args.shift)
        return
    sizes = [int(s) for s in (args.sizes or "1000,10000,100000,1000000").split(",")]
    counts = [int(s) for s in (args.windows or "200,200,100,30").split(",")]
    config = parse_config(
        {
            "models": [
                {
                    "name": "fa",
                    "table": "t",
                    "timestamp_column": "ts",
                    "task": "regression",
                    "prediction_column": "p",
                    "features": {"numeric": NUMERIC, "categorical": ["category"]},
                    "reference": {"start": "2026-01-01", "end": "2026-01-08"},
                }
            ]
        }
    ).models[0]
    window = Window(datetime(2026, 1, 8, tzinfo=UTC), datetime(2026, 1, 8, 1, tzinfo=UTC))
    print(
        "| window rows | windows | feature-windows | metric rows | alert (feature-window) | alert (metric row) "
        "| warning (metric row) | worst metric |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for size, repeats in zip(sizes, counts, strict=True):
        started = time.perf_counter()
        rng = np.random.default_rng(size)
        reference = fit_model_profile(draw(rng, max(200_000, size)), NUMERIC, ["category"])
        feature_alerts = 0
        statuses: Counter[str] = Counter()
        by_metric: Counter[str] = Counter()
        rows = 0
        shifted_alerts = 0
        for _ in range(repeats):
            current = window_model_profile(draw(rng, size, args.shift), reference)
            results = [
                r for r in evaluate_drift(config, window, reference, current) if r.kind == Kind.DATA_DRIFT and r.feature
            ]
            rows += len(results)
            statuses.update(str(r.status) for r in results)
            by_metric.update(r.metric for r in results if r.status == "alert")
            feature_alerts += len({r.feature for r in results if r.status == "alert"})
            shifted_alerts += any(r.feature == "normal" and r.status == "alert" for r in results)
        feature_windows = repeats * 5
        worst = by_metric.most_common(1)[0] if by_metric else ("-", 0)
        print(
            f"| {size:,} | {repeats} | {feature_windows} | {rows} | {feature_alerts / feature_windows:.2%} "
            f"| {statuses['alert'] / rows:.2%} | {statuses['warning'] / rows:.2%} | {worst[0]} ({worst[1]}) |"
            f"  <!-- {time.perf_counter() - started:.0f} s -->"
        )
        if args.shift:
            caught = shifted_alerts / repeats
            print(f"|   shifted 'normal' by {args.shift} sd: alerted in {caught:.0%} of windows | | | | | | | |")


# ------------------------------------------------------------------------------------------------
# --mode all: every default monitor, per model-window
# ------------------------------------------------------------------------------------------------

REGION_LEVELS = 300
REGIONS = np.array([f"r{i:03d}" for i in range(REGION_LEVELS)], dtype=object)
REGION_WEIGHTS = 1 / np.arange(1, REGION_LEVELS + 1) ** 1.3
REGION_WEIGHTS = REGION_WEIGHTS / REGION_WEIGHTS.sum()
CHANNELS = np.array(["web", "app", "branch"], dtype=object)
REAL_NUMERIC = ["income", "debt", "age", "dependents", "tenure_months", "has_mortgage"]
REAL_CATEGORICAL = ["region", "channel"]
UNLABELLED_NEWEST_HOURS = 6


def volume_factor(hour: int) -> float:
    """The daily cycle: 0.5x at 00:00 UTC, 1.5x at 12:00."""
    return 1.0 - 0.5 * math.cos(2 * math.pi * hour / 24)


def draw_real(rng: np.random.Generator, rows: int, start: datetime, labelled: bool, shift: float = 0.0) -> pd.DataFrame:
    """One hour (or a reference) of the realistic calm log; ``shift`` moves income by that many sds of log."""
    income = np.round(rng.lognormal(10.5 + shift, 0.6, rows), -2)
    debt = np.round((rng.pareto(1.5, rows) + 1) * 1_000)
    age = np.clip(np.round(rng.normal(41, 12, rows)), 18, 90)
    dependents = rng.poisson(1.1, rows).astype(float)
    tenure = np.round(rng.exponential(30, rows))
    tenure[rng.random(rows) < 0.25] = np.nan
    mortgage = (rng.random(rows) < 0.37).astype(float)
    region = REGIONS[rng.choice(REGION_LEVELS, rows, p=REGION_WEIGHTS)]
    channel = CHANNELS[rng.choice(3, rows, p=[0.6, 0.3, 0.1])]
    logit = 0.9 * (np.log(income) - 10.5) / 0.6 - 0.4 * np.log1p(debt / 1_000) + 0.3 * mortgage - 0.2
    score = 1 / (1 + np.exp(-logit))
    label = (rng.random(rows) < score).astype(float)
    if not labelled:
        label[:] = np.nan
    error = np.where(rng.random(rows) < 0.005, "timeout", "")
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(start) + pd.to_timedelta(rng.uniform(0, 3600, rows), unit="s"),
            "income": income,
            "debt": debt,
            "age": age,
            "dependents": dependents,
            "tenure_months": tenure,
            "has_mortgage": mortgage,
            "region": region,
            "channel": channel,
            "score": score,
            "approved": (score >= 0.5).astype(int),
            "defaulted": label,
            "latency_ms": np.round(rng.lognormal(math.log(40), 0.5, rows), 1),
            "error": error,
        }
    )


def real_config() -> Any:
    return parse_config(
        {
            "models": [
                {
                    "name": "calm",
                    "table": "t",
                    "timestamp_column": "ts",
                    "task": "classification",
                    "features": {"numeric": REAL_NUMERIC, "categorical": REAL_CATEGORICAL},
                    "prediction_column": "approved",
                    "score_column": "score",
                    "label_column": "defaulted",
                    "latency_column": "latency_ms",
                    "error_column": "error",
                    "reference": {"start": "2026-01-01", "end": "2026-01-08"},
                }
            ]
        }
    ).models[0]


def judge_window(model: Any, window: Window, frame: pd.DataFrame, reference: Any, history: list[int]) -> list[Any]:
    """Every default monitor on one window, as the hourly flow calls them (operational history given)."""
    from driftline.tasks import operational as op
    from driftline.tasks.concept import evaluate_concept
    from driftline.tasks.context import WindowContext, run_guarded
    from driftline.tasks.monitors import completeness_monitor, performance_monitor
    from driftline.tasks.profiles import profile_window

    current = profile_window(frame, reference, model)
    context = WindowContext(model, window, frame, reference, current)
    results = list(evaluate_drift(model, window, reference, current))
    results += run_guarded(evaluate_concept, context)
    results += run_guarded(performance_monitor, context)
    results += run_guarded(completeness_monitor, context)
    # Newer default monitors (estimated performance before labels, validity), where this tree has them.
    from driftline.tasks import monitors as builtin

    for name in (getattr(builtin, "ESTIMATION_MONITOR", "estimated_performance"), "validity"):
        entry = builtin.BUILTIN.get(name)
        if entry is not None and entry[2]:
            results += run_guarded(entry[1], context)
    # Realised and estimated performance: one family of the window, as the flow judges them.
    from driftline.tasks import performance as perf

    window_family = getattr(perf, "judge_window_performance", None)
    results = window_family(results, model) if window_family else results
    last_row = frame["ts"].max().to_pydatetime() if len(frame) else None
    operational = [op.volume(context, history), *op.latency(context), *op.error_rate(context)]
    operational.append(op.silence(context, last_row))
    # The window-level gate of the operational family (absent before #16: then the raw verdicts).
    gate = getattr(op, "judge_operational_family", None)
    results += gate(context, operational) if gate else operational
    return results


def run_all(sizes_text: str, windows_text: str, shift: float) -> None:
    import warnings

    from driftline.tasks.profiles import fit_reference

    warnings.filterwarnings("ignore")
    sizes = [int(s) for s in sizes_text.split(",")]
    counts = [int(s) for s in windows_text.split(",")]
    model = real_config()
    kinds = [str(k) for k in Kind]
    print("| rows/hour | model-windows | any alert | any warning | " + " | ".join(f"{k} a / w" for k in kinds) + " |")
    print("|---|---|---|---|" + "---|" * len(kinds))
    offenders: dict[int, Counter[str]] = {}
    for size, repeats in zip(sizes, counts, strict=True):
        started = time.perf_counter()
        rng = np.random.default_rng(size + 16)
        reference_rows = min(size * 24 * 7, 2_000_000 if size >= 1_000_000 else 1_000_000)
        reference_frame = draw_real(rng, reference_rows, datetime(2026, 1, 1, tzinfo=UTC), labelled=True)
        reference = fit_reference(reference_frame, model)
        del reference_frame
        any_alert = any_warning = 0
        by_kind: dict[str, Counter[str]] = {k: Counter() for k in kinds}
        offenders[size] = Counter()
        for index in range(repeats):
            start = datetime(2026, 1, 8, tzinfo=UTC) + timedelta(hours=index)
            factor = volume_factor(start.hour)
            rows = int(rng.poisson(size * factor))
            labelled = start.hour < 24 - UNLABELLED_NEWEST_HOURS
            frame = draw_real(rng, rows, start, labelled, shift)
            history = [int(v) for v in rng.poisson(size * factor, 28)]
            results = judge_window(model, Window(start, start + timedelta(hours=1)), frame, reference, history)
            statuses = {str(r.status) for r in results}
            any_alert += "alert" in statuses
            any_warning += "warning" in statuses
            for kind in kinds:
                flagged = {str(r.status) for r in results if str(r.kind) == kind}
                by_kind[kind]["alert"] += "alert" in flagged
                by_kind[kind]["warning"] += "warning" in flagged
            offenders[size].update(
                f"{r.status} {r.kind}:{r.metric}:{r.feature}" for r in results if r.status in ("warning", "alert")
            )
            # Progress on stderr, so a long run (1M rows/hour) can be followed and its partial counts read.
            print(
                f"{size:,} rows/hour: window {index + 1}/{repeats}, {rows:,} rows, any alert {any_alert}, "
                f"any warning {any_warning}, {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        cells = " | ".join(
            f"{by_kind[k]['alert'] / repeats:.1%} / {by_kind[k]['warning'] / repeats:.1%}" for k in kinds
        )
        print(
            f"| {size:,} | {repeats} | {any_alert / repeats:.2%} | {any_warning / repeats:.2%} | {cells} |"
            f"  <!-- reference {reference_rows:,} rows; {time.perf_counter() - started:.0f} s -->",
            flush=True,
        )
        if offenders[size]:
            print(f"<!-- {size:,} rows/hour, flagged results: {dict(offenders[size].most_common(8))} -->", flush=True)


if __name__ == "__main__":
    main()
