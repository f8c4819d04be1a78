"""Database connections cut while a window runs: through a fault-injecting proxy (tests/faults/proxy.py)
in front of the real PostgreSQL, and server-side with ``pg_terminate_backend``.

What must hold: a cut is retried (the steps are idempotent) or the window fails cleanly — recorded as
failed, never half-written — and the next run completes it with exactly the results of a run that was
never interrupted.
"""

from __future__ import annotations

import os
import socket
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
from driftline.flows.monitor import monitor_model
from driftline.storage.engine import get_engine
from driftline.tasks.profiles import ensure_reference
from tests.conftest import DAY, model_entry, write_config
from tests.faults.proxy import PgProxy

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.timeout(150)]

#: The read of a window's rows (only read_rows selects the log's columns in this order).
EXTRACTION = b".loan_predictions.ts, "
#: The statements of the window's one persisting transaction.
INSERT_RESULTS = b"INSERT INTO driftline.results"
MARK_SUCCEEDED = b"UPDATE driftline.runs SET status="

Row = tuple[str, str, str | None, float | None, str]


def _window_results(engine: sa.Engine, model: str, end: datetime) -> list[Row]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT kind, metric, feature, value, status FROM driftline.results "
                "WHERE model = :model AND window_start = :start"
            ),
            {"model": model, "start": end - timedelta(hours=1)},
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


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


@pytest.fixture
def proxy(database_url: str) -> Iterator[PgProxy]:
    host = sa.make_url(database_url).host
    if host not in ("127.0.0.1", "localhost"):
        pytest.skip("the fault proxy needs a PostgreSQL reachable over TCP on this machine")
    with PgProxy.for_url(database_url) as running:
        yield running
        get_engine(running.url_for(database_url)).dispose()


@pytest.fixture
def configs(
    tmp_path: Path,
    store: sa.Engine,
    loan_log: dict[str, Any],
    database_url: str,
    proxy: PgProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Path]:
    """``direct``: model ``base`` straight to the server (the uninterrupted baseline); ``proxied``:
    model ``loan`` through the proxy, its reference already fitted (so the first read is the window)."""
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    direct = write_config(tmp_path / "direct.yaml", [model_entry("base", loan_log["table"])], database_url)
    proxied = write_config(
        tmp_path / "proxied.yaml", [model_entry("loan", loan_log["table"])], proxy.url_for(database_url)
    )
    model = load_config(proxied).model("loan")
    assert ensure_reference(store, store, model, Window.hour_ending(DAY + timedelta(hours=1))) is not None
    return {"direct": direct, "proxied": proxied}


def _baseline(store: sa.Engine, configs: dict[str, Path], end: datetime) -> set[Row]:
    outcome = monitor_model("base", end, str(configs["direct"]))
    assert outcome["rows"] == 200
    rows = _window_results(store, "base", end)
    assert len(rows) == len(set(rows)) > 20
    return set(rows)


def test_cut_mid_extraction_is_retried(store: sa.Engine, configs: dict[str, Path], proxy: PgProxy) -> None:
    end = DAY + timedelta(hours=15)
    baseline = _baseline(store, configs, end)
    proxy.drop_after_server_bytes(2000, after_client=EXTRACTION)
    state = monitor_model("loan", end, str(configs["proxied"]), return_state=True)
    assert state.is_completed(), state.message
    assert proxy.fired == [EXTRACTION] and proxy.dropped == 1, "the cut happened mid-result-set"
    assert state.result()["rows"] == 200, "the retried read got the whole window"
    rows = _window_results(store, "loan", end)
    assert len(rows) == len(baseline) and set(rows) == baseline
    run = _run_row(store, "loan", end)
    assert run is not None and run["status"] == "succeeded" and run["attempts"] == 1


def test_extraction_cut_on_every_attempt_fails_cleanly_then_rerun_completes(
    store: sa.Engine, configs: dict[str, Path], proxy: PgProxy
) -> None:
    end = DAY + timedelta(hours=14)
    baseline = _baseline(store, configs, end)
    proxy.drop_after_server_bytes(2000, after_client=EXTRACTION, times=3)  # the read and its two retries
    state = monitor_model("loan", end, str(configs["proxied"]), return_state=True)
    assert state.is_failed()
    assert proxy.armed == 0 and proxy.dropped == 3
    run = _run_row(store, "loan", end)
    assert run is not None and run["status"] == "failed" and run["finished_at"] is not None
    assert "OperationalError" in run["error"] and "server closed the connection" in run["error"]
    assert _window_results(store, "loan", end) == [], "a failed first run writes no results"

    assert monitor_model("loan", end, str(configs["proxied"]))["rows"] == 200
    rows = _window_results(store, "loan", end)
    assert len(rows) == len(baseline) and set(rows) == baseline
    run = _run_row(store, "loan", end)
    assert run is not None and run["status"] == "succeeded" and run["attempts"] == 2 and run["error"] is None


