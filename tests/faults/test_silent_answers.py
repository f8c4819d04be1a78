"""No silent wrong answer: a broken model or a broken column is reported, never judged `ok` (issue #19).

Each case runs the real ``monitor-model`` flow on a real PostgreSQL log and Prefect API; each failed
before its fix (the window came out ``ok`` with no alert).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from driftline.core.results import Kind, Result, Status
from driftline.flows.monitor import monitor_model
from driftline.storage.results import load_results
from tests.conftest import DAY, REFERENCE_START, create_log_table, model_entry, synthetic_rows, write_config

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.timeout(300)]

HOUR = DAY + timedelta(hours=10)


def _stored(engine: sa.Engine, model: str) -> dict[tuple[str, str, str | None], Result]:
    return {(str(r.kind), r.metric, r.feature): r for r in load_results(engine, model, HOUR, HOUR + timedelta(hours=1))}


def _log(
    engine: sa.Engine, schema: str, name: str, window_rows: list[dict[str, Any]], text_income: bool = False
) -> str:
    """Two days of a normal reference, then ``window_rows`` in the hour at 10:00."""
    table = create_log_table(engine, schema, name)
    if text_income:
        with engine.begin() as connection:
            connection.execute(sa.text(f'ALTER TABLE "{schema}"."{name}" ALTER COLUMN income TYPE text'))
        table = sa.Table(name, sa.MetaData(schema=schema), autoload_with=engine)
    rng = np.random.default_rng(19)
    rows = synthetic_rows(rng, REFERENCE_START, 48, 150)
    if text_income:
        rows = [{**r, "income": f"{r['income']:.2f}"} for r in rows]
    with engine.begin() as connection:
        connection.execute(table.insert(), rows + window_rows)
    return f"{schema}.{name}"


def _window_rows(**change: Any) -> list[dict[str, Any]]:
    rng = np.random.default_rng(23)
    rows = synthetic_rows(rng, HOUR, 1, 300, first_id=10**6)
    return [{**r, **{k: (v(i, r) if callable(v) else v) for k, v in change.items()}} for i, r in enumerate(rows)]


@pytest.mark.parametrize(
    ("case", "change", "metric", "value"),
    [
        ("every score +inf", {"score": float("inf")}, "non_finite_share", 1.0),
        ("every score NaN", {"score": float("nan")}, "non_finite_share", 0.0),
        ("scores are not probabilities", {"score": lambda i, r: r["score"] * 40 - 20}, "out_of_range_share", None),
    ],
    ids=["inf", "nan", "out-of-range"],
)
def test_a_model_emitting_broken_scores_is_an_alert(
    case: str,
    change: dict[str, Any],
    metric: str,
    value: float | None,
    store: sa.Engine,
    log_schema: str,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """#19.1: a model emitting +Infinity (or no finite value) for every score got `ok`: no alert."""
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    table = _log(store, log_schema, "scores", _window_rows(**change))
    config = write_config(tmp_path / "m.yaml", [model_entry("loan", table)], database_url)
    outcome = monitor_model("loan", HOUR + timedelta(hours=1), str(config))
    stored = _stored(store, "loan")
    row = stored[("data_quality", metric, "score")]
    assert row.status == Status.ALERT, (case, row)
    assert row.details.get("reason"), row
    if value is not None:
        assert row.value == pytest.approx(value)
    else:
        assert row.value > 0.9  # 300 scores in [0, 1] stretched to [-20, 20]
    assert outcome["status"] == "alert", (case, outcome)
    assert "score" in outcome["alerts"], outcome
    assert outcome["notifications"]["events"] or outcome["notifications"]["events_queued"], outcome


