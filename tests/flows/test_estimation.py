"""Estimated performance through the real flow: unlabelled hours get estimates, late labels put the
realised metric beside them, a profile-only model streams, and config decides what reacts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sklearn.metrics import roc_auc_score

import driftline.tasks.pipeline as pipeline
from driftline.core.results import Kind, Status
from driftline.flows.monitor import monitor_model
from driftline.storage.results import load_results
from tests.conftest import DAY, model_entry, write_config

pytestmark = pytest.mark.usefixtures("prefect_api")


def _table(loan_log: dict[str, Any]) -> str:
    return f'"{loan_log["schema"]}"."loan_predictions"'


def _estimates(store: sa.Engine, model: str, hour: int) -> dict[tuple[str, str | None], Any]:
    start = DAY + timedelta(hours=hour)
    return {
        (r.metric, r.feature): r
        for r in load_results(store, model, start, start + timedelta(hours=1))
        if r.kind == Kind.PERFORMANCE and r.metric.startswith("estimated_")
    }


def test_unlabelled_hour_gets_estimates_and_late_labels_sit_beside_them(
    store: sa.Engine, engine: sa.Engine, loan_log: dict[str, Any], loan_config: Path
) -> None:
    start = DAY + timedelta(hours=9)
    with engine.begin() as connection:
        connection.execute(
            sa.text(f"UPDATE {_table(loan_log)} SET label = NULL WHERE ts >= :s AND ts < :e"),
            {"s": start, "e": start + timedelta(hours=1)},
        )
    monitor_model("loan", start + timedelta(hours=1), str(loan_config))
    estimates = _estimates(store, "loan", 9)
    assert {m for m, f in estimates if f is None} == {
        "estimated_roc_auc",
        "estimated_accuracy",
        "estimated_precision",
        "estimated_recall",
        "estimated_f1",
    }
    assert {f for _, f in estimates if f is not None} == {"income", "age", "region"}
    accuracy = estimates[("estimated_accuracy", None)]
    assert accuracy.status == Status.OK and accuracy.details["rows"] == 200
    low, high = accuracy.details["band"]
    assert low < accuracy.value < high and accuracy.details["realised"] is None
    realised = {r.metric: r for r in load_results(store, "loan", start, start + timedelta(hours=1))}
    assert realised["accuracy"].status == Status.UNKNOWN  # no labels yet: only the estimate speaks

    # The labels arrive: the refresh keeps the estimates and puts the realised metric beside each.
    arrived = [
        {"id": row["request_id"], "label": row["label"]}
        for row in loan_log["rows"]
        if start <= row["ts"] < start + timedelta(hours=1)
    ]
    with engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE {_table(loan_log)} SET label = :label WHERE request_id = :id"), arrived)
    monitor_model("loan", start + timedelta(hours=2), str(loan_config))
    after = _estimates(store, "loan", 9)
    assert after.keys() == estimates.keys()
    realised = {
        r.metric: r for r in load_results(store, "loan", start, start + timedelta(hours=1)) if r.feature is None
    }
    for metric in ("roc_auc", "accuracy", "f1"):
        beside = after[(f"estimated_{metric}", None)].details
        assert beside["realised"] == pytest.approx(realised[metric].value) and beside["labelled_rows"] == 200
        assert beside["within_band"] == (beside["band"][0] <= beside["realised"] <= beside["band"][1])
    assert after[("estimated_accuracy", None)].value == pytest.approx(accuracy.value)

    # Per segment: each estimated region's ROC AUC sits beside the realised ROC AUC of the same region
    # (scikit-learn on that region's labelled rows of the hour), not beside the realised worst region.
    hour_rows = [row for row in loan_log["rows"] if start <= row["ts"] < start + timedelta(hours=1)]
    region = after[("estimated_segment_roc_auc", "region")].details
    listed = {entry["segment"]: entry for entry in region["segments"]}
    assert listed.keys() == {"north", "south", "east"}  # ~100/60/40 rows: each above the 30-label minimum
    for name, entry in listed.items():
        rows = [row for row in hour_rows if row["region"] == name]
        expected = roc_auc_score([row["label"] for row in rows], [row["score"] for row in rows])
        assert entry["realised"] == pytest.approx(expected) and entry["labelled_rows"] == len(rows)
        assert entry["within_band"] == (entry["band"][0] <= entry["realised"] <= entry["band"][1])
    assert region["realised"] == listed[region["segment"]]["realised"]
    assert region["realised_worst_segment"] in listed


def test_profile_only_model_streams_its_estimates(
    store: sa.Engine, loan_log: dict[str, Any], database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``performance_estimation`` works from the window's profile: with data drift alone, never a frame."""
    streamed = write_config(
        tmp_path / "streamed.yaml",
        [model_entry("loan", loan_log["table"], monitors=[{"name": "data_drift"}, {"name": "performance_estimation"}])],
        database_url,
    )
    whole = write_config(tmp_path / "whole.yaml", [model_entry("loan_whole", loan_log["table"])], database_url)
    end = DAY + timedelta(hours=15)
    monitor_model("loan_whole", end, str(whole))

    def no_frame(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the window's rows were read into a frame")

    monkeypatch.setattr(pipeline, "read_rows", no_frame)  # where every window's frame is read
    monitor_model("loan", end, str(streamed))
    streamed_rows, whole_rows = _estimates(store, "loan", 14), _estimates(store, "loan_whole", 14)
    assert streamed_rows and streamed_rows.keys() == whole_rows.keys()
    for key, result in streamed_rows.items():
        assert result.status == whole_rows[key].status, key
        other = whole_rows[key].value
        assert (result.value is None and other is None) or result.value == pytest.approx(other, rel=1e-12), key
    assert streamed_rows[("estimated_accuracy", None)].value is not None


@pytest.mark.parametrize(("react", "reacts"), [(None, True), ([], False)])
def test_estimated_degradation_reacts_as_configured(
    store: sa.Engine,
    engine: sa.Engine,
    loan_log: dict[str, Any],
    database_url: str,
    tmp_path: Path,
    react: list[str] | None,
    reacts: bool,
) -> None:
    """Hour 10's scores crowd around 0.5 (its labels not in yet): the estimated accuracy alerts; the
    performance event is emitted unless ``performance.estimation.react`` is empty."""
    start = DAY + timedelta(hours=10)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                f"UPDATE {_table(loan_log)} SET score = 0.45 + 0.1 * score, label = NULL WHERE ts >= :s AND ts < :e"
            ),
            {"s": start, "e": start + timedelta(hours=1)},
        )
    # Only the performance monitors: the squeezed scores would also flag score drift (concept drift).
    monitors = [{"name": "performance"}, {"name": "performance_estimation"}]
    entry = model_entry("loan", loan_log["table"], monitors=monitors, performance={"estimation": {"react": react}})
    config = write_config(tmp_path / "monitors.yaml", [entry], database_url)
    outcome = monitor_model("loan", start + timedelta(hours=1), str(config))
    estimates = _estimates(store, "loan", 10)
    assert estimates[("estimated_accuracy", None)].status == Status.ALERT
    assert estimates[("estimated_roc_auc", None)].status == Status.ALERT
    realised = {r.metric: r for r in load_results(store, "loan", start, start + timedelta(hours=1))}
    assert realised["accuracy"].status == Status.UNKNOWN
    sent = outcome["notifications"]["events"] + outcome["notifications"]["events_queued"]
    assert bool(sent) is reacts, outcome["notifications"]
