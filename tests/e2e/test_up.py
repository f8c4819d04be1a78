"""``driftline up`` end to end: server (PostgreSQL) + process worker + deployments + automations.

Seeded drift -> a real monitor run on the up server -> its ``driftline.data_drift.detected`` event ->
the automation -> a ``retrain`` flow run that the *worker* executes and that promotes a better model
-> the next hour's data-drift verdicts are no longer alerts: the promotion starts a warm-up on
the new model's traffic (the drifted hour alone is under reference.min_rows). Then ``up`` again
(idempotent: same server and worker) and ``down`` (both stopped).

The log is built so that retraining pays: labels follow income, while the logged score is noise (a
stale model), and income shifts by three standard deviations from 12:00.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.settings import PREFECT_API_URL, temporary_settings

from driftline.deployments.up import _alive, down, up
from tests.conftest import DAY, REFERENCE_START, create_log_table, model_entry, write_config
from tests.notify.test_slack import free_port

ROOT = Path(__file__).resolve().parents[2]
ROWS_PER_HOUR = 300
EARLIEST = datetime.min.replace(tzinfo=UTC)  # sort key for a run without a start time (filtered out)
DRIFT_FROM = DAY + timedelta(hours=12)


def seed_stale_model_log(engine: sa.Engine, schema: str) -> None:
    """Two reference days and a day whose income shifts +3 sd from 12:00; labels follow income, the
    logged score does not (so a retrained candidate beats the logged predictions on the holdout)."""
    table = create_log_table(engine, schema, "loan_predictions")
    rng = np.random.default_rng(2026)
    hours = int((DAY + timedelta(hours=24) - REFERENCE_START) / timedelta(hours=1))
    rows: list[dict[str, Any]] = []
    for h in range(hours):
        start = REFERENCE_START + timedelta(hours=h)
        shift = 30_000.0 if start >= DRIFT_FROM else 0.0
        for s in np.sort(rng.uniform(0, 3600, ROWS_PER_HOUR)):
            income = float(rng.normal(50_000 + shift, 10_000))
            truth = 1 / (1 + np.exp(-3 * (income - 50_000 - shift) / 10_000))
            score = float(rng.uniform())
            rows.append(
                {
                    "request_id": len(rows) + 1,
                    "ts": start + timedelta(seconds=float(s)),
                    "income": income,
                    "age": float(rng.integers(18, 80)),
                    "region": str(rng.choice(["north", "south", "east"], p=[0.5, 0.3, 0.2])),
                    "prediction": float(score > 0.5),
                    "score": score,
                    "label": float(rng.uniform() < truth),
                    "latency_ms": float(rng.gamma(3, 10)),
                }
            )
    with engine.begin() as connection:
        connection.execute(table.insert(), rows)


@pytest.fixture
def up_home(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A home for up's PID files and logs, and a fresh Prefect database; ``down`` and drop afterwards."""
    home = tmp_path / "home"
    name = f"prefect_up_{uuid.uuid4().hex[:8]}"
    # up() exports PREFECT_API_URL into this process; monkeypatch must restore it for the other tests.
    # delenv alone records nothing when the variable is absent (and up()'s value then leaked into
    # later tests' subprocesses): setenv first records "absent", so teardown removes it again.
    monkeypatch.setenv("PREFECT_API_URL", "unset-by-test")
    monkeypatch.delenv("PREFECT_API_URL")
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    monkeypatch.setenv("PREFECT_WORKER_QUERY_SECONDS", "1")  # inherited by the worker: poll every second
    try:
        yield home, name
    finally:
        stopped = down(home)
        print(f"down: {stopped}")
        admin = sa.create_engine(sa.make_url(database_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _monitor_then_wait_for_retrain(api_url: str, config: Path, database_url: str, cwd: Path) -> dict[str, Any]:
    """In a child process (Prefect's in-process event/log workers would outlive this server and stall
    the session's exit): monitor 12:00, wait for the retrain the automation starts, monitor 13:00."""
    code = textwrap.dedent(f"""
        import json, time
        import sqlalchemy as sa
        from driftline.flows.monitor import monitor_model

        first = monitor_model("loan", {(DRIFT_FROM + timedelta(hours=1)).isoformat()!r}, {str(config)!r})
        engine = sa.create_engine({database_url!r})
        deadline, finished = time.monotonic() + 150, None
        while finished is None and time.monotonic() < deadline:
            with engine.connect() as connection:
                finished = connection.execute(sa.text(
                    "SELECT status FROM driftline.retrain_runs WHERE finished_at IS NOT NULL LIMIT 1")).scalar()
            time.sleep(0.5)
        second = monitor_model("loan", {(DRIFT_FROM + timedelta(hours=2)).isoformat()!r}, {str(config)!r})
        print("RESULT " + json.dumps({{"first": first, "retrain": finished, "second": second}}))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "PREFECT_"))}
    env |= {"PREFECT_API_URL": api_url, "PREFECT_LOGGING_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, cwd=str(cwd)
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the monitor child failed:\n{done.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("RESULT "))


def _data_drift(engine: sa.Engine, window_start: datetime) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT metric || ':' || coalesce(feature, '') AS key, status FROM driftline.results "
                "WHERE model = 'loan' AND kind = 'data_drift' AND resolution = 'hour' AND window_start = :s"
            ),
            {"s": window_start},
        ).all()
    return {row.key: row.status for row in rows}


def test_up_runs_a_drift_triggered_retrain_on_its_worker_and_the_next_hour_resets(
    up_home: tuple[Path, str], engine: sa.Engine, log_schema: str, database_url: str, tmp_path: Path
) -> None:
    home, prefect_database = up_home
    seed_stale_model_log(engine, log_schema)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "TRUNCATE driftline.results, driftline.runs, driftline.reference_profiles, driftline.incidents, "
                "driftline.outbox, driftline.model_versions, driftline.reference_overrides, driftline.retrain_runs, "
                "driftline.reference_versions"
            )
        )
    # Opted in (nothing is automated otherwise), promoting without a person's approval.
    entry = model_entry("loan", f"{log_schema}.loan_predictions", actions={"retrain": {"require_approval": False}})
    config = write_config(tmp_path / "monitors.yaml", [entry], database_url)

    started = time.monotonic()
    outcome = up(config, port=free_port(), home=home, ui=False, cron="0 0 1 1 *", prefect_database=prefect_database)
    print(f"\nup: {time.monotonic() - started:.1f} s (server, work pool, 5 deployments, automations, worker)")
    api_url = outcome["api_url"]
    assert outcome["server_started"] and _alive(outcome["server_pid"]) and _alive(outcome["worker_pid"])
    assert set(outcome["automations"]["created"]) == {
        "driftline-loan-retrain-on-data_drift",
        "driftline-loan-retrain-on-performance",
        "driftline-loan-promote-on-request",
    }

    monitored = _monitor_then_wait_for_retrain(api_url, config, database_url, tmp_path)
    assert monitored["first"]["status"] == "alert" and "income" in monitored["first"]["alerts"]
    assert monitored["retrain"] == "promoted"

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("retrain/retrain")
        runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])))
        completed = [r for r in runs if r.state is not None and r.state.is_completed() and r.start_time is not None]
        assert completed, [(r.name, r.state) for r in runs]
        run = min(completed, key=lambda r: r.start_time or EARLIEST)
        request_deployment = client.read_deployment_by_name("retrain-request/retrain-request")
        (request,) = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[request_deployment.id]))
        )
        (event,) = [
            e
            for e in client.request(
                "POST",
                "/events/filter",
                json={
                    "filter": {
                        "event": {"name": ["driftline.data_drift.detected"]},
                        "occurred": {"since": "2020-01-01T00:00:00Z"},
                    }
                },
            ).json()["events"]
            if e["payload"]["window_start"] == DRIFT_FROM.isoformat()
        ]
    occurred = datetime.fromisoformat(event["occurred"]).astimezone(UTC)
    assert run.created is not None and run.start_time is not None
    print(
        f"event -> retrain run {run.name}: created after {(run.created - occurred).total_seconds():.1f} s, "
        f"started after {(run.start_time - occurred).total_seconds():.1f} s (worker polling every 1 s)"
    )
    # The drift automation created the retrain request, which ran the training deployment (the example
    # trainer); both were run by up's worker from the work pool, and each says its outcome by name.
    assert request.created_by is not None and request.created_by.display_value == "driftline-loan-retrain-on-data_drift"
    assert request.state.name == "Dispatched" and request.name == "retrain-request-loan: dispatched to retrain/retrain"
    assert run.state.name == "Promoted" and run.name == "retrain-loan: promoted"
    assert run.work_pool_name == request.work_pool_name == "driftline"
    worker_log = (home / "prefect-worker.log").read_text(errors="replace")
    assert str(run.id) in worker_log and str(request.id) in worker_log
    assert run.parameters["model"] == "loan"
    assert run.parameters["window_start"] == DRIFT_FROM.isoformat()
    assert run.parameters["window_end"] == (DRIFT_FROM + timedelta(hours=1)).isoformat()

    with engine.connect() as connection:
        override = connection.execute(
            sa.text(
                "SELECT reference_start, reference_end, effective_from, warmup FROM driftline.reference_versions "
                "WHERE model = 'loan'"
            )
        ).one()
    # The drifted hour (300 rows) is under reference.min_rows (1,000): the promotion is a warm-up on the
    # new model's first 24 hours, effective from the hour after the drifted one (which keeps its verdict).
    after_drift = DRIFT_FROM + timedelta(hours=1)
    assert (override.reference_start, override.reference_end) == (after_drift, after_drift + timedelta(hours=24))
    assert override.effective_from == after_drift

    # The drifted hour alerted on income; the next hour is inside the new model's warm-up: unknown, with
    # that reason, never judged against the old reference (nor against a handful of rows).
    before, after = _data_drift(engine, DRIFT_FROM), _data_drift(engine, DRIFT_FROM + timedelta(hours=1))
    assert before["wasserstein:income"] == "alert"
    assert after and set(after.values()) == {"unknown"}, after

    # up is idempotent: the healthy server and the live worker are reused, the automations updated.
    again = up(
        config,
        port=int(api_url.split(":")[2].split("/")[0]),
        home=home,
        ui=False,
        cron="0 0 1 1 *",
        prefect_database=prefect_database,
    )
    assert not again["server_started"] and again["worker_pid"] == outcome["worker_pid"]
    assert again["automations"]["created"] == [] and len(again["automations"]["updated"]) == 3

    assert down(home) == {"prefect-worker": True, "prefect-server": True}
    assert not _alive(outcome["worker_pid"]) and not _alive(outcome["server_pid"])
