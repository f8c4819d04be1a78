"""False alarms of the default drift verdicts on unchanged data, measured.

For each window size, windows are drawn from the same distributions as the reference (no drift) and
judged exactly as the hourly flow does (``evaluate_drift``: BH across the window's features, effect
floors, alpha 0.01). Features: normal, lognormal, exponential, Poisson (discrete) and a Zipf-like
categorical of 20 categories. Reference: 200,000 rows (1,000,000 for 1M-row windows).

    .venv/bin/python bench/false_alarms.py            # prints a markdown table
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from driftline.config import parse_config
from driftline.results import Kind
from driftline.stats.model_profile import fit_model_profile, window_model_profile
from driftline.tasks.drift import evaluate_drift
from driftline.window import Window

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
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--windows", default="200,200,100,30", help="windows per size")
    parser.add_argument(
        "--shift",
        type=float,
        default=0.0,
        help="shift the normal feature by this many standard deviations (power, not false alarms)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    counts = [int(s) for s in args.windows.split(",")]
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


if __name__ == "__main__":
    main()
