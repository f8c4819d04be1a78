"""The late-label refresh reads only the labelled rows of a past hour, and judges it as a full read would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from driftline.config.monitors import JOINED_LABEL, RESIDUAL
from driftline.core.results import Kind, Result
from driftline.core.window import Window
from driftline.flows.monitor import monitor_window
from driftline.storage.connections import load_run_config, open_databases
from driftline.storage.results import load_results
from driftline.tasks import profiles, relabel
from driftline.tasks.labels import refresh_late_labels
from driftline.tasks.monitors import label_dependent_monitors
from driftline.tasks.performance import PERFORMANCE_STATE
from driftline.tasks.pipeline import WindowJob, evaluate_window, read_window, window_reference
from driftline.tasks.profiles import CONCEPT_STATE
from tests.conftest import DAY, model_entry, write_config

HOUR_9 = Window(DAY + timedelta(hours=9), DAY + timedelta(hours=10))


def _table(loan_log: dict[str, Any]) -> str:
    return f'"{loan_log["schema"]}"."loan_predictions"'


def _partly_labelled_hour(engine: sa.Engine, loan_log: dict[str, Any], config: Path) -> None:
    """Hour 9 monitored with 1 row in 4 labelled, then labels for 1 in 2 arrive (1 in 2 still missing),
    contradicting the scores for some (so the refreshed verdicts differ from the stored ones)."""
    table = _table(loan_log)
    with engine.begin() as connection:
        connection.execute(
            sa.text(f"UPDATE {table} SET label = NULL WHERE ts >= :s AND ts < :e AND request_id % 4 <> 0"),
            {"s": HOUR_9.start, "e": HOUR_9.end},
        )
    monitor_window("loan", HOUR_9.end, str(config), as_tasks=False)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                f"UPDATE {table} SET label = CASE WHEN score > 0.5 THEN 0 ELSE 1 END "
                "WHERE ts >= :s AND ts < :e AND request_id % 4 = 2"
            ),
            {"s": HOUR_9.start, "e": HOUR_9.end},
        )


def _comparable(results: list[Result]) -> list[tuple[Any, ...]]:
    return sorted(
        (str(r.kind), r.metric, r.feature or "", r.value, r.threshold, str(r.status), repr(sorted(r.details.items())))
        for r in results
    )


def _labelled_rows(engine: sa.Engine, loan_log: dict[str, Any]) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.text(f"SELECT count(*) FROM {_table(loan_log)} WHERE ts >= :s AND ts < :e AND label IS NOT NULL"),
                {"s": HOUR_9.start, "e": HOUR_9.end},
            ).scalar_one()
        )


def test_labelled_rows_on_the_stored_hour_give_what_reading_the_whole_hour_gives(
    store: sa.Engine, engine: sa.Engine, loan_log: dict[str, Any], loan_config: Path
) -> None:
    _partly_labelled_hour(engine, loan_log, loan_config)
    config = load_run_config(str(loan_config)).model("loan")
    databases = open_databases(load_run_config(str(loan_config)))
    evaluated = {}
    for source in ("stream", "labelled"):
        job = WindowJob(config, HOUR_9, source=source, seasonal=False)  # type: ignore[arg-type]
        choice = window_reference(databases, job)
        data = read_window(databases, job, choice.profile)
        assert data.source == source
        evaluated[source] = (data, evaluate_window(job, data, choice, label_dependent_monitors(config), databases))
    whole, relabelled = evaluated["stream"][0].current, evaluated["labelled"][0].current
    assert relabelled.row_count == whole.row_count == 200
    assert relabelled.features["label"].to_json() == whole.features["label"].to_json()
    assert relabelled.features["label"].nulls == 200 - _labelled_rows(engine, loan_log) == 100
    for state in (PERFORMANCE_STATE, CONCEPT_STATE):
        assert relabelled.states[state].to_json() == whole.states[state].to_json()
    assert relabelled.states[PERFORMANCE_STATE].segments["region"]  # segments, with their unlabelled rows
    results = {source: _comparable(evaluation.results) for source, (_, evaluation) in evaluated.items()}
    assert results["labelled"] == results["stream"]
    assert {r[0] for r in results["labelled"]} == {str(Kind.PERFORMANCE), str(Kind.CONCEPT_DRIFT)}


@pytest.fixture
def rows_read(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[pd.DataFrame]]:
    """Every block the refresh reads, by the path it took: only the labelled rows, or the whole hour."""
    read: dict[str, list[pd.DataFrame]] = {"labelled": [], "whole": []}

    def counting(real: Any, into: list[pd.DataFrame]) -> Any:
        def iter_rows(*args: Any, **kwargs: Any) -> Iterator[pd.DataFrame]:
            for block in real(*args, **kwargs):
                into.append(block)
                yield block

        return iter_rows

    monkeypatch.setattr(relabel, "iter_rows", counting(relabel.iter_rows, read["labelled"]))
    monkeypatch.setattr(profiles, "iter_rows", counting(profiles.iter_rows, read["whole"]))
    return read


def test_the_refresh_reads_only_labelled_rows_and_stores_what_a_full_read_would(
    store: sa.Engine,
    engine: sa.Engine,
    loan_log: dict[str, Any],
    loan_config: Path,
    rows_read: dict[str, list[pd.DataFrame]],
) -> None:
    _partly_labelled_hour(engine, loan_log, loan_config)
    config = load_run_config(str(loan_config)).model("loan")
    next_hour = Window(HOUR_9.end, HOUR_9.end + timedelta(hours=1))
    rows_read["whole"].clear()

    assert refresh_late_labels(engine, store, config, None, next_hour, notify=False) == [HOUR_9.start.isoformat()]
    labelled = rows_read["labelled"]
    assert rows_read["whole"] == [], "the refresh read the whole hour"
    assert sum(len(block) for block in labelled) == _labelled_rows(engine, loan_log) == 100
    assert all(block["label"].notna().all() for block in labelled)
    refreshed = load_results(store, "loan", HOUR_9.start, HOUR_9.end)
    with store.connect() as connection:
        profile = connection.execute(
            sa.text("SELECT profile FROM driftline.window_profiles WHERE model = 'loan' AND window_start = :s"),
            {"s": HOUR_9.start},
        ).scalar_one()
        # The same labels once more, read the old way: without the stored hour, the whole hour is streamed.
        connection.execute(
            sa.text("DELETE FROM driftline.window_profiles WHERE window_start = :s"), {"s": HOUR_9.start}
        )
        connection.execute(
            sa.text("UPDATE driftline.runs SET labelled_rows = 0, label_checksum = NULL WHERE window_start = :s"),
            {"s": HOUR_9.start},
        )
        connection.commit()
    labelled.clear()
    assert refresh_late_labels(engine, store, config, None, next_hour, notify=False) == [HOUR_9.start.isoformat()]
    assert labelled == [] and sum(len(block) for block in rows_read["whole"]) == 200
    again = load_results(store, "loan", HOUR_9.start, HOUR_9.end)
    label_kinds = (Kind.PERFORMANCE, Kind.CONCEPT_DRIFT)
    assert _comparable([r for r in refreshed if r.kind in label_kinds]) == _comparable(
        [r for r in again if r.kind in label_kinds]
    )
    with store.connect() as connection:
        whole = connection.execute(
            sa.text("SELECT profile FROM driftline.window_profiles WHERE model = 'loan' AND window_start = :s"),
            {"s": HOUR_9.start},
        ).scalar_one()
    assert profile["row_count"] == whole["row_count"] == 200
    assert profile["features"]["label"] == whole["features"]["label"]
    for state in ("performance", "concept"):
        assert profile["states"][state] == whole["states"][state]


def test_rows_logged_into_the_hour_since_it_was_profiled_make_the_refresh_read_it_whole(
    store: sa.Engine,
    engine: sa.Engine,
    loan_log: dict[str, Any],
    loan_config: Path,
    rows_read: dict[str, list[pd.DataFrame]],
) -> None:
    _partly_labelled_hour(engine, loan_log, loan_config)
    with engine.begin() as connection:  # a late row, labelled: the stored hour did not count it
        connection.execute(
            sa.text(
                f"INSERT INTO {_table(loan_log)} (request_id, ts, income, age, region, prediction, score, label, "
                "latency_ms) VALUES (999999, :ts, 50000, 40, 'north', 1, 0.9, 1, 12)"
            ),
            {"ts": HOUR_9.start + timedelta(minutes=30)},
        )
    config = load_run_config(str(loan_config)).model("loan")
    rows_read["whole"].clear()
    refresh_late_labels(engine, store, config, None, Window(HOUR_9.end, HOUR_9.end + timedelta(hours=1)), notify=False)
    assert rows_read["labelled"] == [] and sum(len(block) for block in rows_read["whole"]) == 201


def _both_sources(config_path: Path, model: str) -> dict[str, Any]:
    """Hour 9 read whole (``stream``) and as the refresh reads it (``labelled``), with the label-dependent
    monitors' results on each."""
    config = load_run_config(str(config_path)).model(model)
    databases = open_databases(load_run_config(str(config_path)))
    out = {}
    for source in ("stream", "labelled"):
        job = WindowJob(config, HOUR_9, source=source, seasonal=False)  # type: ignore[arg-type]
        choice = window_reference(databases, job)
        data = read_window(databases, job, choice.profile)
        assert data.source == source
        results = evaluate_window(job, data, choice, label_dependent_monitors(config), databases).results
        out[source] = (data.current, _comparable(results))
    return out