def test_cut_mid_persist_is_retried_without_duplicates(
    store: sa.Engine, configs: dict[str, Path], proxy: PgProxy
) -> None:
    end = DAY + timedelta(hours=13)
    baseline = _baseline(store, configs, end)
    proxy.drop_on_client(INSERT_RESULTS)
    state = monitor_model("loan", end, str(configs["proxied"]), return_state=True)
    assert state.is_completed(), state.message
    assert proxy.fired == [INSERT_RESULTS]
    rows = _window_results(store, "loan", end)
    assert len(rows) == len(baseline) and set(rows) == baseline, "the retried transaction wrote the window once"


def test_cut_before_commit_keeps_the_previous_results_whole(
    store: sa.Engine, configs: dict[str, Path], proxy: PgProxy
) -> None:
    """The cut lands after the DELETE and the INSERT ran, on the run-log UPDATE of the same
    transaction: everything rolls back, so the earlier results stay exactly as they were."""
    end = DAY + timedelta(hours=16)
    baseline = _baseline(store, configs, end)
    assert monitor_model("loan", end, str(configs["proxied"]))["rows"] == 200
    with store.begin() as connection:  # mark the stored rows, to tell "kept" from "rewritten"
        marked = connection.execute(
            sa.text(
                "UPDATE driftline.results SET details = details || '{\"marker\": 1}' "
                "WHERE model = 'loan' AND window_start = :start"
            ),
            {"start": end - timedelta(hours=1)},
        ).rowcount
    assert marked == len(baseline)

    proxy.drop_on_client(MARK_SUCCEEDED, times=3)  # the persist task and its two retries
    state = monitor_model("loan", end, str(configs["proxied"]), return_state=True)
    assert state.is_failed() and proxy.armed == 0
    with store.connect() as connection:
        kept = connection.execute(
            sa.text(
                "SELECT count(*), count(*) FILTER (WHERE details ? 'marker') FROM driftline.results "
                "WHERE model = 'loan' AND window_start = :start"
            ),
            {"start": end - timedelta(hours=1)},
        ).one()
    assert tuple(kept) == (len(baseline), len(baseline)), "no half-written window: the old rows, all of them"
    run = _run_row(store, "loan", end)
    assert run is not None and run["status"] == "failed" and "OperationalError" in run["error"]

    monitor_model("loan", end, str(configs["proxied"]))
    rows = _window_results(store, "loan", end)
    assert len(rows) == len(baseline) and set(rows) == baseline
    run = _run_row(store, "loan", end)
    assert run is not None and run["status"] == "succeeded" and run["attempts"] == 3


