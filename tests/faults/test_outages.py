"""Outages rather than single cuts: the database down for seconds at the start of a window, and a run
log that must stay honest when steps fail after the window's commit.

The database is the real server behind the fault proxy (``tests/faults/proxy.py``), which refuses
every connection for the outage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from driftline.config.monitors import load_config
from driftline.core.window import Window
from driftline.flows.monitor import backfill, monitor_all, monitor_model
from driftline.storage.engine import get_engine
from driftline.tasks.profiles import ensure_reference
from tests.conftest import DAY, model_entry, write_config
from tests.faults.proxy import PgProxy

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.timeout(180)]

OUTAGE_S = 8.0


def _run_row(engine: sa.Engine, model: str, end: datetime) -> dict[str, Any] | None:
    with engine.connect() as connection:
        row = (
            connection.execute(
                sa.text("SELECT * FROM driftline.runs WHERE model = :model AND window_start = :start"),
                {"model": model, "start": end - timedelta(hours=1)},
            )
            .mappings()
            .first()
        )
    return None if row is None else dict(row)


def _result_count(engine: sa.Engine, model: str, end: datetime) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                sa.text("SELECT count(*) FROM driftline.results WHERE model = :m AND window_start = :s"),
                {"m": model, "s": end - timedelta(hours=1)},
            ).scalar_one()
        )


@pytest.fixture
def proxy(database_url: str) -> Iterator[PgProxy]:
    with PgProxy.for_url(database_url) as running:
        yield running
        running.end_outage()
        get_engine(running.url_for(database_url)).dispose()


@pytest.fixture
def proxied(
    tmp_path: Path,
    store: sa.Engine,
    loan_log: dict[str, Any],
    database_url: str,
    proxy: PgProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """Models ``loan`` and ``loan2`` on one log, through the proxy, their references already fitted."""
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    monitors = [{"name": "data_drift"}, {"name": "operational"}]  # no GX import: the test is about the outage
    config = write_config(
        tmp_path / "proxied.yaml",
        [model_entry(name, loan_log["table"], monitors=monitors) for name in ("loan", "loan2")],
        proxy.url_for(database_url),
    )
    for model in load_config(config).models:
        assert ensure_reference(store, store, model, Window.hour_ending(DAY + timedelta(hours=1))) is not None
    return config


def test_database_outage_at_the_start_of_a_window_is_waited_out(
    store: sa.Engine, proxied: Path, proxy: PgProxy
) -> None:
    """An 8-second outage as the hourly fan-out starts: every model's window waits (backing off) and
    completes; none is lost for the hour."""
    end = DAY + timedelta(hours=13)
    assert proxy.start_outage() >= 0
    timer = threading.Timer(OUTAGE_S, proxy.end_outage)
    started = time.monotonic()
    timer.start()
    try:
        outcome = monitor_all(end, str(proxied))
    finally:
        timer.cancel()
        proxy.end_outage()
    elapsed = time.monotonic() - started
    assert proxy.refused >= 2, "connections were refused during the outage"
    assert outcome["failed"] == {}, outcome["failed"]
    assert sorted(outcome["succeeded"]) == ["loan", "loan2"]
    assert elapsed >= OUTAGE_S - 1, "the windows ran after the outage, not before it"
    for model in ("loan", "loan2"):
        run = _run_row(store, model, end)
        assert run is not None and run["status"] == "succeeded" and run["row_count"] == 200
        assert _result_count(store, model, end) > 5


def test_outage_longer_than_the_wait_fails_the_window_with_a_clear_error(
    store: sa.Engine, proxied: Path, proxy: PgProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bounded: past ``DRIFTLINE_DB_WAIT_S`` the window fails with one line saying how long it tried."""
    monkeypatch.setenv("DRIFTLINE_DB_WAIT_S", "2")
    end = DAY + timedelta(hours=14)
    proxy.start_outage()
    started = time.monotonic()
    state = monitor_model("loan", end, str(proxied), return_state=True)
    elapsed = time.monotonic() - started
    proxy.end_outage()
    assert state.is_failed()
    with pytest.raises(Exception, match=r"cannot connect to .* \(tried \d+ times in 2 s\)"):
        state.result()
    assert elapsed < 30, f"bounded wait, took {elapsed:.1f} s"


def test_windows_failed_during_an_outage_are_recorded_once_the_database_is_back(
    store: sa.Engine, proxied: Path, proxy: PgProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backfill during an outage that outlasts a window's wait: the failed hours could not be
    written to the run log as they failed; the backfill records them (attempt counted, the error
    kept) once the database answers again, so the run log never shows a silent gap."""
    monkeypatch.setenv("DRIFTLINE_DB_WAIT_S", "1")
    first = DAY + timedelta(hours=3)
    proxy.start_outage()
    timer = threading.Timer(4.0, proxy.end_outage)
    timer.start()
    try:
        outcome = backfill("loan", first, first + timedelta(hours=3), str(proxied))
    finally:
        timer.cancel()
        proxy.end_outage()
    assert outcome["failed"], "the outage failed at least the first hour"
    with store.connect() as connection:
        rows = {
            r.window_start.strftime("%H:%M"): dict(r._mapping)
            for r in connection.execute(sa.text("SELECT * FROM driftline.runs WHERE model = 'loan'"))
        }
    assert sorted(rows) == ["03:00", "04:00", "05:00"], "every hour of the backfill is in the run log"
    failed = {hour: row for hour, row in rows.items() if row["status"] != "succeeded"}
    assert len(failed) == len(outcome["failed"])
    for row in failed.values():
        assert row["status"] == "failed" and row["attempts"] == 1 and row["finished_at"] is not None
        assert "cannot connect" in row["error"] and "recorded after the database came back" in row["error"]
