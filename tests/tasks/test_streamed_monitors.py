"""Built-in monitors on the streamed window: the performance state folded block by block as the COPY
streams gives the same results as the whole window read into a frame."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from driftline.config.monitors import ModelConfig, parse_config
from driftline.core.results import Result
from driftline.core.window import Window
from driftline.stats.model_profile import ModelProfile
from driftline.tasks.context import WindowContext
from driftline.tasks.extract import iter_rows, read_rows
from driftline.tasks.performance import PERFORMANCE_STATE, compute_metrics, evaluate_performance
from driftline.tasks.profiles import fit_reference, profile_window, profiled_columns, stream_window_profile
from tests.conftest import create_log_table, model_entry

T0 = datetime(2026, 5, 4, 8, tzinfo=UTC)
REFERENCE = Window(T0, T0 + timedelta(hours=1))
WINDOW = Window(T0 + timedelta(hours=1), T0 + timedelta(hours=2))


@pytest.fixture
def scored_log(engine: sa.Engine, log_schema: str) -> str:
    """A reference hour of 6,000 rows and a window hour of 15,000, where the model got worse in the
    south (scores uninformative there) and 30% of the labels have not arrived (NULL)."""
    table = create_log_table(engine, log_schema, "scored")
    rng = np.random.default_rng(5)
    rows: list[dict[str, Any]] = []
    for hour, count in ((0, 6_000), (1, 15_000)):
        region = rng.choice(["north", "south", "east", "west"], size=count, p=[0.4, 0.3, 0.2, 0.1])
        score = np.round(rng.uniform(size=count), 6)
        truth = (rng.uniform(size=count) < score).astype(float)
        if hour == 1:
            south = region == "south"
            truth[south] = (rng.uniform(size=int(south.sum())) < 0.5).astype(float)
        label: list[float | None] = list(truth)
        if hour == 1:
            label = [None if u < 0.3 else v for u, v in zip(rng.uniform(size=count), truth, strict=True)]
        start = T0 + timedelta(hours=hour)
        for i in range(count):
            rows.append(
                {
                    "request_id": len(rows) + 1,
                    "ts": start + timedelta(seconds=3599 * i / count),
                    "income": None if i % 53 == 0 else float(rng.normal(50_000, 10_000)),
                    "age": float(rng.integers(18, 80)),
                    "region": None if i % 71 == 0 else str(region[i]),
                    "prediction": float(score[i] > 0.5),
                    "score": float(score[i]),
                    "label": label[i],
                    "latency_ms": float(rng.gamma(3, 10)),
                }
            )
    with engine.begin() as connection:
        connection.execute(table.insert(), rows)
    return f"{log_schema}.scored"


def _model(table: str, **overrides: Any) -> ModelConfig:
    entry = model_entry(
        "scored",
        table,
        reference={"start": REFERENCE.start.isoformat(), "end": REFERENCE.end.isoformat()},
        performance={"min_labels": 50},
        **overrides,
    )
    return parse_config({"models": [entry]}).models[0]


def _same(streamed: Any, whole: Any, where: str) -> None:
    """Equal records: the same keys and text, numbers to float rounding."""
    if isinstance(whole, dict):
        assert isinstance(streamed, dict) and streamed.keys() == whole.keys(), where
        for key in whole:
            _same(streamed[key], whole[key], f"{where}.{key}")
    elif isinstance(whole, list):
        assert isinstance(streamed, list) and len(streamed) == len(whole), where
        for i, (a, b) in enumerate(zip(streamed, whole, strict=True)):
            _same(a, b, f"{where}[{i}]")
    elif isinstance(whole, float) and not isinstance(streamed, bool):
        assert isinstance(streamed, int | float), where
        if math.isnan(whole):
            assert math.isnan(streamed), where
        else:
            assert streamed == pytest.approx(whole, rel=1e-9, abs=1e-12), where
    else:
        assert streamed == whole, where


def _assert_same_results(streamed: list[Result], whole: list[Result]) -> None:
    assert [(r.metric, r.feature, r.status) for r in streamed] == [(r.metric, r.feature, r.status) for r in whole]
    for a, b in zip(streamed, whole, strict=True):
        where = f"{a.metric}/{a.feature}"
        _same(a.value, b.value, where)
        _same(a.threshold, b.threshold, where)
        _same(a.details, b.details, where)


def _never_read() -> Any:
    raise AssertionError("the window's rows were read into a frame")


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_streamed_performance_equals_the_frames(engine: sa.Engine, scored_log: str, task: str) -> None:
    overrides: dict[str, Any] = {} if task == "classification" else {"task": "regression", "score_column": None}
    model = _model(scored_log, **overrides)
    reference = fit_reference(read_rows(engine, model, REFERENCE.start, REFERENCE.end), model)
    reference_perf = reference.extras["performance"]
    frame = read_rows(engine, model, WINDOW.start, WINDOW.end)

    # The frame path as before: no state with the profile, the monitor reads the whole frame.
    whole = evaluate_performance(
        WindowContext(model, WINDOW, frame, reference, ModelProfile(len(frame))), reference_perf
    )

    # Streamed in many small blocks (and as the flow streams it): never a frame.
    numeric, categorical = profiled_columns(model)
    blocks = list(iter_rows(engine, model, WINDOW.start, WINDOW.end, block_bytes=64 << 10, only=numeric + categorical))
    assert len(blocks) > 5
    folded: ModelProfile | None = None
    for block in blocks:
        part = profile_window(block, reference, model)
        folded = part if folded is None else folded.merge(part)
    assert folded is not None and PERFORMANCE_STATE in folded.states
    for current in (folded, stream_window_profile(engine, model, WINDOW, reference)):
        streamed = evaluate_performance(WindowContext(model, WINDOW, _never_read, reference, current), reference_perf)
        _assert_same_results(streamed, whole)

    # Not vacuous: metrics judged, segments compared, and the south's fall found.
    by_metric = {(r.metric, r.feature): r for r in whole}
    primary = "roc_auc" if task == "classification" else "mae"
    assert by_metric[(primary, None)].details["labelled_rows"] == int(frame["label"].notna().sum())
    region = by_metric[(f"segment_{primary}", "region")]
    assert region.details["segment"] == "south" and region.details["segments_compared"] >= 4
    # As stored for days and weeks (ROC AUC on coarser bins): the same verdicts, AUCs within 1e-3.
    stored = ModelProfile.from_json(folded.to_json())
    merged = evaluate_performance(WindowContext(model, WINDOW, _never_read, reference, stored), reference_perf)
    assert [(r.metric, r.feature, r.status) for r in merged] == [(r.metric, r.feature, r.status) for r in whole]
    for a, b in zip(merged, whole, strict=True):
        if a.value is not None:
            assert a.value == pytest.approx(b.value, rel=1e-9, abs=1e-3 if "roc_auc" in a.metric else 1e-12), a.metric
    # And the metrics are still scikit-learn's on the frame's labelled rows.
    expected = compute_metrics(
        model.task, frame["label"], frame["prediction"], frame["score"] if overrides == {} else None
    )
    for metric, value in expected.items():
        _same(by_metric[(metric, None)].value, value, metric)