def test_all_server_connections_terminated_between_hourly_runs(
    store: sa.Engine, loan_config: Path, database_url: str
) -> None:
    """What a server restart does to the client's pool: every pooled connection is dead. The next
    hourly run must reconnect (pool_pre_ping), not fail."""
    assert monitor_model("loan", DAY + timedelta(hours=3), str(loan_config))["rows"] == 200
    pooled = get_engine(database_url)
    assert pooled.pool.checkedin() >= 1, "the pool holds idle connections to be killed"  # type: ignore[attr-defined]
    admin = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with admin.connect() as connection:
            killed = connection.execute(
                sa.text(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
    finally:
        admin.dispose()
    assert killed >= 1

    state = monitor_model("loan", DAY + timedelta(hours=4), str(loan_config), return_state=True)
    assert state.is_completed(), state.message
    run = _run_row(store, "loan", DAY + timedelta(hours=4))
    assert run is not None and run["status"] == "succeeded" and run["row_count"] == 200


def test_proxy_drops_every_connection_between_runs(store: sa.Engine, configs: dict[str, Path], proxy: PgProxy) -> None:
    """The same through the proxy: connections cut from the network side (no server notice at all)."""
    assert monitor_model("loan", DAY + timedelta(hours=5), str(configs["proxied"]))["rows"] == 200
    assert proxy.drop_all() >= 1
    state = monitor_model("loan", DAY + timedelta(hours=6), str(configs["proxied"]), return_state=True)
    assert state.is_completed(), state.message
    assert len(_window_results(store, "loan", DAY + timedelta(hours=6))) > 20


def test_proxy_is_bounded_and_stops_cleanly(database_url: str) -> None:
    if sa.make_url(database_url).host not in ("127.0.0.1", "localhost"):
        pytest.skip("the fault proxy needs a PostgreSQL reachable over TCP on this machine")
    with pytest.raises(ValueError, match="local machine"):
        PgProxy("10.0.0.1", 5432)
    proxy = PgProxy.for_url(database_url).start()
    port = proxy.port
    engine = sa.create_engine(proxy.url_for(database_url), poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT 1")).scalar() == 1
            assert proxy.open_connections == 1
        proxy.drop_on_client(b"SELECT 42")
        with pytest.raises(sa.exc.OperationalError), engine.connect() as connection:
            connection.execute(sa.text("SELECT 42"))
        with engine.connect() as connection:  # the rule fired once and is gone
            assert connection.execute(sa.text("SELECT 42")).scalar() == 42
        assert proxy.fired == [b"SELECT 42"] and proxy.dropped == 1 and proxy.armed == 0
    finally:
        engine.dispose()
        started = time.monotonic()
        proxy.stop()
    assert time.monotonic() - started < 5
    assert not [t for t in threading.enumerate() if t.name.startswith("pgproxy")], "every proxy thread ended"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def _restart_private_server(database_url: str) -> None:
    """Restart the test's own embedded PostgreSQL (pgserver) with its pg_ctl, as the server's owner, and
    wait until it answers. Never the machine's shared server: other test runs use that one."""
    import subprocess
    from pathlib import Path as _Path

    import pgserver  # type: ignore[import-not-found]

    url = sa.make_url(database_url)
    data_dir = str(url.query["host"])  # pgserver's socket directory is its data directory
    pg_ctl = str(_Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_ctl")
    # -l: the restarted postmaster writes to a log file; without it, it inherits our stdout pipe and
    # subprocess.run waits for an EOF that never comes.
    command = [pg_ctl, "-D", data_dir, "-l", f"{data_dir}/restart.log", "-w", "restart"]
    if os.geteuid() == 0:  # pgserver runs its server as the `pgserver` user when started by root
        command = ["su", "pgserver", "-s", "/bin/sh", "-c", " ".join(command)]
    subprocess.run(command, check=True, timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    probe = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        while True:
            try:
                with probe.connect() as connection:
                    connection.execute(sa.text("SELECT 1"))
                return
            except sa.exc.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        probe.dispose()


@pytest.fixture
def private_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[sa.Engine, Path]]:
    """A PostgreSQL server of this test's own (embedded, in tmp_path) holding the results store and a
    loan log, and a monitors.yaml pointing at it: restarting it disturbs no other test run."""
    from driftline.storage.embedded import start_embedded
    from driftline.storage.engine import dispose_all
    from driftline.storage.migrate import upgrade
    from tests.conftest import write_loan_log

    url = start_embedded(tmp_path / "pgdata")
    engine = get_engine(url)
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(sa.schema.CreateSchema("log"))
    write_loan_log(engine, "log")
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    config = write_config(tmp_path / "monitors.yaml", [model_entry("loan", "log.loan_predictions")], url)
    yield engine, config
    dispose_all()


def test_postgres_restarted_between_two_hourly_runs(private_server: tuple[sa.Engine, Path]) -> None:
    """A real server restart between two hourly runs: the pooled connections are dead, the next run
    reconnects (pool_pre_ping) and completes; the earlier window's results are intact. The server is
    the test's own, so the restart cannot break a test running beside it."""
    store, loan_config = private_server
    monitor_model("loan", DAY + timedelta(hours=7), str(loan_config))
    before = sorted(_window_results(store, "loan", DAY + timedelta(hours=7)), key=repr)
    assert len(before) > 20
    database_url = store.url.render_as_string(hide_password=False)
    _restart_private_server(database_url)
    state = monitor_model("loan", DAY + timedelta(hours=8), str(loan_config), return_state=True)
    assert state.is_completed(), state.message
    run = _run_row(store, "loan", DAY + timedelta(hours=8))
    assert run is not None and run["status"] == "succeeded" and run["row_count"] == 200
    assert sorted(_window_results(store, "loan", DAY + timedelta(hours=7)), key=repr) == before
