"""``driftline run`` when Prefect is missing or goes away, and what it prints when windows fail.

Each case runs the real CLI in a child process (its real console, Prefect's real log handlers)
against the session's PostgreSQL. The Prefect API is the session's test server, reached through
the fault proxy (``tests/faults/proxy.py``) so it can be cut; a temporary Prefect server is started
by the child itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from driftline.flows.monitor import monitor_model
from driftline.storage.engine import get_engine
from tests.conftest import DAY, model_entry, write_config
from tests.faults.proxy import PgProxy

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.timeout(300)]

CHILD_TIMEOUT_S = 240


def _child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "PREFECT_"))}
    env |= {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "COLUMNS": "200",
    }
    return env | extra


def _cli(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "driftline.cli.commands", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate(timeout=10)
        pytest.fail(f"driftline run did not finish in {CHILD_TIMEOUT_S} s: {err[-3000:]}")
    return process.returncode, out, err


def _runs(engine: sa.Engine, model: str) -> dict[str, dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT * FROM driftline.runs WHERE model = :m ORDER BY window_start"), {"m": model}
        ).mappings()
        return {row["window_start"].strftime("%H:%M"): dict(row) for row in rows}


@pytest.fixture
def api_proxy() -> Iterator[tuple[PgProxy, str]]:
    """The session's Prefect API behind the fault proxy; yields the proxy and the proxied API URL."""
    from prefect.settings import PREFECT_API_URL

    real = str(PREFECT_API_URL.value())
    parsed = sa.make_url(real.replace("http://", "postgresql://", 1))  # host and port only
    with PgProxy(parsed.host or "127.0.0.1", parsed.port or 80) as proxy:
        yield proxy, real.replace(f":{parsed.port}", f":{proxy.port}", 1)
        proxy.end_outage()


@pytest.fixture
def drift_only(tmp_path: Path, store: sa.Engine, loan_log: dict[str, Any], database_url: str) -> Path:
    """The loan log with drift and operational monitors only (no GX import in the child)."""
    monitors = [{"name": "data_drift"}, {"name": "operational"}]
    return write_config(
        tmp_path / "monitors.yaml", [model_entry("loan", loan_log["table"], monitors=monitors)], database_url
    )


def test_prefect_api_down_from_the_start_still_monitors(
    tmp_path: Path, store: sa.Engine, drift_only: Path, api_proxy: tuple[PgProxy, str]
) -> None:
    proxy, url = api_proxy
    proxy.start_outage()
    code, out, err = _finish(
        _cli(
            "run",
            "--config",
            str(drift_only),
            "--start",
            "2026-03-03T10:00Z",
            "--end",
            "2026-03-03T12:00Z",
            env=_child_env(tmp_path, PREFECT_API_URL=url),
        )
    )
    assert code == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "Prefect API unreachable" in err and "2 of 2 windows ran without Prefect" in err, err[-3000:]
    assert "Driftline run" in out, "the summary table was printed"
    runs = _runs(store, "loan")
    assert [runs[h]["status"] for h in ("10:00", "11:00")] == ["succeeded", "succeeded"]
    assert all(r["flow_run_id"] is None for r in runs.values()), "honest: no Prefect flow run behind them"


def test_prefect_api_lost_mid_run_the_backfill_goes_on(
    tmp_path: Path, store: sa.Engine, drift_only: Path, api_proxy: tuple[PgProxy, str]
) -> None:
    """The API is cut while the second of four windows runs: that window and the rest are monitored
    without Prefect, the summary is printed, and the run log says what happened (all succeeded)."""
    proxy, url = api_proxy
    started = time.monotonic()
    process = _cli(
        "run",
        "--config",
        str(drift_only),
        "--start",
        "2026-03-03T10:00Z",
        "--end",
        "2026-03-03T14:00Z",
        env=_child_env(tmp_path, PREFECT_API_URL=url),
    )
    try:
        while _runs(store, "loan").get("11:00", {}).get("status") != "running":
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() - started < CHILD_TIMEOUT_S
            time.sleep(0.05)
        proxy.start_outage()
        code, out, err = _finish(process)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "Prefect API unreachable" in err, err[-3000:]
    assert "from 2026-03-03T11:00Z..12:00Z on: 3 of 4 windows ran without Prefect" in err, err[-3000:]
    assert "Driftline run" in out and out.count("2026-03-03 1") >= 4, out
    runs = _runs(store, "loan")
    assert [runs[h]["status"] for h in ("10:00", "11:00", "12:00", "13:00")] == ["succeeded"] * 4
    assert runs["10:00"]["flow_run_id"] is not None and runs["13:00"]["flow_run_id"] is None
    assert time.monotonic() - started < 150, "a lost API costs seconds per window, not minutes"


