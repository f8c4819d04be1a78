"""E-mail delivery through smtplib to a local aiosmtpd server started by the test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from driftline.config.notifications import EmailChannel, NotificationsConfig
from driftline.core.results import Status
from driftline.storage.outbox import outbox_messages
from driftline.tasks.notify import deliver_outbox, plan_notifications
from tests.notify.test_slack import MY_TABLES, drift_results, free_port, window_at


class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's naming)
        self.messages.append(
            {"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "message": message_from_bytes(envelope.content)}
        )
        return "250 Message accepted for delivery"


@pytest.fixture
def clean(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {MY_TABLES}"))
    return engine


@pytest.fixture
def smtp_port() -> int:
    return free_port()


@pytest.fixture
def inbox(smtp_port: int) -> Iterator[Inbox]:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    yield handler
    controller.stop()


def email_config(port: int) -> NotificationsConfig:
    return NotificationsConfig(
        email=EmailChannel(
            to=["ml-oncall@example.com", "owner@example.com"],
            sender="driftline@example.com",
            host="127.0.0.1",
            port=port,
            timeout_s=5,
        ),
        prefect_ui_url="http://prefect.example:4200",
    )


def test_problem_and_resolution_arrive_by_mail(clean: sa.Engine, inbox: Inbox, smtp_port: int) -> None:
    config = email_config(smtp_port)
    for hour, status in ((12, Status.ALERT), (13, Status.OK)):
        window = window_at(hour)
        plan_notifications(clean, "loan", window, drift_results(window, status), config, f"run-{hour}", window.end)
    outcome = deliver_outbox(clean, {"loan": config}, model="loan")
    assert outcome["delivered"] == 2 and outcome["pending"] == 0
    assert [m["message"]["Subject"] for m in inbox.messages] == [
        "[Driftline] loan: data drift ALERT",
        "[Driftline] Resolved: loan: data drift is back to ok",
    ]
    first = inbox.messages[0]
    assert first["from"] == "driftline@example.com"
    assert first["to"] == ["ml-oncall@example.com", "owner@example.com"]
    body = first["message"].get_payload(decode=True).decode()
    assert "Window: 2026-03-03 12:00 .. 13:00 UTC" in body
    assert "income: psi = 1.24 (threshold 0.25, alert)" in body
    assert "Prefect flow run: http://prefect.example:4200/runs/flow-run/run-12" in body


def test_smtp_down_keeps_the_mail_pending_until_it_is_up(clean: sa.Engine, smtp_port: int) -> None:
    config = email_config(smtp_port)
    window = window_at(12)
    plan_notifications(clean, "loan", window, drift_results(window, Status.ALERT), config, now=window.end)
    first = deliver_outbox(clean, {"loan": config}, model="loan")
    assert first["delivered"] == 0 and first["pending"] == 1
    (row,) = outbox_messages(clean, "loan")
    assert row["status"] == "pending" and row["attempts"] == 1 and "SMTP 127.0.0.1" in row["last_error"]
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        later = datetime.now(UTC) + timedelta(hours=1)
        assert deliver_outbox(clean, {"loan": config}, "loan", later)["delivered"] == 1
        assert deliver_outbox(clean, {"loan": config}, "loan", later)["delivered"] == 0
    finally:
        controller.stop()
    assert len(handler.messages) == 1
