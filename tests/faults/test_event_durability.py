"""A Prefect server killed seconds after it acknowledged Driftline's event must not lose the trigger.

The events client's acknowledgement (a ping/pong after each event) means the server received the
event, not that it stored it: Prefect's event persister writes in batches (every 5 s by default),
so a server killed with SIGKILL in between loses acknowledged events. This test starts a real
Prefect server (its own SQLite database), with the persister's flush interval widened to 30 s so
the kill always lands inside the gap, sends a window's event, kills the server, restarts it on the
same database, and checks that Driftline sends the event again and confirms it stored.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prefect.settings import PREFECT_API_URL, temporary_settings

from driftline.core.results import Status
from driftline.storage.outbox import outbox_messages
from driftline.tasks.events import build_window_events, emit_events, stored_event_ids
from driftline.tasks.notify import confirm_events, deliver_outbox
from tests.notify.test_slack import MY_TABLES, drift_results, free_port, window_at

pytestmark = pytest.mark.timeout(400)

STARTUP_TIMEOUT_S = 150


class PrefectServer:
    """``uvicorn prefect.server.api.server:create_app`` on a port, with its own PREFECT_HOME."""

    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self, flush_interval_s: float) -> PrefectServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env |= {
            "PREFECT_HOME": str(self.home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": str(flush_interval_s),
        }
        log = open(self.home / f"server-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert self.process.poll() is None, f"prefect server exited with {self.process.returncode}"
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "prefect server did not start"
            time.sleep(0.3)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrefectServer]:
    home = tmp_path / "prefect-home"
    home.mkdir()
    running = PrefectServer(home, free_port())
    yield running
    running.kill()


@pytest.fixture
def clean(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {MY_TABLES}"))
    return engine


def test_event_acknowledged_then_server_killed_is_sent_again_and_confirmed(
    clean: sa.Engine, server: PrefectServer
) -> None:
    server.start(flush_interval_s=30)
    window = window_at(15)
    events = build_window_events("loan", window, drift_results(window, Status.ALERT), None)
    (event_id,) = [e["id"] for e in events]
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        sent, queued = emit_events(events, clean, "loan")
    assert sent == [event_id] and queued == [], "the server acknowledged the event"
    server.kill()  # within a second of the acknowledgement, before the persister's flush

    (row,) = outbox_messages(clean)
    assert row["channel"] == "event" and row["status"] == "pending", "kept until read back, not recorded as sent"

    server.start(flush_interval_s=1)  # restarted on the same database
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        assert stored_event_ids([event_id]) == set(), "the kill lost the acknowledged event"
        later = datetime.now(UTC) + timedelta(minutes=5)
        outcome = deliver_outbox(clean, {"loan": None}, "loan", now=later)
        assert outcome["retry_later"] == 1 and "sent again" in outcome["errors"][0]
        confirmed = confirm_events(clean, wait_s=30)
        assert confirmed == {"confirmed": 1, "unconfirmed": 0}
        assert stored_event_ids([event_id]) == {event_id}
    (row,) = outbox_messages(clean)
    assert row["status"] == "delivered"


def test_events_read_back_after_a_normal_send_are_marked_delivered(clean: sa.Engine, server: PrefectServer) -> None:
    """The common case costs one read-back per run: sent, stored by the persister, confirmed."""
    server.start(flush_interval_s=1)
    window = window_at(16)
    events: list[dict[str, Any]] = build_window_events("loan", window, drift_results(window, Status.ALERT), None)
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        sent, _ = emit_events(events, clean, "loan")
        assert [r["status"] for r in outbox_messages(clean)] == ["pending"]
        assert confirm_events(clean, wait_s=30) == {"confirmed": 1, "unconfirmed": 0}
    assert [r["status"] for r in outbox_messages(clean)] == ["delivered"]
