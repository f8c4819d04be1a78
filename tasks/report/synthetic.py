"""Synthetic results in Driftline's record format: for previews, benchmarks and tests of the reports.

``synthetic_results`` fabricates the rows an hourly monitor would store for ``hours`` windows (every
kind; values and details shaped like the real monitors'), with drift from ``drift_from`` on in the
``drifting`` features; ``store_results`` bulk-inserts them (and a run-log row per window) into the
migrated results schema. Nothing here is used by monitoring itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from driftline.config.monitors import MonitorsConfig, parse_config
from driftline.core.results import Kind, Result, Status
from driftline.core.window import Window
from driftline.stats.registry import DEFAULT_METRICS, ColumnKind, get_statistic
from driftline.stats.verdict import Threshold
from driftline.storage.results import store_results

HOUR = timedelta(hours=1)


def _level(value: float, warning: float, alert: float, significant: bool = True) -> Status:
    if not significant:
        return Status.OK
    return Threshold(warning, alert, None).judge(value)


def synthetic_results(
    model: str,
    features: Sequence[tuple[str, ColumnKind]],
    start: datetime,
    hours: int,
    *,
    drift_from: int | None = None,
    drifting: Sequence[str] = (),
    unlabelled_last: int = 6,
    seed: int = 0,
) -> tuple[list[Result], list[dict[str, Any]]]:
    """Results of every kind for ``hours`` windows from ``start``, and the run-log rows."""
    rng = np.random.default_rng(seed)
    results: list[Result] = []
    runs: list[dict[str, Any]] = []
    drifting_set = set(drifting)
    for h in range(hours):
        ws, we = start + h * HOUR, start + (h + 1) * HOUR
        rows = int(rng.poisson(400))
        drifted_now = drift_from is not None and h >= drift_from

        def add(
            kind: Kind,
            metric: str,
            feature: str | None,
            value: float | None,
            threshold: float | None,
            status: Status,
            details: dict[str, Any],
            ws: datetime = ws,
            we: datetime = we,
        ) -> None:
            results.append(
                Result(
                    model=model,
                    window_start=ws,
                    window_end=we,
                    kind=kind,
                    metric=metric,
                    feature=feature,
                    value=value,
                    threshold=threshold,
                    status=status,
                    details=details,
                )
            )

        alerted = []
        for name, kind in features:
            shift = 1.0 if drifted_now and name in drifting_set else 0.0
            for metric in DEFAULT_METRICS[kind]:
                statistic = get_statistic(kind, metric)
                noise = abs(rng.normal(0, statistic.warning / 4))
                value = noise + shift * statistic.alert * rng.uniform(1.2, 2.0)
                p_value = float(np.exp(-50 * value)) if shift else float(rng.uniform(0.05, 1))
                effect_value = value
                details: dict[str, Any] = {
                    "column_kind": kind,
                    "warning": statistic.warning,
                    "alert": statistic.alert,
                    "p_value": p_value,
                    "p_value_adjusted": min(1.0, p_value * len(features)),
                    "alpha": 0.01,
                }
                if statistic.effect == "cohens_w":
                    details |= {"effect": "cohens_w", "effect_value": effect_value}
                    value = effect_value * rows
                status = _level(effect_value, statistic.warning, statistic.alert, p_value * len(features) < 0.01)
                if kind == "numeric":
                    details |= {"reference_mean": 50.0, "window_mean": 50.0 + 10 * shift}
                threshold = statistic.alert if statistic.effect == "statistic" else None
                add(Kind.DATA_DRIFT, metric, name, value, threshold, status, details)
                if status == Status.ALERT:
                    alerted.append(name)
        drifted = sorted(set(alerted))
        share = len(drifted) / len(features)
        add(
            Kind.DATA_DRIFT,
            "drifted_features_share",
            None,
            share,
            0.5,
            _level(share, 0.25, 0.5),
            {"drifted": drifted, "judged_features": len(features), "warning": 0.25, "alert": 0.5},
        )
        general = float(rng.uniform(0.05, 0.15) + 0.4 * share)
        add(
            Kind.DATA_DRIFT,
            "general_drift",
            None,
            general,
            0.7,
            _level(general, 0.5, 0.7),
            {"preset": "mlrun", "potential": 0.5, "detected": 0.7, "features": len(features)},
        )

        labelled = 0 if h >= hours - unlabelled_last else int(rows * rng.uniform(0.85, 1.0))
        coverage = {"labelled_rows": labelled, "rows": rows, "label_coverage": round(labelled / max(rows, 1), 6)}
        for metric, reference in (("accuracy", 0.86), ("roc_auc", 0.91)):
            tolerance = {"warning": 0.05, "alert": 0.10}
            warning_bound, alert_bound = reference * 0.95, reference * 0.90
            details = {
                **coverage,
                "reference_value": reference,
                "tolerance": tolerance,
                "warning": warning_bound,
                "direction": "higher_is_better",
            }
            if labelled < 50:
                add(
                    Kind.PERFORMANCE,
                    metric,
                    None,
                    None,
                    alert_bound,
                    Status.UNKNOWN,
                    {**details, "reason": f"{labelled} labelled rows, fewer than min_labels=50"},
                )
                continue
            value = reference - (0.12 if drifted_now else 0.0) + float(rng.normal(0, 0.01))
            status = Threshold(warning_bound, alert_bound, None, higher_is_worse=False, strict=True).judge(value)
            add(Kind.PERFORMANCE, metric, None, value, alert_bound, status, details)

        relation = float(abs(rng.normal(0.02, 0.01)) + (0.08 if drifted_now else 0.0))
        add(
            Kind.CONCEPT_DRIFT,
            "label_rate_by_score",
            "score",
            relation,
            0.10,
            _level(relation, 0.05, 0.10),
            {"warning": 0.05, "alert": 0.10},
        )
        for name, _kind in features:
            null_share = float(rng.uniform(0, 0.02)) + (0.2 if drifted_now and name == features[-1][0] else 0.0)
            status = Threshold(0.05, 0.05, None, strict=True).judge(null_share)
            add(
                Kind.DATA_QUALITY,
                "expect_column_values_to_not_be_null",
                name,
                null_share,
                0.05,
                status,
                {
                    "expectation": "expect_column_values_to_not_be_null",
                    "kwargs": {"column": name, "mostly": 0.95},
                    "element_count": rows,
                    "unexpected_count": int(null_share * rows),
                    "partial_unexpected_list": [],
                },
            )
        add(
            Kind.DATA_QUALITY,
            "expect_table_row_count_to_be_between",
            None,
            float(rows),
            1.0,
            Status.OK,
            {"expectation": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        )

        low, high = 320.0, 480.0
        volume_status = Status.OK if low <= rows <= high else Status.WARNING
        add(
            Kind.OPERATIONAL,
            "row_count",
            None,
            float(rows),
            low,
            volume_status,
            {"history_hours": 7, "expected": 400.0, "low": low, "high": high},
        )
        for q, reference in ((50, 28.0), (95, 60.0), (99, 80.0)):
            value = reference * float(rng.uniform(0.9, 1.1)) * (1.6 if drifted_now and q == 99 else 1.0)
            ratio = value / reference
            add(
                Kind.OPERATIONAL,
                f"latency_p{q}",
                "latency_ms",
                value,
                reference * 1.5,
                _level(ratio, 1.25, 1.5),
                {"reference": reference, "ratio": ratio, "warning": reference * 1.25, "rows": rows},
            )
        runs.append(
            {
                "model": model,
                "window_start": ws,
                "window_end": we,
                "status": "succeeded",
                "attempts": 1,
                "row_count": rows,
                "duration_s": 0.5,
                "labelled_rows": labelled,
            }
        )
    return results, runs


def sample_frame(
    rng: np.random.Generator,
    numeric: Sequence[str],
    categorical: Sequence[str],
    rows: int,
    start: datetime,
    span: timedelta = HOUR,
    shift: float = 0.0,
    shifted: Sequence[str] = (),
) -> pd.DataFrame:
    """Prediction-log rows: numeric features ~ N(50, 10) (+ ``shift`` x 10 for ``shifted``), 3-level categories."""
    seconds = np.sort(rng.uniform(0, span.total_seconds(), rows))
    data: dict[str, Any] = {"ts": [start + timedelta(seconds=float(s)) for s in seconds]}
    for name in numeric:
        data[name] = rng.normal(50 + (10 * shift if name in shifted else 0.0), 10, rows)
    for name in categorical:
        probabilities = [0.2, 0.3, 0.5] if shift and name in shifted else [0.5, 0.3, 0.2]
        data[name] = rng.choice(["north", "south", "east"], rows, p=probabilities)
    score = rng.uniform(0, 1, rows)
    data |= {
        "prediction": (score > 0.5).astype(float),
        "score": score,
        "label": (rng.uniform(0, 1, rows) < score).astype(float),
        "latency_ms": rng.gamma(3, 10, rows),
    }
    return pd.DataFrame(data)


def seed_sample(
    engine: Engine,
    schema: str,
    numeric: Sequence[str],
    categorical: Sequence[str],
    start: datetime,
    hours: int,
    *,
    model: str = "loan",
    drifting: Sequence[str] = (),
    window_rows: int = 400,
    seed: int = 0,
) -> MonitorsConfig:
    """A model whose results, run log, reference profile and latest window of rows are all stored.

    Creates ``<schema>.predictions`` holding the last window's rows (drifted from mid-period in
    ``drifting``), fits and stores the reference profile from 5,000 synthetic reference rows, and
    stores :func:`synthetic_results` for ``hours`` windows from ``start``. Returns the config.
    """
    from driftline.storage.profiles import store_reference
    from driftline.tasks.profiles import fit_reference

    reference_start = start - timedelta(days=7)
    config = parse_config(
        {
            "models": [
                {
                    "name": model,
                    "table": f"{schema}.predictions",
                    "timestamp_column": "ts",
                    "task": "classification",
                    "features": {"numeric": list(numeric), "categorical": list(categorical)},
                    "prediction_column": "prediction",
                    "score_column": "score",
                    "label_column": "label",
                    "latency_column": "latency_ms",
                    "reference": {"start": reference_start.isoformat(), "end": start.isoformat()},
                }
            ]
        }
    )
    model_config = config.model(model)
    rng = np.random.default_rng(seed)
    reference = sample_frame(rng, numeric, categorical, 5000, reference_start, timedelta(days=7))
    store_reference(
        engine,
        model,
        model_config.reference_definition(),
        Window(reference_start, start),
        fit_reference(reference, model_config),
    )
    last = sample_frame(rng, numeric, categorical, window_rows, start + (hours - 1) * HOUR, shift=1.5, shifted=drifting)
    last.to_sql("predictions", engine, schema=schema, index=False, if_exists="append")
    results, runs = synthetic_results(
        model, model_config.features.items(), start, hours, drift_from=hours // 2, drifting=drifting, seed=seed
    )
    store_results(engine, results, runs)
    return config