def test_failed_windows_print_one_line_each(
    tmp_path: Path, store: sa.Engine, loan_log: dict[str, Any], database_url: str, engine: sa.Engine
) -> None:
    """Every window fails (the log's timestamp column is text, so no window can be read): one line
    per window and a summary, no tracebacks; --verbose shows them."""
    from prefect.settings import PREFECT_API_URL

    table = f"{loan_log['schema']}.text_ts"
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                f"CREATE TABLE {table} AS SELECT request_id, ts::text AS ts, income, age, region, prediction, "
                f"score, label, latency_ms FROM {loan_log['table']}"
            )
        )
    config = write_config(
        tmp_path / "text.yaml",
        [model_entry("loan", table, monitors=[{"name": "data_drift"}])],
        database_url,
    )
    env = _child_env(tmp_path, PREFECT_API_URL=str(PREFECT_API_URL.value()))
    args = ["run", "--config", str(config), "--start", "2026-03-03T10:00Z", "--end", "2026-03-03T14:00Z"]
    code, out, err = _finish(_cli(*args, env=env))
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    # Not a terminal: the log line of each window says it failed, on one line.
    failed = [line for line in lines if "] loan 2026-03-03T1" in line and " failed: " in line]
    assert len(failed) == 4, err
    assert "Traceback" not in err and len(lines) <= 6, err
    assert "4 of 4 windows failed" in err and "--verbose" in err
    code, _, verbose_err = _finish(_cli(*args, "--verbose", env=env))
    assert code == 1 and "Traceback" in verbose_err


def test_temporary_prefect_server_that_cannot_start_is_one_line(
    tmp_path: Path, store: sa.Engine, drift_only: Path
) -> None:
    """No PREFECT_API_URL: the CLI says it starts a temporary server; when that cannot start (a
    PREFECT_HOME in a missing folder; a startup timeout) it fails with one line saying how to fix it."""
    args = ["run", "--config", str(drift_only), "--start", "2026-03-03T10:00Z", "--end", "2026-03-03T11:00Z"]
    missing = tmp_path / "no-such-folder" / "prefect-home"
    code, _, err = _finish(_cli(*args, env=_child_env(tmp_path, PREFECT_HOME=str(missing))))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "no-such-folder" in lines[0] and "PREFECT_API_URL" in lines[0]

    code, _, err = _finish(_cli(*args, env=_child_env(tmp_path, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="1")))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert lines[0].startswith("starting a temporary Prefect server (waiting up to 1 s"), err
    assert len(lines) == 2 and "did not answer within 1 s" in lines[1] and "PREFECT_API_URL" in lines[1], err
    assert "Traceback" not in err


def test_a_failure_after_the_commit_leaves_prefect_and_the_run_log_agreeing(
    tmp_path: Path, store: sa.Engine, loan_log: dict[str, Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window's results are committed, then the next write (its hourly profile) is cut on every
    attempt: the window has succeeded (results stored, run log succeeded) and Prefect says Completed,
    with the failed step as a warning; before, one said Failed and the other succeeded."""
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    with PgProxy.for_url(database_url) as proxy:
        config = write_config(
            tmp_path / "p.yaml",
            [model_entry("loan", loan_log["table"], monitors=[{"name": "data_drift"}])],
            proxy.url_for(database_url),
        )
        pattern = b"INSERT INTO driftline.window_profiles"
        proxy.drop_on_client(pattern, times=3)  # the write and its two retries
        end = DAY + timedelta(hours=13)
        state = monitor_model("loan", end, str(config), return_state=True)
        get_engine(proxy.url_for(database_url)).dispose()
    assert proxy.fired.count(pattern) == 3
    assert state.is_completed(), state.message
    outcome = state.result()
    assert any(w.startswith("window profile: OperationalError") for w in outcome["warnings"]), outcome
    run = _runs(store, "loan")["12:00"]
    assert run["status"] == "succeeded" and run["error"] is None
    with store.connect() as connection:
        stored = connection.execute(
            sa.text("SELECT count(*) FROM driftline.results WHERE model = 'loan' AND window_start = :s"),
            {"s": end - timedelta(hours=1)},
        ).scalar_one()
    assert stored > 5
