"""How big must a reference be? Detection power and false alarms of the default drift verdicts against
the reference's size, measured — the basis of ``reference.min_rows``'s default.

For each reference size, ``--repeats`` times: a fresh reference of that many rows and a fresh window of
``--window`` rows are drawn (bench/false_alarms.py's five features: normal, lognormal, exponential,
Poisson, a 20-category Zipf-like categorical), and the window is judged exactly as the hourly flow
does (``evaluate_drift``: default metrics, effect floors, BH across features, alpha 0.01):

* unchanged: the window comes from the reference's distributions — a flagged feature is a false alarm;
* shifted: the ``normal`` feature's mean moves by ``--shift`` standard deviations (0.5: a moderate
  shift; KS distance 0.20) — flagging it is a detection.

    .venv/bin/python bench/reference_size.py          # prints a markdown table (seeded: reproducible)
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from driftline.config.monitors import parse_config
from driftline.core.results import Kind, Status
from driftline.core.window import Window
from driftline.stats.model_profile import fit_model_profile, window_model_profile
from driftline.tasks.drift import evaluate_drift

NUMERIC = ["normal", "lognormal", "exponential", "poisson"]
CATEGORIES = np.array([f"c{i:02d}" for i in range(20)], dtype=object)
WEIGHTS = 1 / np.arange(1, 21)
WEIGHTS = WEIGHTS / WEIGHTS.sum()
FLAGGED = (Status.WARNING, Status.ALERT)
RANK = {Status.ALERT: 3, Status.WARNING: 2, Status.OK: 1}


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
    parser.add_argument("--sizes", default="100,250,500,1000,2000,5000,100000")
    parser.add_argument("--window", type=int, default=1000, help="rows per window")
    parser.add_argument("--repeats", type=int, default=200, help="references (and windows) per size")
    parser.add_argument("--shift", type=float, default=0.5, help="mean shift of 'normal', in standard deviations")
    args = parser.parse_args()
    config = parse_config(
        {
            "models": [
                {
                    "name": "size",
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

    def judge(reference: object, frame: pd.DataFrame) -> dict[str, Status]:
        """Worst status per feature (over its metrics)."""
        current = window_model_profile(frame, reference)  # type: ignore[arg-type]
        worst: dict[str, Status] = {}
        for r in evaluate_drift(config, window, reference, current):  # type: ignore[arg-type]
            if r.kind == Kind.DATA_DRIFT and r.feature:
                seen = worst.get(r.feature, Status.UNKNOWN)
                if r.feature not in worst or RANK.get(Status(r.status), 0) > RANK.get(seen, 0):
                    worst[r.feature] = Status(r.status)
        return worst

    print(
        f"window {args.window:,} rows; {args.repeats} references per size; shift {args.shift} sd on 'normal'; "
        "drift.min_rows lowered to 1 so every size is judged"
    )
    print()
    print(
        "| reference rows | false alarms: features flagged, unchanged (warning+alert) | of which alert "
        f"| shift {args.shift} sd detected (warning+alert) | detected as alert | s |"
    )
    print("|---|---|---|---|---|---|")
    config = config.model_copy(update={"drift": config.drift.model_copy(update={"min_rows": 1})})
    for size in [int(s) for s in args.sizes.split(",")]:
        started = time.perf_counter()
        rng = np.random.default_rng(20261202 + size)
        flagged = alerted = detected = detected_alert = 0
        for _ in range(args.repeats):
            reference = fit_model_profile(draw(rng, size), NUMERIC, ["category"])
            unchanged = judge(reference, draw(rng, args.window))
            flagged += sum(s in FLAGGED for s in unchanged.values())
            alerted += sum(s == Status.ALERT for s in unchanged.values())
            shifted = judge(reference, draw(rng, args.window, args.shift))
            detected += shifted.get("normal") in FLAGGED
            detected_alert += shifted.get("normal") == Status.ALERT
        features = args.repeats * 5
        print(
            f"| {size:,} | {flagged / features:.1%} ({flagged}/{features}) | {alerted / features:.1%} "
            f"| {detected / args.repeats:.1%} ({detected}/{args.repeats}) | {detected_alert / args.repeats:.1%} "
            f"| {time.perf_counter() - started:.0f} |"
        )


if __name__ == "__main__":
    main()
