"""Drift engine speed: profile a window on stored reference bins and evaluate every drift statistic.

Data: a 1,000,000-row window x 20 features (15 numeric of varied shapes with ~1% NaN, 5 categorical
of 3-50 categories) against a 200,000-row reference, in memory (the database read is excluded: this
measures what happens after the rows arrive). Prints medians of 5 runs.

    .venv/bin/python bench/drift_speed.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from driftline.config.monitors import parse_config
from driftline.core.window import Window
from driftline.stats.model_profile import fit_model_profile, window_model_profile
from driftline.tasks.drift import evaluate_drift


def synthetic(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    shapes = [
        lambda n: rng.normal(0, 1, n),
        lambda n: rng.lognormal(0, 1, n),
        lambda n: rng.exponential(2, n),
        lambda n: rng.uniform(0, 10, n),
        lambda n: rng.poisson(4, n).astype(float),
    ]
    for i in range(15):
        values = shapes[i % 5](rows) + (shift if i < 3 else 0.0)
        values[rng.uniform(size=rows) < 0.01] = np.nan
        columns[f"n{i:02d}"] = values
    for i, k in enumerate([3, 5, 10, 20, 50]):
        labels = np.array([f"cat{j}" for j in range(k)], dtype=object)
        columns[f"c{i}"] = labels[rng.integers(0, k, rows)]
    return pd.DataFrame(columns)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    numeric = [f"n{i:02d}" for i in range(15)]
    categorical = [f"c{i}" for i in range(5)]
    config = parse_config(
        {
            "models": [
                {
                    "name": "bench",
                    "table": "t",
                    "timestamp_column": "ts",
                    "task": "regression",
                    "prediction_column": "p",
                    "features": {"numeric": numeric, "categorical": categorical},
                    "reference": {"start": "2026-01-01", "end": "2026-01-08"},
                }
            ]
        }
    ).models[0]
    reference = fit_model_profile(synthetic(200_000, 1), numeric, categorical)
    window_frame = synthetic(args.rows, 2, shift=0.5)
    window = Window(datetime(2026, 1, 8, tzinfo=UTC), datetime(2026, 1, 8, 1, tzinfo=UTC))
    profile_times, evaluate_times = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        current = window_model_profile(window_frame, reference)
        t1 = time.perf_counter()
        results = evaluate_drift(config, window, reference, current)
        t2 = time.perf_counter()
        profile_times.append(t1 - t0)
        evaluate_times.append(t2 - t1)
    alerted = sorted({r.feature for r in results if r.status == "alert" and r.feature})
    print(f"window {args.rows:,} rows x 20 features, reference 200,000 rows, median of {args.repeat}")
    print(f"  profile window on reference bins: {statistics.median(profile_times):.3f} s")
    print(f"  evaluate {len(results)} drift results:  {statistics.median(evaluate_times):.3f} s")
    total = statistics.median(profile_times) + statistics.median(evaluate_times)
    print(f"  total:                            {total:.3f} s")
    print(f"  alerted features: {alerted}")


if __name__ == "__main__":
    main()