def test_a_regressor_s_residual_and_labels_from_a_labels_table_relabel_as_a_full_read(
    store: sa.Engine,
    engine: sa.Engine,
    loan_log: dict[str, Any],
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    rows_read: dict[str, list[pd.DataFrame]],
) -> None:
    """A regressor (the residual is label - prediction) whose labels arrive in a separate table: the
    ``WHERE`` is on the joined label, and the residual's profile gets the unlabelled rows as nulls."""
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    schema = loan_log["schema"]
    truth = sa.Table(
        "ground_truth",
        sa.MetaData(schema=schema),
        sa.Column("request_id", sa.BigInteger),
        sa.Column("outcome", sa.Float),
    )
    rows = loan_log["rows"]
    hour = [r for r in rows if HOUR_9.start <= r["ts"] < HOUR_9.end]
    with engine.begin() as connection:
        truth.create(connection)
        connection.execute(
            truth.insert(),
            [{"request_id": r["request_id"], "outcome": r["label"]} for r in rows if r["ts"] < DAY]
            + [{"request_id": r["request_id"], "outcome": r["label"]} for r in hour[::4]],
        )
    entry = model_entry(
        "loan_regressor",
        loan_log["table"],
        task="regression",
        prediction_column="score",
        score_column=None,
        label_column=None,
        labels={"table": f"{schema}.ground_truth", "id_column": "request_id", "label_column": "outcome"},
    )
    config_path = write_config(tmp_path / "m.yaml", [entry], database_url)
    monitor_window("loan_regressor", HOUR_9.end, str(config_path), as_tasks=False)
    with engine.begin() as connection:  # half the hour labelled now
        connection.execute(truth.insert(), [{"request_id": r["request_id"], "outcome": 1.0} for r in hour[2::4]])
    rows_read["labelled"].clear()
    both = _both_sources(config_path, "loan_regressor")
    assert sum(len(block) for block in rows_read["labelled"]) == 100
    whole, relabelled = both["stream"][0], both["labelled"][0]
    for column in (JOINED_LABEL, RESIDUAL):
        assert relabelled.features[column].to_json() == whole.features[column].to_json()
    assert relabelled.features[RESIDUAL].nulls == 100
    assert relabelled.states[PERFORMANCE_STATE].to_json() == whole.states[PERFORMANCE_STATE].to_json()
    assert both["labelled"][1] == both["stream"][1]
    assert any(r[1] == "mae" for r in both["labelled"][1])
