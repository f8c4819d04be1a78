"""Late labels, label-relation flips, latency regressions and empty hours, through the real flow."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from prefect.client.orchestration import get_client

from driftline.core.results import Kind, Status
from driftline.flows.monitor import monitor_model
from driftline.storage.outbox import incidents
from driftline.storage.results import load_results
from driftline.storage.runs import load_runs
from driftline.tasks.labels import worse_kinds
from tests.conftest import DAY
from tests.notify.test_slack import FakeSlack

pytestmark = pytest.mark.usefixtures("prefect_api")


def _table(loan_log: dict[str, Any]) -> str:
    return f'"{loan_log["schema"]}"."loan_predictions"'


def _hour(h: int) -> tuple[Any, Any]:
    return DAY + timedelta(hours=h), DAY + timedelta(hours=h + 1)


def _by_key(results: list[Any], kind: Kind) -> dict[tuple[str, str | None], Any]:
    return {(r.metric, r.feature): r for r in results if r.kind == kind}


def test_late_labels_refresh_performance_but_not_drift(
    store: sa.Engine, engine: sa.Engine, loan_log: dict[str, Any], loan_config: Path
) -> None:
    start, end = _hour(9)
    with engine.begin() as connection:  # hour 9's labels have not arrived yet
        connection.execute(
            sa.text(f"UPDATE {_table(loan_log)} SET label = NULL WHERE ts >= :s AND ts < :e"), {"s": start, "e": end}
        )
    monitor_model("loan", end, str(loan_config))
    before = load_results(store, "loan", start, end)
    performance = _by_key(before, Kind.PERFORMANCE)
    assert performance[("accuracy", None)].status == Status.UNKNOWN
    assert "0 labelled rows" in performance[("accuracy", None)].details["reason"]
    with store.connect() as connection:
        drift_stamps = dict(
            connection.execute(
                sa.text(
                    "SELECT metric || ':' || coalesce(feature, ''), computed_at FROM driftline.results "
                    "WHERE model = 'loan' AND kind = 'data_drift' AND window_start = :s"
                ),
                {"s": start},
            ).all()
        )

    # The labels arrive, and they contradict the scores: label = 1 where the score says 0.
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                f"UPDATE {_table(loan_log)} SET label = CASE WHEN score > 0.5 THEN 0 ELSE 1 END "
                "WHERE ts >= :s AND ts < :e"
            ),
            {"s": start, "e": end},
        )
    outcome = monitor_model("loan", end + timedelta(hours=1), str(loan_config))
    assert outcome["refreshed_windows"] == [start.isoformat()]

    after = load_results(store, "loan", start, end)
    refreshed = _by_key(after, Kind.PERFORMANCE)
    assert refreshed[("accuracy", None)].status == Status.ALERT
    assert refreshed[("accuracy", None)].details["labelled_rows"] == 200
    assert refreshed[("roc_auc", None)].status == Status.ALERT
    relation = _by_key(after, Kind.CONCEPT_DRIFT)[("label_rate_by_score", "score")]
    assert relation.status == Status.ALERT and relation.value > 0.5
    assert _by_key(after, Kind.DATA_DRIFT).keys() == _by_key(before, Kind.DATA_DRIFT).keys()
    with store.connect() as connection:
        drift_after = dict(
            connection.execute(
                sa.text(
                    "SELECT metric || ':' || coalesce(feature, ''), computed_at FROM driftline.results "
                    "WHERE model = 'loan' AND kind = 'data_drift' AND window_start = :s"
                ),
                {"s": start},
            ).all()
        )
    assert drift_after == drift_stamps, "a late-label refresh must not rewrite drift rows"
    run = next(r for r in load_runs(store, "loan") if r["window_start"] == start)
    assert run["labelled_rows"] == 200
    # The hour's stored profile carries the late labels too, so a day merged from it sees them.
    with store.connect() as connection:
        profile = connection.execute(
            sa.text("SELECT profile FROM driftline.window_profiles WHERE model = 'loan' AND window_start = :s"),
            {"s": start},
        ).scalar_one()
    assert profile["states"]["performance"]["overall"]["counts"][:2] == [200, 200]  # rows, labelled

    again = monitor_model("loan", end + timedelta(hours=1), str(loan_config))
    assert again["refreshed_windows"] == [], "unchanged coverage is not recomputed"


def test_flipped_relation_alerts_from_the_first_hour(
    store: sa.Engine, engine: sa.Engine, loan_log: dict[str, Any], loan_config: Path
) -> None:
    start, end = _hour(4)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                f"UPDATE {_table(loan_log)} SET label = CASE WHEN score > 0.5 THEN 0 ELSE 1 END "
                "WHERE ts >= :s AND ts < :e"
            ),
            {"s": start, "e": end},
        )
    monitor_model("loan", end, str(loan_config))
    performance = _by_key(load_results(store, "loan", start, end), Kind.PERFORMANCE)
    assert performance[("accuracy", None)].status == Status.ALERT
    assert performance[("accuracy", None)].value < 0.3


def test_latency_regression_and_empty_hour(
    store: sa.Engine, engine: sa.Engine, loan_log: dict[str, Any], loan_config: Path
) -> None:
    slow_start, slow_end = _hour(6)
    with engine.begin() as connection:
        connection.execute(
            sa.text(f"UPDATE {_table(loan_log)} SET latency_ms = latency_ms * 3 WHERE ts >= :s AND ts < :e"),
            {"s": slow_start, "e": slow_end},
        )
        empty_start, empty_end = _hour(7)
        connection.execute(
            sa.text(f"DELETE FROM {_table(loan_log)} WHERE ts >= :s AND ts < :e"), {"s": empty_start, "e": empty_end}
        )
    monitor_model("loan", slow_end, str(loan_config))
    monitor_model("loan", empty_end, str(loan_config))
    monitor_model("loan", DAY + timedelta(hours=3), str(loan_config))

    slow = _by_key(load_results(store, "loan", slow_start, slow_end), Kind.OPERATIONAL)
    assert slow[("latency_p50", "latency_ms")].status == Status.ALERT
    assert slow[("latency_p95", "latency_ms")].details["ratio"] > 2
    assert slow[("row_count", None)].status == Status.OK

    empty = _by_key(load_results(store, "loan", empty_start, empty_end), Kind.OPERATIONAL)
    assert empty[("row_count", None)].status == Status.ALERT and empty[("row_count", None)].value == 0
    assert empty[("minutes_since_last_row", None)].status == Status.ALERT

    calm = load_results(store, "loan", *_hour(2))
    assert not [r for r in calm if r.kind == Kind.OPERATIONAL and r.status != Status.OK], calm


def _result(kind: Kind, status: Status) -> Any:
    from driftline.core.results import Result

    start, end = _hour(9)
    return Result(
        model="loan",
        window_start=start,
        window_end=end,
        kind=kind,
        metric="m",
        feature=None,
        value=0.0,
        threshold=None,
        status=status,
        details={},
    )


def test_worse_kinds_are_the_ones_the_labels_made_worse() -> None:
    perf, concept = Kind.PERFORMANCE, Kind.CONCEPT_DRIFT
    before = [_result(perf, Status.UNKNOWN), _result(concept, Status.ALERT)]
    after = [_result(perf, Status.ALERT), _result(perf, Status.OK), _result(concept, Status.ALERT)]
    assert worse_kinds(before, after) == {perf}, "unknown -> alert is new; alert -> alert is not"
    assert worse_kinds([_result(perf, Status.WARNING)], [_result(perf, Status.ALERT)]) == {perf}
    assert worse_kinds([_result(perf, Status.ALERT)], [_result(perf, Status.WARNING)]) == set()
    assert worse_kinds([], [_result(perf, Status.WARNING)]) == {perf}, "a window never judged before"
    assert worse_kinds([_result(perf, Status.UNKNOWN)], [_result(perf, Status.OK)]) == set()


def _performance_events(since: datetime, window_start: datetime, timeout_s: float) -> list[dict[str, Any]]:
    """``driftline.performance.degraded`` events of ``window_start`` the API holds (polled: ingestion
    is asynchronous), waiting ``timeout_s`` for the first one to appear."""
    body = {
        "filter": {"event": {"name": ["driftline.performance.degraded"]}, "occurred": {"since": since.isoformat()}},
        "limit": 50,
    }
    deadline = time.monotonic() + timeout_s
    while True:
        with get_client(sync_client=True) as client:
            events = client.request("POST", "/events/filter", json=body).json()["events"]
        ours = [e for e in events if e["payload"]["window_start"] == window_start.isoformat()]
        if ours or time.monotonic() > deadline:
            return ours
        time.sleep(0.3)


def test_a_problem_revealed_by_late_labels_notifies_and_emits_its_event_once(
    store: sa.Engine, engine: sa.Engine, loan_log: dict[str, Any], loan_config: Path
) -> None:
    """Labels of hour 9 arrive in two batches, after the hour was judged. The first batch reveals a
    performance alert: one event (what the retrain automation listens to) and one "problem" message.
    The second batch re-evaluates the hour again with the same verdict: nothing new is sent, even
    though hour 11 resolved the incident in between (a second reaction would re-open it)."""
    sink = FakeSlack().start()
    document = yaml.safe_load(loan_config.read_text())
    document["notifications"] = {"webhook": {"url": f"http://127.0.0.1:{sink.port}/hook"}, "reminder_hours": 0}
    loan_config.write_text(yaml.safe_dump(document, sort_keys=False))
    since = datetime.now(UTC) - timedelta(seconds=1)
    start, end = _hour(9)
    table = _table(loan_log)
    try:
        with engine.begin() as connection:  # hour 9 is judged before any of its labels arrive
            connection.execute(
                sa.text(f"UPDATE {table} SET label = NULL WHERE ts >= :s AND ts < :e"), {"s": start, "e": end}
            )
        monitor_model("loan", end, str(loan_config))
        assert _by_key(load_results(store, "loan", start, end), Kind.PERFORMANCE)[("accuracy", None)].status == (
            Status.UNKNOWN
        )
        assert not [p for p in sink.posts("/hook") if p["json"]["kind"] == "performance"]

        flip = f"UPDATE {table} SET label = CASE WHEN score > 0.5 THEN 0 ELSE 1 END WHERE ts >= :s AND ts < :e"
        with engine.begin() as connection:  # the first half of hour 9's labels, contradicting the scores
            connection.execute(sa.text(flip), {"s": start, "e": start + timedelta(minutes=30)})
        first = monitor_model("loan", end + timedelta(hours=1), str(loan_config))
        assert first["refreshed_windows"] == [start.isoformat()]
        refreshed = _by_key(load_results(store, "loan", start, end), Kind.PERFORMANCE)
        assert refreshed[("accuracy", None)].status == Status.ALERT

        performance = [p["json"] for p in sink.posts("/hook") if p["json"]["kind"] == "performance"]
        assert [(p["transition"], p["window_start"]) for p in performance] == [("problem", start.isoformat())]
        (event,) = _performance_events(since, start, timeout_s=15)
        assert event["payload"]["status"] == "alert" and event["resource"]["driftline.model"] == "loan"

        with engine.begin() as connection:  # the rest of hour 9's labels: coverage changes, verdict does not
            connection.execute(sa.text(flip), {"s": start + timedelta(minutes=30), "e": end})
        second = monitor_model("loan", end + timedelta(hours=2), str(loan_config))
        assert second["refreshed_windows"] == [start.isoformat()]
        assert (
            _by_key(load_results(store, "loan", start, end), Kind.PERFORMANCE)[("accuracy", None)].details[
                "labelled_rows"
            ]
            == 200
        )

        performance = [p["json"] for p in sink.posts("/hook") if p["json"]["kind"] == "performance"]
        assert [(p["transition"], p["window_start"]) for p in performance] == [
            ("problem", start.isoformat()),
            ("resolved", (start + timedelta(hours=2)).isoformat()),  # hour 11 is fine again
        ]
        opened = [i for i in incidents(store, "loan") if i["kind"] == "performance"]
        assert [(i["state"], i["opened_window_start"]) for i in opened] == [("resolved", start)]
        # The second refresh sent no event: still exactly one for hour 9 (give a duplicate time to land).
        time.sleep(2)
        assert len(_performance_events(since, start, timeout_s=0)) == 1
    finally:
        sink.stop()