@pytest.mark.parametrize("monitors", [None, ["data_drift"]], ids=["all-monitors", "drift-only-streamed"])
def test_a_numeric_column_turning_into_text_is_counted_and_drift_is_not_judged_on_the_rest(
    monitors: list[str] | None,
    store: sa.Engine,
    log_schema: str,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """#19.6: 26% garbage in a numeric column stored as text was dropped silently (income judged `ok`)."""
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    garbage = ("n/a", "", "12,5", "—")
    rows = _window_rows(income=lambda i, r: garbage[i % 4] if i % 100 < 26 else f"{r['income']:.2f}")
    table = _log(store, log_schema, "texty", rows, text_income=True)
    entry = model_entry("loan", table) | ({"monitors": [{"name": m} for m in monitors]} if monitors else {})
    config = write_config(tmp_path / "m.yaml", [entry], database_url)
    outcome = monitor_model("loan", HOUR + timedelta(hours=1), str(config))
    stored = _stored(store, "loan")

    income_drift = [r for (kind, _, feature), r in stored.items() if kind == "data_drift" and feature == "income"]
    assert income_drift and all(r.status == Status.UNKNOWN for r in income_drift), income_drift
    assert all("26%" in r.details["reason"] and "not numbers" in r.details["reason"] for r in income_drift)
    assert {r.status for (kind, _, f), r in stored.items() if kind == "data_drift" and f == "age"} <= {
        Status.OK,
        Status.WARNING,
        Status.ALERT,
    }, "a clean column is still judged"
    if monitors is not None:
        # Drift alone streams the window (the profile counts the text block by block): no validity row,
        # and the window is `unknown`, naming income, not `ok`.
        assert outcome["status"] == "unknown" and "income" in outcome["unknown"], outcome
        return
    quality = stored[("data_quality", "non_numeric_share", "income")]
    assert quality.status == Status.ALERT and quality.value == pytest.approx(0.26), quality
    assert quality.details["unparsed_values"] == 78 and "26%" in quality.details["reason"], quality.details
    assert stored[("data_quality", "non_numeric_share", "age")].status == Status.OK
    assert outcome["status"] == "alert" and "income" in outcome["alerts"], outcome


def test_an_unknown_check_is_not_hidden_behind_ok(
    store: sa.Engine, log_schema: str, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#19.1: `unknown` ranked below `ok` in the window's verdict: +inf scores made the score's concept
    drift `unknown` and the window `ok`. Without the validity monitor the window is now `unknown`."""
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    table = _log(store, log_schema, "hidden", _window_rows(score=float("inf")))
    monitors = [{"name": m} for m in ("data_drift", "concept_drift", "operational")]
    config = write_config(tmp_path / "m.yaml", [model_entry("loan", table, monitors=monitors)], database_url)
    outcome = monitor_model("loan", HOUR + timedelta(hours=1), str(config))
    stored = _stored(store, "loan")
    score_rows = [r for (kind, _, f), r in stored.items() if kind == "concept_drift" and f == "score"]
    assert score_rows and {r.status for r in score_rows} == {Status.UNKNOWN}, score_rows
    assert outcome["status"] == "unknown", outcome
    assert "score" in outcome["unknown"], outcome


def test_window_verdict_ranks_unknown_above_ok_except_rows_waiting_for_labels() -> None:
    from driftline.core.results import window_verdict
    from driftline.core.window import Window

    window = Window(HOUR, HOUR + timedelta(hours=1))

    def row(kind: Kind, metric: str, status: Status, **details: Any) -> Result:
        return Result(
            model="m",
            window_start=window.start,
            window_end=window.end,
            kind=kind,
            metric=metric,
            feature="f",
            value=0.0,
            threshold=None,
            status=status,
            details=details,
        )

    ok = row(Kind.DATA_DRIFT, "ks", Status.OK)
    assert window_verdict([ok, row(Kind.DATA_DRIFT, "psi", Status.UNKNOWN)]) == Status.UNKNOWN
    assert window_verdict([ok, row(Kind.DATA_QUALITY, "x", Status.WARNING)]) == Status.WARNING
    waiting = [
        row(Kind.PERFORMANCE, "segment_roc_auc", Status.UNKNOWN),
        row(Kind.CONCEPT_DRIFT, "ks", Status.UNKNOWN, target="label"),
        row(Kind.CONCEPT_DRIFT, "label_rate_by_score", Status.UNKNOWN, target="relation"),
    ]
    assert window_verdict([ok, *waiting]) == Status.OK, "labels arrive late by design"
    assert window_verdict([ok, row(Kind.CONCEPT_DRIFT, "ks", Status.UNKNOWN, target="score")]) == Status.UNKNOWN
    assert window_verdict([ok, row(Kind.PERFORMANCE, "monitor:performance", Status.UNKNOWN)]) == Status.UNKNOWN
    assert window_verdict(waiting) == Status.UNKNOWN, "nothing judged at all"
    assert window_verdict([]) == Status.OK


def test_labels_corrected_in_place_are_re_evaluated(
    store: sa.Engine, engine: sa.Engine, loan_log: dict[str, Any], loan_config: Path
) -> None:
    """#19.7: flipping an hour's labels kept the labelled-row count, so the stored ROC AUC (0.858, ok)
    was never re-evaluated (the truth: 0.142). The refresh now compares a label checksum too."""
    start, end = DAY + timedelta(hours=9), DAY + timedelta(hours=10)
    schema, name = str(loan_log["table"]).split(".")
    table = f'"{schema}"."{name}"'
    first = monitor_model("loan", end, str(loan_config))
    assert first["status"] in ("ok", "warning"), first
    roc = next(r for r in load_results(store, "loan", start, end) if r.metric == "roc_auc" and r.feature is None)
    assert roc.value is not None and roc.value > 0.6, roc
    with engine.begin() as connection:  # a correction: every label of hour 9 flipped, the count unchanged
        flipped = connection.execute(
            sa.text(f"UPDATE {table} SET label = 1 - label WHERE ts >= :s AND ts < :e AND label IS NOT NULL"),
            {"s": start, "e": end},
        ).rowcount
    assert flipped == 200
    outcome = monitor_model("loan", end + timedelta(hours=1), str(loan_config))
    assert outcome["refreshed_windows"] == [start.isoformat()], outcome["refreshed_windows"]
    after = next(r for r in load_results(store, "loan", start, end) if r.metric == "roc_auc" and r.feature is None)
    assert after.value == pytest.approx(1 - roc.value, abs=1e-9), (roc.value, after.value)
    assert after.status == Status.ALERT, after
    # Nothing changed since: the next run refreshes nothing (the checksum was recorded with the refresh).
    again = monitor_model("loan", end + timedelta(hours=2), str(loan_config))
    assert start.isoformat() not in again["refreshed_windows"], again["refreshed_windows"]
