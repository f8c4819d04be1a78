"""Days from merged hourly profiles: no rows reread, the same numbers as profiling the day's rows."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from driftline.cli.commands import app
from driftline.config.monitors import load_config
from driftline.core.results import Kind
from driftline.core.window import Window
from driftline.flows.monitor import backfill, monitor_period
from driftline.stats.model_profile import window_model_profile
from driftline.storage.profiles import load_reference
from driftline.storage.results import load_results
from driftline.tasks.context import WindowContext
from driftline.tasks.drift import evaluate_drift
from driftline.tasks.estimation import estimate_results
from driftline.tasks.extract import read_rows
from driftline.tasks.operational import evaluate_period_operational
from driftline.tasks.performance import evaluate_performance
from driftline.tasks.profiles import profile_window
from tests.conftest import DAY

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_day_merges_hourly_profiles(
    store: sa.Engine, engine: sa.Engine, loan_config: Path, loan_log: dict[str, Any]
) -> None:
    backfill("loan", DAY + timedelta(hours=10), DAY + timedelta(hours=14), str(loan_config))
    hourly_before = load_results(store, "loan")
    outcome = monitor_period("loan", "day", DAY, DAY + timedelta(days=1), str(loan_config))
    assert outcome[DAY.isoformat()]["hours"] == 4 and outcome[DAY.isoformat()]["rows"] == 800

    day = load_results(store, "loan", resolution="day")
    assert {r.window_start for r in day} == {DAY} and {r.window_end for r in day} == {DAY + timedelta(days=1)}
    # Data drift, the estimated and realised performance, and the latency percentiles (the hours'
    # sketches merged), folded from the same hourly profiles.
    assert {r.kind for r in day} == {Kind.DATA_DRIFT, Kind.PERFORMANCE, Kind.OPERATIONAL}
    assert all(r.resolution == "day" for r in day)
    # Volume and silence are hourly rules: a day has only the latency percentiles (no error column here).
    assert {r.metric for r in day if r.kind == Kind.OPERATIONAL} == {"latency_p50", "latency_p95", "latency_p99"}
    realised_metrics = {r.metric for r in day if r.kind == Kind.PERFORMANCE and not r.metric.startswith("estimated_")}
    assert {"accuracy", "roc_auc", "segment_roc_auc"} <= realised_metrics

    # The same statistics computed from the four hours' rows, read and profiled directly.
    model = load_config(loan_config).model("loan")
    with store.connect() as connection:
        definition = connection.execute(
            sa.text("SELECT definition FROM driftline.reference_profiles WHERE model = 'loan'")
        ).scalar_one()
    reference = load_reference(store, "loan", definition)
    assert reference is not None
    frame = read_rows(engine, model, DAY + timedelta(hours=10), DAY + timedelta(hours=14))
    period = Window(DAY, DAY + timedelta(days=1))
    direct = {
        (r.metric, r.feature): r
        for r in evaluate_drift(model, period, reference, window_model_profile(frame, reference))
    }
    direct |= {
        (r.metric, r.feature): r
        for r in estimate_results(model, period, reference, profile_window(frame, reference, model), "day")
    }
    whole = profile_window(frame, reference, model)
    context = WindowContext(model, period, frame, reference, whole)
    direct |= {(r.metric, r.feature): r for r in evaluate_performance(context, reference.fitted.performance)}
    direct |= {(r.metric, r.feature): r for r in evaluate_period_operational(context)}
    latencies = frame["latency_ms"].to_numpy(dtype=float)
    for r in day:
        if r.kind == Kind.OPERATIONAL:  # the merged sketch's percentile, within 1% of the rows' own
            exact = float(np.percentile(latencies, int(r.metric.removeprefix("latency_p"))))
            assert r.value is not None and abs(r.value - exact) <= 0.01 * exact, r.metric
            assert r.details["quantile_relative_error"] == 0.01 and r.details["rows"] == 800
    assert ("estimated_roc_auc", None) in direct and ("estimated_segment_roc_auc", "region") in direct
    for r in day:
        expected = direct[(r.metric, r.feature)]
        assert r.status == expected.status, (r.metric, r.feature)
        if r.value is not None:
            # A stored state keeps a segment's ROC AUC on 64 bins (driftline.stats.performance).
            close = 2e-3 if r.metric == "segment_roc_auc" else 1e-12
            assert r.value == pytest.approx(expected.value, rel=1e-9, abs=close), (r.metric, r.feature)

    # Hourly rows are untouched, and a rerun of the day replaces its rows.
    assert len(load_results(store, "loan")) == len(hourly_before)
    monitor_period("loan", "day", DAY, DAY + timedelta(days=1), str(loan_config))
    assert len(load_results(store, "loan", resolution="day")) == len(day)

    printed = CliRunner().invoke(
        app, ["results", "--config", str(loan_config), "--model", "loan", "--format", "json", "--resolution", "day"]
    )
    assert printed.exit_code == 0, printed.output
    assert {r["resolution"] for r in json.loads(printed.stdout)} == {"day"}
    ran = CliRunner().invoke(
        app,
        [
            "run",
            "--config",
            str(loan_config),
            "--resolution",
            "day",
            "--start",
            DAY.isoformat(),
            "--end",
            (DAY + timedelta(days=1)).isoformat(),
        ],
    )
    assert ran.exit_code == 0, ran.output
    assert "loan" in ran.stdout
