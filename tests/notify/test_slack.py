"""Slack (Web API) and webhook delivery against a local HTTP server speaking Slack's API.

The real ``slack_sdk.WebClient`` and ``httpx`` talk to a ``ThreadingHTTPServer`` started by the test;
the outbox and incidents live in the real PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.settings import PREFECT_API_URL, temporary_settings

from driftline.config.monitors import ModelConfig
from driftline.config.notifications import NotificationsConfig, SlackChannel, WebhookChannel
from driftline.core.results import Kind, Result, Status
from driftline.core.window import Window
from driftline.storage.outbox import incidents, outbox_messages
from driftline.tasks.notify import deliver_outbox, plan_notifications, react
from tests.conftest import DAY, model_entry

TOKEN = "xoxb-test-0123456789-secret"
MY_TABLES = (
    "driftline.outbox, driftline.incidents, driftline.model_versions, driftline.reference_overrides, "
    "driftline.retrain_runs, driftline.reference_versions"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeSlack:
    """A local server for Slack's ``chat.postMessage`` and plain webhooks.

    ``script`` is a list of (status, headers, body) answers used first, in order; then 200 ok.
    Every request is recorded with its path, headers and JSON body.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, str], dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"raw": raw.decode(errors="replace")}
                with fake.lock:
                    fake.requests.append({"path": self.path, "headers": dict(self.headers), "json": body})
                    status, headers, answer = fake.script.pop(0) if fake.script else (200, {}, {"ok": True})
                data = json.dumps(answer | {"ts": f"{time.time():.6f}"} if status == 200 else answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def posts(self, path: str = "/api/chat.postMessage") -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


@pytest.fixture
def clean(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {MY_TABLES}"))
    return engine


@pytest.fixture
def dead_prefect_api() -> Iterator[None]:
    """Events go to a port nobody listens on: they must land in the outbox, never fail the window."""
    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api"}):
        yield


def loan_model() -> ModelConfig:
    return ModelConfig.model_validate(model_entry("loan", "public.loan_predictions"))


def window_at(hour: int) -> Window:
    return Window(DAY + timedelta(hours=hour), DAY + timedelta(hours=hour + 1))


def drift_results(window: Window, status: Status, income: float = 0.62) -> list[Result]:
    """Data drift rows of one window: income at ``status``, age ok; one volume row, ok."""
    return [
        Result(
            model="loan",
            window_start=window.start,
            window_end=window.end,
            kind=Kind.DATA_DRIFT,
            metric="ks",
            feature="income",
            value=income,
            threshold=0.2,
            status=status,
            details={"p_value": 1e-12},
        ),
        Result(
            model="loan",
            window_start=window.start,
            window_end=window.end,
            kind=Kind.DATA_DRIFT,
            metric="psi",
            feature="income",
            value=income * 2,
            threshold=0.25,
            status=status,
            details={},
        ),
        Result(
            model="loan",
            window_start=window.start,
            window_end=window.end,
            kind=Kind.DATA_DRIFT,
            metric="ks",
            feature="age",
            value=0.01,
            threshold=0.2,
            status=Status.OK,
            details={},
        ),
        Result(
            model="loan",
            window_start=window.start,
            window_end=window.end,
            kind=Kind.OPERATIONAL,
            metric="row_count",
            feature=None,
            value=200.0,
            threshold=None,
            status=Status.OK,
            details={},
        ),
    ]


def slack_config(fake: FakeSlack, **overrides: Any) -> NotificationsConfig:
    values: dict[str, Any] = {
        "slack": SlackChannel(channel="#ml-alerts", token_env="DRIFTLINE_TEST_SLACK_TOKEN", base_url=fake.base_url),
        "reminder_hours": 2,
        "prefect_ui_url": "http://prefect.example:4200",
        "report_url": "http://reports.example/{model}/{window_start}",
    }
    values.update(overrides)
    return NotificationsConfig(**values)


@pytest.mark.slow
def test_start_reminder_resolved_sequence_reaches_slack(
    clean: sa.Engine,
    fake_slack: FakeSlack,
    dead_prefect_api: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("DRIFTLINE_TEST_SLACK_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    databases = SimpleNamespace(data=clean, results=clean)
    config = slack_config(fake_slack)
    model = loan_model()
    sequence = [(12, Status.ALERT), (13, Status.ALERT), (14, Status.ALERT), (15, Status.OK), (16, Status.OK)]
    reports = []
    for hour, status in sequence:
        window = window_at(hour)
        reports.append(
            react(
                databases,
                model,
                window,
                drift_results(window, status),
                f"run-{hour}",
                notifications=config,
                now=window.end,
            )
        )
    transitions = [[p["transition"] for p in r["planned"]] for r in reports]
    assert transitions == [["problem"], [], ["reminder"], ["resolved"], []]
    posts = fake_slack.posts()
    assert [p["json"]["text"] for p in posts] == [
        ":red_circle: loan: data drift ALERT",
        ":alarm_clock: Still failing: loan: data drift ALERT",
        ":white_check_mark: Resolved: loan: data drift is back to ok",
    ]
    first = posts[0]
    assert first["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert first["json"]["channel"] == "#ml-alerts"
    blocks = first["json"]["blocks"]
    rendered = json.dumps(blocks)
    assert blocks[0]["type"] == "header"
    assert "2026-03-03 12:00 .. 13:00 UTC" in rendered
    assert "income: ks = 0.62 (threshold 0.2, alert)" in rendered and "income: psi = 1.24" in rendered
    assert "age" not in rendered, "only failing metrics are listed"
    buttons = {e["text"]["text"]: e["url"] for b in blocks if b["type"] == "actions" for e in b["elements"]}
    assert buttons == {
        "Prefect flow run": "http://prefect.example:4200/runs/flow-run/run-12",
        "Report": "http://reports.example/loan/2026-03-03T12:00:00+00:00",
    }
    (incident,) = incidents(clean, "loan")
    assert incident["state"] == "resolved" and incident["reminders"] == 1
    assert incident["resolved_window_start"] == window_at(15).start
    slack_rows = outbox_messages(clean, "loan")
    assert {(m["channel"], m["status"]) for m in slack_rows} >= {("slack", "delivered")}
    assert all(m["status"] == "delivered" for m in slack_rows if m["channel"] == "slack")
    # Prefect API down: the events of the alert windows wait in the outbox instead of being lost.
    queued = [m for m in slack_rows if m["channel"] == "event"]
    assert len(queued) == 3 and all(m["status"] == "pending" for m in queued)
    assert {m["payload"]["event"] for m in queued} == {"driftline.data_drift.detected"}
    assert TOKEN not in caplog.text


def test_rerun_of_a_window_sends_nothing_twice(
    clean: sa.Engine, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_TEST_SLACK_TOKEN", TOKEN)
    config = slack_config(fake_slack)
    window = window_at(12)
    for _ in range(2):
        plan_notifications(clean, "loan", window, drift_results(window, Status.ALERT), config, now=window.end)
        deliver_outbox(clean, {"loan": config}, model="loan")
    assert len(fake_slack.posts()) == 1


@pytest.mark.slow
def test_server_error_and_rate_limit_are_survived(
    clean: sa.Engine, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_TEST_SLACK_TOKEN", TOKEN)
    config = slack_config(fake_slack)
    fake_slack.script = [
        (500, {}, {"ok": False, "error": "internal_error"}),
        (429, {"Retry-After": "1"}, {"ok": False, "error": "ratelimited"}),
    ]
    window = window_at(12)
    plan_notifications(clean, "loan", window, drift_results(window, Status.ALERT), config, now=window.end)
    started = time.monotonic()
    outcome = deliver_outbox(clean, {"loan": config}, model="loan")
    elapsed = time.monotonic() - started
    assert outcome["delivered"] == 1 and outcome["errors"] == [] and outcome["pending"] == 0
    assert len(fake_slack.posts()) == 3, "500, then 429, then the delivered attempt"
    assert elapsed >= 1.0, "the 429's Retry-After was honoured"


def test_down_server_keeps_messages_pending_then_each_is_sent_once(
    clean: sa.Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DRIFTLINE_TEST_SLACK_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    fake = FakeSlack()  # not started: connection refused
    config = slack_config(fake)
    for hour in (12, 13):  # two incidents: drift in one window, then operational in the next
        window = window_at(hour)
        results = drift_results(window, Status.ALERT if hour == 12 else Status.OK)
        if hour == 13:
            results.append(
                Result(
                    model="loan",
                    window_start=window.start,
                    window_end=window.end,
                    kind=Kind.OPERATIONAL,
                    metric="error_rate",
                    feature=None,
                    value=0.2,
                    threshold=0.05,
                    status=Status.ALERT,
                    details={},
                )
            )
        plan_notifications(clean, "loan", window, results, config, now=window.end)
    outcome = deliver_outbox(clean, {"loan": config}, model="loan")
    # The drift incident's "resolved" waits behind its undelivered "problem" (never out of order).
    assert outcome["delivered"] == 0 and outcome["retry_later"] == 2 and outcome["pending"] == 3
    pending = outbox_messages(clean, "loan", status="pending")
    attempted = [m for m in pending if m["attempts"] == 1]
    assert len(pending) == 3 and len(attempted) == 2 and all(m["last_error"] for m in attempted)
    assert [m["transition"] for m in pending if m["attempts"] == 0] == ["resolved"]
    assert all(TOKEN not in m["last_error"] for m in attempted)
    assert "Slack unreachable" in pending[0]["last_error"]
    # Backing off: an immediate retry sends nothing.
    assert deliver_outbox(clean, {"loan": config}, model="loan")["retry_later"] == 0
    fake.start()
    try:
        later = datetime.now(UTC) + timedelta(hours=2)
        # Two deliverers at once (e.g. two models' flows): FOR UPDATE SKIP LOCKED shares the work.
        outcomes: list[dict[str, Any]] = []
        threads = [
            threading.Thread(target=lambda: outcomes.append(deliver_outbox(clean, {"loan": config}, "loan", later)))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sum(o["delivered"] for o in outcomes) == 3
        assert deliver_outbox(clean, {"loan": config}, "loan", later)["delivered"] == 0
        texts = sorted(p["json"]["text"] for p in fake.posts())
        assert texts == [
            ":red_circle: loan: data drift ALERT",
            ":red_circle: loan: operational health ALERT",
            ":white_check_mark: Resolved: loan: data drift is back to ok",
        ]
    finally:
        fake.stop()
    assert all(m["status"] == "delivered" for m in outbox_messages(clean, "loan"))
    assert TOKEN not in caplog.text


def test_slack_rejection_is_recorded_without_the_token(
    clean: sa.Engine, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_TEST_SLACK_TOKEN", TOKEN)
    fake_slack.script = [(200, {}, {"ok": False, "error": "invalid_auth", "echo": TOKEN})]
    config = slack_config(fake_slack, max_attempts=1)
    window = window_at(12)
    plan_notifications(clean, "loan", window, drift_results(window, Status.ALERT), config, now=window.end)
    outcome = deliver_outbox(clean, {"loan": config}, model="loan")
    assert outcome["gave_up"] == 1
    (row,) = outbox_messages(clean, "loan")
    assert row["status"] == "failed" and "invalid_auth" in row["last_error"] and TOKEN not in row["last_error"]
    assert all(TOKEN not in e for e in outcome["errors"])


def test_missing_token_never_fails_react(
    clean: sa.Engine, fake_slack: FakeSlack, dead_prefect_api: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRIFTLINE_TEST_SLACK_TOKEN", raising=False)
    window = window_at(12)
    report = react(
        SimpleNamespace(data=clean, results=clean),
        loan_model(),
        window,
        drift_results(window, Status.ALERT),
        notifications=slack_config(fake_slack),
        now=window.end,
    )
    assert any("DRIFTLINE_TEST_SLACK_TOKEN is not set" in e for e in report["errors"])
    pending = outbox_messages(clean, "loan", status="pending")
    assert {m["channel"] for m in pending} == {"slack", "event"}, "kept for a later delivery"
    assert fake_slack.posts() == []


def test_webhook_receives_json_and_its_url_stays_secret(
    clean: sa.Engine, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_url = f"http://127.0.0.1:{fake_slack.port}/hooks/T000/B000/s3cr3tPathToken"
    monkeypatch.setenv("DRIFTLINE_TEST_HOOK_URL", secret_url)
    config = NotificationsConfig(webhook=WebhookChannel(url_env="DRIFTLINE_TEST_HOOK_URL"))
    fake_slack.script = [(500, {}, {"error": f"boom at {secret_url}"})]
    window = window_at(12)
    plan_notifications(clean, "loan", window, drift_results(window, Status.ALERT), config, now=window.end)
    first = deliver_outbox(clean, {"loan": config}, model="loan")
    assert first["retry_later"] == 1 and "HTTP 500" in first["errors"][0]
    (row,) = outbox_messages(clean, "loan")
    assert "s3cr3tPathToken" not in row["last_error"]
    second = deliver_outbox(clean, {"loan": config}, "loan", datetime.now(UTC) + timedelta(hours=1))
    assert second["delivered"] == 1
    body = fake_slack.posts("/hooks/T000/B000/s3cr3tPathToken")[-1]["json"]
    assert body["source"] == "driftline" and body["model"] == "loan" and body["transition"] == "problem"
    assert body["worst"][0] == {
        "feature": "income",
        "metric": "psi",
        "value": 1.24,
        "threshold": 0.25,
        "status": "alert",
    }
