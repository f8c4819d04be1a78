"""Notification delivery against misbehaving receivers: a trickling endpoint, a black hole, a read
timeout after the body arrived, a 429 with Retry-After; and reminders on a rerun.

Real webhooks (httpx) against a local HTTP server speaking raw HTTP on a socket (so it can trickle
or go silent), the outbox on the real PostgreSQL.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from driftline.config.notifications import NotificationsConfig, WebhookChannel
from driftline.core.results import Kind, Status
from driftline.storage.outbox import outbox_messages
from driftline.tasks.notify import deliver_outbox, plan_notifications
from tests.notify.test_slack import MY_TABLES, drift_results, window_at

pytestmark = pytest.mark.timeout(120)

Behaviour = Callable[[socket.socket, bytes, int], None]


class RawHttp:
    """A local HTTP server whose answer to each request is a function of (socket, request, number).

    Records every request's headers and JSON body; checks, while a request is held open, whether
    the results database has a transaction open or an outbox row locked (``probe``).
    """

    def __init__(self, behaviour: Behaviour, probe: Callable[[], dict[str, int]] | None = None) -> None:
        self.behaviour = behaviour
        self.probe = probe
        self.requests: list[dict[str, Any]] = []
        self.probes: list[dict[str, int]] = []
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(32)
        self.listener.settimeout(0.2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        client.settimeout(10)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                data += client.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in head.decode().split("\r\n")[1:])
            }
            while len(body) < int(headers.get("content-length", 0)):
                body += client.recv(65536)
            with self.lock:
                number = len(self.requests)
                self.requests.append({"headers": headers, "json": json.loads(body)})
            if self.probe is not None:
                self.probes.append(self.probe())
            self.behaviour(client, body, number)
        except OSError:
            pass
        finally:
            client.close()

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()


def answer(client: socket.socket, status: int = 200, headers: dict[str, str] | None = None) -> None:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    client.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n{extra}Connection: close\r\n\r\nok".encode())


def trickle(client: socket.socket, _body: bytes, _n: int) -> None:
    """Headers at once, then one byte of a long body every 0.5 s: each read is quick, the whole is not."""
    client.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n")
    for _ in range(100):
        time.sleep(0.5)
        client.sendall(b".")


def black_hole(client: socket.socket, _body: bytes, _n: int) -> None:
    time.sleep(30)


@pytest.fixture
def clean(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {MY_TABLES}"))
    return engine


@pytest.fixture
def servers() -> Iterator[list[RawHttp]]:
    started: list[RawHttp] = []
    yield started
    for server in started:
        server.stop()


def _db_holds(engine: sa.Engine) -> Callable[[], dict[str, int]]:
    """Counts, from another connection, of open transactions and outbox row locks in this database."""

    def probe() -> dict[str, int]:
        admin = sa.create_engine(engine.url, poolclass=sa.NullPool)
        try:
            with admin.connect() as connection:
                idle = connection.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND state = 'idle in transaction' AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
                locks = connection.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                        "WHERE c.relname = 'outbox' AND l.pid <> pg_backend_pid()"
                    )
                ).scalar_one()
        finally:
            admin.dispose()
        return {"idle_in_transaction": int(idle), "outbox_locks": int(locks)}

    return probe


def _queue(engine: sa.Engine, url: str, hours: list[int], timeout_s: float = 2.0) -> NotificationsConfig:
    """One problem message per hour (a new incident each: the previous one resolved in between)."""
    config = NotificationsConfig(
        min_status="alert",
        reminder_hours=0,
        notify_resolved=False,
        webhook=WebhookChannel(url=url, timeout_s=timeout_s),
    )
    for hour in hours:
        window = window_at(hour)
        plan_notifications(engine, "loan", window, drift_results(window, Status.ALERT), config, now=window.end)
        resolve = window_at(hour + 100)
        plan_notifications(engine, "loan", resolve, drift_results(resolve, Status.OK), config, now=resolve.end)
    return config


def test_trickling_webhook_is_cut_at_its_deadline_with_no_lock_held(clean: sa.Engine, servers: list[RawHttp]) -> None:
    server = RawHttp(trickle, probe=_db_holds(clean))
    servers.append(server)
    config = _queue(clean, server.url, [10], timeout_s=2.0)
    started = time.monotonic()
    outcome = deliver_outbox(clean, {"loan": config}, "loan")
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"timeout_s is a total deadline; the send took {elapsed:.1f} s"
    assert outcome["retry_later"] == 1 and "did not answer within 2 s" in outcome["errors"][0]
    assert server.probes == [{"idle_in_transaction": 0, "outbox_locks": 0}], "no transaction open across the send"
    (row,) = outbox_messages(clean, status="pending")
    assert row["attempts"] == 1


def test_black_holed_webhook_costs_one_deadline_per_pass_not_one_per_message(
    clean: sa.Engine, servers: list[RawHttp]
) -> None:
    server = RawHttp(black_hole)
    servers.append(server)
    config = _queue(clean, server.url, [1, 2, 3, 4], timeout_s=2.0)
    assert len(outbox_messages(clean, status="pending")) == 4
    started = time.monotonic()
    outcome = deliver_outbox(clean, {"loan": config}, "loan")
    elapsed = time.monotonic() - started
    assert outcome["retry_later"] == 4
    assert elapsed < 5, f"4 messages sent in parallel, {elapsed:.1f} s (serially: 4 x 2 s)"
    # A budget bounds a pass even when more messages are due than it can send in time.
    config = _queue(clean, server.url, [5, 6, 7, 8, 9, 11, 12, 13], timeout_s=2.0)
    started = time.monotonic()
    outcome = deliver_outbox(clean, {"loan": config}, "loan", budget_s=1.0, workers=2)
    elapsed = time.monotonic() - started
    assert elapsed < 4 and outcome["deferred"] >= 1, (elapsed, outcome)


def test_resend_after_a_read_timeout_carries_the_same_idempotency_key(clean: sa.Engine, servers: list[RawHttp]) -> None:
    """The receiver got the body but answered too late: the message is sent again (at-least-once),
    with the same key in the body and the Idempotency-Key header, so the receiver can drop it."""

    def slow_first(client: socket.socket, _body: bytes, number: int) -> None:
        if number == 0:
            time.sleep(4)
        answer(client)

    server = RawHttp(slow_first)
    servers.append(server)
    config = _queue(clean, server.url, [10], timeout_s=2.0)
    assert deliver_outbox(clean, {"loan": config}, "loan")["retry_later"] == 1
    later = datetime.now(UTC) + timedelta(hours=1)
    assert deliver_outbox(clean, {"loan": config}, "loan", now=later)["delivered"] == 1
    first, second = server.requests
    key = first["json"]["idempotency_key"]
    assert key and second["json"]["idempotency_key"] == key
    assert first["headers"]["idempotency-key"] == second["headers"]["idempotency-key"] == key


def test_webhook_retry_after_is_honoured(clean: sa.Engine, servers: list[RawHttp]) -> None:
    server = RawHttp(lambda client, _b, _n: answer(client, 429, {"Retry-After": "600"}))
    servers.append(server)
    config = _queue(clean, server.url, [10])
    before = datetime.now(UTC)
    outcome = deliver_outbox(clean, {"loan": config}, "loan")
    assert outcome["retry_later"] == 1 and "Retry-After 600 s" in outcome["errors"][0]
    (row,) = outbox_messages(clean, status="pending")
    wait = (row["next_attempt_at"] - before).total_seconds()
    assert 590 <= wait <= 700, f"next attempt in {wait:.0f} s, not the 30 s backoff"


def test_rerun_of_the_newest_alerting_window_sends_no_reminder(clean: sa.Engine) -> None:
    config = NotificationsConfig(
        min_status="alert",
        reminder_hours=1,
        kinds=[Kind.DATA_DRIFT],
        webhook=WebhookChannel(url="http://127.0.0.1:9/hook"),
    )

    def plan(hour: int, now: datetime) -> list[str]:
        window = window_at(hour)
        return [
            p["transition"]
            for p in plan_notifications(clean, "loan", window, drift_results(window, Status.ALERT), config, now=now)
        ]

    opened = window_at(10).end
    assert plan(10, opened) == ["problem"]
    assert plan(10, opened + timedelta(hours=3)) == [], "a rerun of the same window is not 'still failing'"
    assert plan(11, opened + timedelta(hours=3)) == ["reminder"], "a newer window still failing is"
