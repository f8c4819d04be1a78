"""End to end on a REAL Prefect server: a drift event → the automation → a served retrain run that completes.

Starts ``prefect server start`` (detached, on a fresh PostgreSQL database of the test server, via
``deployments/up.py``) on a free port, serves ``retrain`` from a subprocess polling every second,
applies the automations from the config, emits the drift event, and waits (bounded) for a retrain
flow run with ``model=loan`` to complete. Also: a failed monitor run reaches the webhook and Slack
through the failure automation. Every process it starts is stopped by its own PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.settings import PREFECT_API_URL, temporary_settings

from driftline.config.monitors import load_config
from driftline.config.notifications import NotificationsConfig, SlackChannel, WebhookChannel
from driftline.core.results import Kind, Result, Status
from driftline.core.window import Window
from driftline.deployments.automations import apply_automations
from driftline.deployments.up import deploy, prefect_database_url, start_server, stop_process
from driftline.storage.retrains import retrain_runs
from driftline.tasks.events import emit_window_events
from tests.conftest import DAY
from tests.notify.test_slack import FakeSlack, free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "xoxb-e2e-failure-token-42"


@pytest.fixture
def prefect_server(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A real Prefect server on a fresh PostgreSQL database (SQLite where the server lacks pg_trgm)."""
    name = f"prefect_e2e_{uuid.uuid4().hex[:8]}"
    url = prefect_database_url(database_url, tmp_path, database=name)
    backend = "a fresh PostgreSQL database" if url.startswith("postgresql") else "SQLite (no pg_trgm on this server)"
    started = time.monotonic()
    try:
        server = start_server(tmp_path, url, port=free_port(), ui=False, timeout_s=150, name="e2e-server")
        print(f"\nprefect server healthy after {time.monotonic() - started:.1f} s ({backend})")
        yield server["api_url"]
    finally:
        stop_process(tmp_path / "e2e-server.pid")
        if url.startswith("postgresql"):
            admin = sa.create_engine(sa.make_url(database_url), isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def _child_env(api_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "PREFECT_"))}
    return env | {
        "PREFECT_API_URL": api_url,
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def opted_in(loan_config: Path) -> Path:
    """loan_config with the model opted in to retraining (nothing is automated otherwise), without approval."""
    document = yaml.safe_load(loan_config.read_text())
    document["models"][0]["actions"] = {"retrain": {"require_approval": False}}
    loan_config.write_text(yaml.safe_dump(document, sort_keys=False))
    return loan_config


@pytest.fixture
def served_retrain(prefect_server: str, tmp_path: Path, opted_in: Path) -> Iterator[subprocess.Popen[bytes]]:
    """retrain-request, retrain (the example trainer) and promote, served from one process."""
    script = tmp_path / "serve_retrain.py"
    script.write_text(
        textwrap.dedent(f"""
        from prefect import serve

        from driftline.deployments.up import closed_loop_deployments

        if __name__ == "__main__":  # the runner starts each flow run in a spawned child that re-imports this
            serve(*closed_loop_deployments({str(opted_in)!r}), limit=2, print_starting_message=False)
    """)
    )
    log = open(tmp_path / "serve.log", "wb")
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_child_env(prefect_server),
        cwd=str(tmp_path),
        start_new_session=True,
    )
    try:
        yield process
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if process.poll() is None:
                os.killpg(process.pid, sig)
                try:
                    process.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    pass
        log.close()


