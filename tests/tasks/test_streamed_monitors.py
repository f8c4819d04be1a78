"""Built-in monitors on the streamed window: the performance state folded block by block as the COPY
streams gives the same results as the whole window read into a frame."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

import driftline.tasks.pipeline as pipeline
from driftline.config.monitors import ModelConfig, parse_config
from driftline.core.results import Kind, Result, Status
from driftline.core.window import Window
from driftline.flows.monitor import monitor_model
from driftline.stats.model_profile import ModelProfile
from driftline.storage.results import load_results
from driftline.tasks.concept import evaluate_concept
from driftline.tasks.context import WindowContext
from driftline.tasks.extract import iter_rows, read_rows
from driftline.tasks.monitors import BUILTIN
from driftline.tasks.operational import evaluate_operational
from driftline.tasks.performance import PERFORMANCE_STATE, compute_metrics, evaluate_performance
from driftline.tasks.profiles import (
    CONCEPT_STATE,
    fit_reference,
    profile_window,
    profiled_columns,
    stream_window_profile,
)
from driftline.tasks.validity import evaluate_validity
from tests.conftest import DAY, create_log_table, model_entry, write_config

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
    reference_perf = reference.fitted.performance
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


def test_streamed_concept_drift_equals_the_frames(engine: sa.Engine, scored_log: str) -> None:
    model = _model(scored_log)
    reference = fit_reference(read_rows(engine, model, REFERENCE.start, REFERENCE.end), model)
    frame = read_rows(engine, model, WINDOW.start, WINDOW.end)
    current = profile_window(frame, reference, model)
    whole_profile = ModelProfile(current.row_count, current.features)  # without states: the frame path
    whole = evaluate_concept(WindowContext(model, WINDOW, frame, reference, whole_profile))
    streamed_profile = stream_window_profile(engine, model, WINDOW, reference)
    assert CONCEPT_STATE in streamed_profile.states
    streamed = evaluate_concept(WindowContext(model, WINDOW, _never_read, reference, streamed_profile))
    _assert_same_results(streamed, whole)
    relation = next(r for r in whole if r.metric == "label_rate_by_score")
    assert relation.value is not None and relation.details["labelled_rows"] == int(frame["label"].notna().sum())
    # Stored and merged (hours into a day): the same counts.
    stored = ModelProfile.from_json(streamed_profile.to_json())
    _assert_same_results(evaluate_concept(WindowContext(model, WINDOW, _never_read, reference, stored)), whole)


def test_streamed_operational_and_validity_equal_the_frames(engine: sa.Engine, scored_log: str) -> None:
    model = _model(scored_log, error_column="region")  # a text column as the error column: north/south/... errors
    reference = fit_reference(read_rows(engine, model, REFERENCE.start, REFERENCE.end), model)
    frame = read_rows(engine, model, WINDOW.start, WINDOW.end)
    current = profile_window(frame, reference, model)
    whole_profile = ModelProfile(current.row_count, current.features)  # without states: the frame path
    streamed_profile = stream_window_profile(engine, model, WINDOW, reference)
    for monitor in (evaluate_operational, evaluate_validity):
        whole = monitor(WindowContext(model, WINDOW, frame, reference, whole_profile, engine))
        streamed = monitor(WindowContext(model, WINDOW, _never_read, reference, streamed_profile, engine))
        _assert_same_results(streamed, whole)
    operational = {
        r.metric: r for r in evaluate_operational(WindowContext(model, WINDOW, frame, reference, current, engine))
    }
    assert operational["row_count"].value == 15_000
    assert operational["latency_p95"].details["rows"] == 15_000 and operational["error_rate"].details["errors"] > 0


@pytest.mark.usefixtures("prefect_api")  # runs the flow: on the harness, not an ephemeral server (and so slow)
def test_every_default_monitor_but_completeness_streams(
    store: sa.Engine, loan_log: dict[str, Any], database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default monitors (completeness aside: Great Expectations still reads the frame) never read
    the window into a frame, and store the same results as the run that does."""
    defaults = [{"name": name} for name, (_, _, default) in BUILTIN.items() if default and name != "completeness"]
    streamed = write_config(
        tmp_path / "streamed.yaml", [model_entry("loan", loan_log["table"], monitors=defaults)], database_url
    )
    # A custom monitor that reads rows makes the same set run on the frame.
    whole = write_config(
        tmp_path / "whole.yaml",
        [model_entry("loan_whole", loan_log["table"], monitors=[*defaults, READS_ROWS])],
        database_url,
    )
    end = DAY + timedelta(hours=15)
    monitor_model("loan_whole", end, str(whole))

    def no_frame(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the window's rows were read into a frame")

    monkeypatch.setattr(pipeline, "read_rows", no_frame)  # where every window's frame is read
    monitor_model("loan", end, str(streamed))
    window = Window.hour_ending(end)
    streamed_rows = [r for r in load_results(store, "loan", window.start, window.end)]
    whole_rows = [r for r in load_results(store, "loan_whole", window.start, window.end) if r.metric != "rows_seen"]
    assert {str(r.kind) for r in streamed_rows} >= {"data_drift", "concept_drift", "performance", "operational"}
    key = lambda r: (str(r.kind), r.metric, r.feature)  # noqa: E731
    _assert_same_results(sorted(streamed_rows, key=key), sorted(whole_rows, key=key))


def rows_seen(context: WindowContext) -> list[Result]:
    """A user monitor that reads the window's rows."""
    return [
        context.result(
            kind=Kind.OPERATIONAL,
            metric="rows_seen",
            feature=None,
            value=float(len(context.frame)),
            threshold=None,
            status=Status.OK,
            details={},
        )
    ]


READS_ROWS = {"name": "rows_seen", "path": f"{__name__}:rows_seen", "kind": "operational"}
