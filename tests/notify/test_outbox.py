"""Events on a real Prefect API (test harness), the outbox when the API is down, and the incident rules."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from driftline.config.notifications import NotificationsConfig, WebhookChannel
from driftline.core.results import Kind, Result, Status
from driftline.storage.outbox import incidents, outbox_messages
from driftline.tasks.events import build_window_events, emit_window_events
from driftline.tasks.notify import confirm_events, deliver_outbox, plan_notifications
from tests.notify.test_slack import MY_TABLES, FakeSlack, drift_results, free_port, window_at


@pytest.fixture
def clean(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {MY_TABLES}"))
    return engine


@pytest.fixture
def fake_hook() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


def read_events(prefix: str, ids: list[Any], timeout_s: float = 15) -> list[dict[str, Any]]:
    """The events with these ids, as the API stored them (ingestion is asynchronous: poll, bounded).
    Other tests in the session emit Driftline events too, so only ours are returned."""
    wanted = {str(i) for i in ids}
    body = {
        "filter": {
            "event": {"prefix": [prefix]},
            "id": {"id": sorted(wanted)},
            "occurred": {"since": "2020-01-01T00:00:00Z"},
        },
        "limit": 50,
    }
    deadline = time.monotonic() + timeout_s
    while True:
        with get_client(sync_client=True) as client:
            events = client.request("POST", "/events/filter", json=body).json()["events"]
        ours = [e for e in events if str(e["id"]) in wanted]
        if len(ours) >= len(wanted) or time.monotonic() > deadline:
            return ours
        time.sleep(0.3)


@pytest.mark.usefixtures("prefect_api")
def test_window_events_reach_prefect_and_queued_ones_are_sent_later(clean: sa.Engine) -> None:
    window = window_at(14)
    results = drift_results(window, Status.ALERT) + [
        Result(
            model="loan",
            window_start=window.start,
            window_end=window.end,
            kind=Kind.PERFORMANCE,
            metric="roc_auc",
            feature=None,
            value=0.61,
            threshold=0.7,
            status=Status.WARNING,
            details={},
        ),
    ]
    ids = emit_window_events("loan", window, results, "00000000-0000-0000-0000-000000000001", outbox_engine=clean)
    assert len(ids) == 2, "data_drift (alert) and performance (warning); operational is ok"
    stored = {e["event"]: e for e in read_events("driftline.", ids)}
    assert set(stored) == {"driftline.data_drift.detected", "driftline.performance.degraded"}
    drift = stored["driftline.data_drift.detected"]
    assert drift["resource"] == {
        "prefect.resource.id": "driftline.model.loan",
        "driftline.model": "loan",
        "driftline.kind": "data_drift",
        "driftline.status": "alert",
    }
    assert drift["payload"]["window_start"] == window.start.isoformat() and drift["payload"]["status"] == "alert"
    assert [(w["feature"], w["metric"]) for w in drift["payload"]["worst"]] == [("income", "psi"), ("income", "ks")]
    # Kept in the outbox until read back from the API (a server killed after its acknowledgement
    # loses events: tests/faults/test_event_durability.py); then delivered.
    assert {r["status"] for r in outbox_messages(clean)} == {"pending"}
    assert confirm_events(clean, wait_s=30) == {"confirmed": 2, "unconfirmed": 0}
    assert {r["status"] for r in outbox_messages(clean)} == {"delivered"}

    # The API goes away: the next window's event waits in the outbox, then is sent once it is back.
    later_window = window_at(15)
    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        queued = emit_window_events(
            "loan", later_window, drift_results(later_window, Status.ALERT), outbox_engine=clean
        )
    (row,) = outbox_messages(clean, status="pending")
    assert queued == [row["payload"]["id"]] and row["channel"] == "event" and row["attempts"] == 1
    outcome = deliver_outbox(clean, {"loan": None}, "loan", datetime.now(UTC) + timedelta(hours=1))
    assert outcome["retry_later"] == 1 and "sent again" in outcome["errors"][0], "sent; not yet read back"
    assert confirm_events(clean, wait_s=30) == {"confirmed": 1, "unconfirmed": 0}
    ids_stored = {str(e["id"]) for e in read_events("driftline.data_drift", queued)}
    assert str(queued[0]) in ids_stored


def test_events_only_for_warning_and_alert_kinds() -> None:
    window = window_at(3)
    ok = drift_results(window, Status.OK)
    assert build_window_events("loan", window, ok) == []
    unknown = [
        Result(
            model="loan",
            window_start=window.start,
            window_end=window.end,
            kind=Kind.DATA_DRIFT,
            metric="ks",
            feature="income",
            value=None,
            threshold=0.2,
            status=Status.UNKNOWN,
            details={"reason": "window has 0 rows"},
        )
    ]
    assert build_window_events("loan", window, unknown) == []
    (event,) = build_window_events("loan", window, drift_results(window, Status.WARNING), "run-1")
    assert event["event"] == "driftline.data_drift.detected" and event["resource"]["driftline.status"] == "warning"
    assert event["related"] == [{"prefect.resource.id": "prefect.flow-run.run-1", "prefect.resource.role": "flow-run"}]


def test_incident_rules(clean: sa.Engine, fake_hook: FakeSlack) -> None:
    """unknown keeps an incident open; an older window does not move it; warning->alert escalates."""
    config = NotificationsConfig(
        min_status="warning",
        reminder_hours=0,
        webhook=WebhookChannel(url=f"http://127.0.0.1:{fake_hook.port}/hook"),
        kinds=[Kind.DATA_DRIFT],
    )

    def plan(hour: int, status: Status) -> list[str]:
        window = window_at(hour)
        results = drift_results(window, status)
        if status == Status.UNKNOWN:  # an empty window: every drift row unknown
            results = [replace(r, status=Status.UNKNOWN) if r.kind == Kind.DATA_DRIFT else r for r in results]
        planned = plan_notifications(clean, "loan", window, results, config, now=window.end)
        return [p["transition"] for p in planned]

    assert plan(10, Status.WARNING) == ["problem"]
    assert plan(11, Status.UNKNOWN) == []
    assert plan(12, Status.ALERT) == ["escalated"]
    assert plan(13, Status.ALERT) == [], "reminders are off (reminder_hours: 0)"
    assert plan(9, Status.OK) == [], "a backfilled earlier window does not resolve the open incident"
    assert plan(14, Status.OK) == ["resolved"]
    assert plan(15, Status.OK) == []
    (incident,) = incidents(clean, "loan")
    assert incident["severity"] == "alert" and incident["state"] == "resolved"
    assert incident["opened_window_start"] == window_at(10).start
    assert deliver_outbox(clean, {"loan": config}, model="loan")["delivered"] == 3
    assert [p["json"]["transition"] for p in fake_hook.posts("/hook")] == ["problem", "escalated", "resolved"]
    # operational is not among this config's kinds: no incident for it.
    assert {i["kind"] for i in incidents(clean, "loan")} == {"data_drift"}


@pytest.mark.usefixtures("prefect_api")  # delivery asks the API; alone it started an ephemeral one
def test_stale_events_expire_instead_of_triggering_late(clean: sa.Engine) -> None:
    window = window_at(12)
    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        emit_window_events("loan", window, drift_results(window, Status.ALERT), outbox_engine=clean)
    with clean.begin() as connection:
        connection.execute(sa.text("UPDATE driftline.outbox SET created_at = now() - interval '7 hours'"))
    outcome = deliver_outbox(clean, {"loan": None}, "loan", datetime.now(UTC) + timedelta(hours=1))
    assert outcome["gave_up"] == 1 and outcome["delivered"] == 0
    (row,) = outbox_messages(clean)
    assert row["status"] == "failed" and row["last_error"].startswith("expired")


@pytest.mark.usefixtures("prefect_api")
def test_react_on_a_real_monitor_window(
    store: sa.Engine, clean: sa.Engine, loan_config: Any, fake_hook: FakeSlack
) -> None:
    """What the hourly flow will do after persisting: react on the stored results of a drifted hour."""
    from driftline.config.monitors import load_config
    from driftline.core.window import Window
    from driftline.flows.monitor import monitor_model
    from driftline.storage.results import load_results
    from driftline.tasks.notify import react
    from tests.conftest import DAY

    end = DAY + timedelta(hours=15)
    monitor_model("loan", end, str(loan_config))
    window = Window(end - timedelta(hours=1), end)
    results = load_results(store, "loan", window.start, window.end)
    config = NotificationsConfig(webhook=WebhookChannel(url=f"http://127.0.0.1:{fake_hook.port}/hook"))
    databases = SimpleNamespace(data=store, results=store)
    report = react(databases, load_config(loan_config).model("loan"), window, results, "run-15", notifications=config)
    assert report["errors"] == [] and len(report["events"]) >= 1
    assert {"kind": "data_drift", "transition": "problem"}.items() <= report["planned"][0].items()
    # Incidents are delivered in parallel: find this one's message rather than taking the first.
    (body,) = [p["json"] for p in fake_hook.posts("/hook") if p["json"]["kind"] == "data_drift"]
    assert body["kind"] == "data_drift" and body["worst"][0]["feature"] == "income"