def _wait(what: str, check: Any, timeout_s: float, every_s: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def test_drift_event_triggers_a_completed_retrain_and_failures_notify(
    prefect_server: str,
    served_retrain: subprocess.Popen[bytes],
    loan_config: Path,
    engine: sa.Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = FakeSlack().start()
    monkeypatch.setenv("DRIFTLINE_E2E_SLACK_TOKEN", TOKEN)
    try:
        with temporary_settings(updates={PREFECT_API_URL: prefect_server}):
            with get_client(sync_client=True) as client:
                named = DeploymentFilter(name=DeploymentFilterName(any_=["retrain", "retrain-request", "promote"]))
                served = _wait(
                    "the served deployments",
                    lambda: (found := client.read_deployments(deployment_filter=named)) and len(found) == 3 and found,
                    90,
                )
                (deployment,) = [d for d in served if d.name == "retrain"]
            config = load_config(loan_config)
            declared = SimpleNamespace(
                models=config.models,
                notifications=NotificationsConfig(
                    webhook=WebhookChannel(url=f"http://127.0.0.1:{sink.port}/hooks/ops"),
                    slack=SlackChannel(
                        channel="#ml-ops", token_env="DRIFTLINE_E2E_SLACK_TOKEN", base_url=sink.base_url
                    ),
                ),
            )
            first = apply_automations(declared)
            second = apply_automations(declared)  # idempotent: same names, updated, nothing new
            expected = {
                "driftline-loan-retrain-on-data_drift",
                "driftline-loan-retrain-on-performance",
                "driftline-loan-promote-on-request",
                "driftline-monitor-failed",
            }
            assert set(first["created"]) == expected and set(second["updated"]) == expected
            assert second["created"] == [] and second["deleted"] == []
            with get_client(sync_client=True) as client:
                ours = [a for a in client.read_automations() if a.name.startswith("driftline-")]
            assert sorted(a.name for a in ours) == sorted(expected)
            time.sleep(1.5)  # the server loads automations on a short interval

            window = Window(DAY.replace(hour=15), DAY.replace(hour=16))
            drift = [
                Result(
                    model="loan",
                    window_start=window.start,
                    window_end=window.end,
                    kind=Kind.DATA_DRIFT,
                    metric="ks",
                    feature="income",
                    value=0.71,
                    threshold=0.2,
                    status=Status.ALERT,
                    details={"p_value": 1e-30},
                )
            ]
            emitted_at = datetime.now(UTC)
            (event_id,) = emit_window_events("loan", window, drift, outbox_engine=engine)

            def completed_retrain() -> Any:
                with get_client(sync_client=True) as client:
                    runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id={"any_": [deployment.id]}))
                done = [r for r in runs if r.state is not None and r.state.is_completed()]
                failed = [r for r in runs if r.state is not None and r.state.is_final() and not r.state.is_completed()]
                assert not failed, f"retrain run ended {failed[0].state}"
                return done

            (run,) = _wait("a completed retrain run", completed_retrain, 120, every_s=0.5)
            latency = (run.start_time - emitted_at).total_seconds()
            print(
                f"event {event_id} -> retrain run {run.name}: created after "
                f"{(run.created - emitted_at).total_seconds():.1f} s, started after {latency:.1f} s, "
                f"completed after {(run.end_time - emitted_at).total_seconds():.1f} s"
            )
            assert latency < 60
            assert run.parameters["model"] == "loan"
            assert run.parameters["reason"].startswith("driftline.data_drift.detected (alert)")
            # Run through retrain-request, with the documented parameters (and the deployment's config_path).
            assert run.parameters["trigger_kind"] == "data_drift" and run.parameters["trigger_status"] == "alert"
            assert run.parameters["config_path"] == str(loan_config)
            assert (run.parameters["window_start"], run.parameters["window_end"]) == (
                window.start.isoformat(),
                window.end.isoformat(),
            )
            (logged,) = retrain_runs(engine, "loan")
            assert logged["id"] == run.parameters["retrain_run_id"]
            assert logged["details"]["flow_run_id"] == logged["details"]["trainer_flow_run_id"] == str(run.id)
            assert logged["status"] in {"promoted", "rejected"} and logged["finished_at"] is not None
            assert run.state.name in {"Promoted", "Rejected"} and run.name == f"retrain-loan: {logged['status']}"

            # A monitor run that fails → the failure automation calls the webhook and posts to Slack. It runs
            # in its own process: Prefect's in-process log/event workers would keep items for this server
            # after it stops and stall this session's exit.
            code = (
                "from driftline.flows.monitor import monitor_model\n"
                f"state = monitor_model('no-such-model', None, {str(loan_config)!r}, return_state=True)\n"
                "print('monitor run failed' if state.is_failed() else 'monitor run did not fail')\n"
            )
            done = subprocess.run(
                [sys.executable, "-c", code],
                env=_child_env(prefect_server),
                capture_output=True,
                text=True,
                timeout=120,
                cwd=str(tmp_path),
            )
            assert "monitor run failed" in done.stdout, done.stderr[-2000:]
            hook = _wait("the failure webhook", lambda: sink.posts("/hooks/ops"), 45)[0]["json"]
            assert hook["flow"] == "monitor-model" and hook["state"] == "Failed"
            slack = _wait("the failure Slack message", lambda: sink.posts(), 30)[0]
            assert slack["headers"]["Authorization"] == f"Bearer {TOKEN}"
            assert slack["json"]["channel"] == "#ml-ops" and "monitor-model" in slack["json"]["text"]

            # `driftline deploy`: work pool + the three deployments (module entrypoints) + automations.
            deployed = deploy(loan_config, work_pool="driftline-e2e")
            assert deployed["work_pool_created"] and len(deployed["deployment_ids"]) == 5
            with get_client(sync_client=True) as client:
                monitor_all = client.read_deployment_by_name("monitor-all/monitor-all")
                assert monitor_all.work_pool_name == "driftline-e2e"
                assert monitor_all.entrypoint == "driftline.flows.monitor.monitor_all"
                assert monitor_all.parameters == {"config_path": str(loan_config.resolve())}
            # The file has no channel: the failure automation is pruned, and deploy says so out loud.
            assert deployed["automations"]["deleted"] == ["driftline-monitor-failed"]
            assert deployed["warnings"] and "reach nobody" in deployed["warnings"][0]
    finally:
        sink.stop()
