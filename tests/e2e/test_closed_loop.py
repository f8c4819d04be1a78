"""The closed loop end to end on a REAL Prefect server (PostgreSQL), with the team's own training deployment.

1. A drifted hour (loan's income +3 sd from 12:00) → ``driftline.data_drift.detected`` → the model's
   retrain automation → ``retrain-request`` → the team's (test) deployment ``team-train/team-train``,
   run with the documented parameters (asserted one by one). A second drifted hour within the cooldown
   → ``retrain-request`` ends ``Skipped: cooldown``.
2. Nothing moves until the promotion: the next hours are still judged against the configured
   reference (version 0) and the CI/CD webhook has not been called.
3. ``driftline promote --model loan --version team-v2 --reference-start 12:00 --reference-end 16:00
   --effective-from 16:00`` → a ``promote`` run ``Promoted``; the CI/CD webhook fires now; the retrain
   request is closed as promoted.
4. The next hours (16:00, 17:00) are judged against reference version 1: data drift ok.
5. Rerunning 12:00-16:00 reproduces their stored results exactly (same values, thresholds, statuses).
6. A team's pipeline emitting ``driftline.promotion.requested`` with a one-hour range (300 rows, under
   ``reference.min_rows``) → the promote-on-request automation → a ``promote`` run ``Refused``.
Each outcome is asserted by flow-run name and state name through the Prefect client (what the UI lists).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.settings import PREFECT_API_URL, temporary_settings

from driftline.config.monitors import load_config
from driftline.deployments.automations import apply_automations
from driftline.deployments.up import prefect_database_url, start_server, stop_process
from tests.conftest import DAY, model_entry, write_config
from tests.e2e.test_up import DRIFT_FROM, seed_stale_model_log
from tests.notify.test_slack import FakeSlack, free_port

ROOT = Path(__file__).resolve().parents[2]
H = timedelta(hours=1)
TEAM_FLOW = '''
from prefect import flow, serve

from driftline.deployments.up import closed_loop_deployments


@flow(name="team-train")
def team_train(model: str, reason: str, trigger_kind: str | None, trigger_status: str | None,
               window_start: str | None, window_end: str | None, training_start: str | None,
               training_end: str | None, raised_by_flow_run: str | None, retrain_run_id: int | None) -> dict:
    """A team's training pipeline: it trains (here: nothing) and leaves the promotion to a person."""
    return {{"trained": model, "on": [training_start, training_end]}}


if __name__ == "__main__":
    serve(team_train.to_deployment(name="team-train"), *closed_loop_deployments({config!r}), limit=4,
          print_starting_message=False)
'''


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[str]:
    name = f"prefect_loop_{uuid.uuid4().hex[:8]}"
    url = prefect_database_url(database_url, tmp_path, database=name)
    try:
        yield start_server(tmp_path, url, port=free_port(), ui=False, timeout_s=150, name="loop-server")["api_url"]
    finally:
        stop_process(tmp_path / "loop-server.pid")
        if url.startswith("postgresql"):
            admin = sa.create_engine(sa.make_url(database_url), isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def _env(api_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "PREFECT_"))}
    return env | {
        "PREFECT_API_URL": api_url,
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def served(server: str, tmp_path: Path, loop_config: Path) -> Iterator[str]:
    """The team's training deployment and Driftline's retrain-request and promote, served from one process."""
    script = tmp_path / "serve_loop.py"
    script.write_text(TEAM_FLOW.format(config=str(loop_config)))
    log = open(tmp_path / "serve.log", "wb")
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(server),
        cwd=str(tmp_path),
        start_new_session=True,
    )
    try:
        yield server
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if process.poll() is None:
                os.killpg(process.pid, sig)
                try:
                    process.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    pass
        log.close()


@pytest.fixture
def cicd() -> Iterator[FakeSlack]:
    sink = FakeSlack().start()
    yield sink
    sink.stop()


@pytest.fixture
def loop_config(
    engine: sa.Engine,
    log_schema: str,
    database_url: str,
    tmp_path: Path,
    cicd: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    seed_stale_model_log(engine, log_schema)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "TRUNCATE driftline.results, driftline.runs, driftline.reference_profiles, driftline.incidents, "
                "driftline.outbox, driftline.model_versions, driftline.reference_overrides, driftline.retrain_runs, "
                "driftline.reference_versions, driftline.window_profiles"
            )
        )
    entry = model_entry(
        "loan",
        f"{log_schema}.loan_predictions",
        actions={
            "retrain": {"on": ["data_drift"], "deployment": "team-train/team-train", "cooldown_hours": 24},
            "cicd_webhook": {"url": f"http://127.0.0.1:{cicd.port}/hooks/cicd"},
        },
    )
    return write_config(tmp_path / "monitors.yaml", [entry], database_url)


def _wait(what: str, check: Any, timeout_s: float, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _python(api_url: str, code: str, cwd: Path) -> dict[str, Any]:
    """Run ``code`` in a child (Prefect's in-process event/log workers would outlive the server); it
    prints ``RESULT <json>``."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=_env(api_url),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=str(cwd),
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the child failed:\n{done.stderr[-3000:]}"
    return json.loads(lines[-1].removeprefix("RESULT "))


def _monitor(api_url: str, config: Path, hours: list[int], cwd: Path) -> list[dict[str, Any]]:
    ends = [(DAY + timedelta(hours=h + 1)).isoformat() for h in hours]
    return _python(
        api_url,
        f"""
        import json
        from driftline.flows.monitor import monitor_model
        out = [monitor_model("loan", end, {str(config)!r}) for end in {ends!r}]
        print("RESULT " + json.dumps(out, default=str))
    """,
        cwd,
    )


def _runs(flow_name: str) -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))


def _final(flow_name: str, count: int) -> list[Any]:
    runs = [r for r in _runs(flow_name) if r.state is not None and r.state.is_final()]
    return sorted(runs, key=lambda r: r.created) if len(runs) >= count else []


def _stored(engine: sa.Engine, start: Any, end: Any) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT window_start, kind, metric, coalesce(feature, '') AS feature, value, threshold, status "
                "FROM driftline.results WHERE model = 'loan' AND resolution = 'hour' "
                "AND window_start >= :s AND window_start < :e"
            ),
            {"s": start, "e": end},
        ).all()
    return {(r.window_start, r.kind, r.metric, r.feature): (r.value, r.threshold, r.status) for r in rows}


def _drift_statuses(engine: sa.Engine, hour: int) -> dict[str, str]:
    return {
        f"{metric}:{feature}": status
        for (start, kind, metric, feature), (_, _, status) in _stored(
            engine, DAY + hour * H, DAY + (hour + 1) * H
        ).items()
        if kind == "data_drift"
    }


@pytest.mark.timeout(1800)  # a dozen flow runs and three CLI runs on 2 shared cores: 8-13 min under load
def test_drift_runs_the_team_pipeline_and_nothing_moves_until_a_person_promotes(
    served: str, loop_config: Path, engine: sa.Engine, cicd: FakeSlack, tmp_path: Path
) -> None:
    api_url = served
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        names = {"team-train/team-train", "retrain-request/retrain-request", "promote/promote"}

        def deployed() -> bool:
            with get_client(sync_client=True) as client:
                return {f"{d.name}" for d in client.read_deployments()} >= {"team-train", "retrain-request", "promote"}

        _wait(f"the served deployments {sorted(names)}", deployed, 120)
        applied = apply_automations(load_config(loop_config))
        assert set(applied["created"]) == {
            "driftline-loan-retrain-on-data_drift",
            "driftline-loan-promote-on-request",
            "driftline-loan-cicd-on-promoted",
        }
        time.sleep(2)  # the server loads automations on a short interval

        # 1. The drifted hour 12:00 → the team's pipeline, with the documented parameters.
        (first,) = _monitor(api_url, loop_config, [12], tmp_path)
        assert first["status"] == "alert" and "income" in first["alerts"]
        (team_run,) = _wait("the team's training run", lambda: _final("team-train", 1), 150)
        assert team_run.state.is_completed(), team_run.state
        (request,) = _final("retrain-request", 1)
        assert request.state.name == "Dispatched"
        assert request.name == "retrain-request-loan: dispatched to team-train/team-train"
        with engine.connect() as connection:
            (logged,) = connection.execute(sa.text("SELECT * FROM driftline.retrain_runs")).mappings().all()
            monitor_run = connection.execute(
                sa.text("SELECT flow_run_id FROM driftline.runs WHERE model = 'loan' AND window_start = :s"),
                {"s": DRIFT_FROM},
            ).scalar_one()
        window_end = DRIFT_FROM + H
        assert team_run.parameters == {
            "model": "loan",
            "reason": f"driftline.data_drift.detected (alert) in the window from {DRIFT_FROM.isoformat()}",
            "trigger_kind": "data_drift",
            "trigger_status": "alert",
            "window_start": DRIFT_FROM.isoformat(),
            "window_end": window_end.isoformat(),
            "training_start": (window_end - timedelta(hours=168)).isoformat(),
            "training_end": window_end.isoformat(),
            "raised_by_flow_run": monitor_run,
            "retrain_run_id": logged["id"],
        }
        assert logged["status"] == "running" and logged["details"]["flow_run_id"] == str(team_run.id)

        # 2. Nothing moves: 13:00-15:00 are judged against the configured reference (still drifted) ...
        later = _monitor(api_url, loop_config, [13, 14, 15], tmp_path)
        assert [o["status"] for o in later] == ["alert"] * 3
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM driftline.reference_versions")).scalar_one() == 0
            versions = (
                connection.execute(
                    sa.text("SELECT DISTINCT reference_version FROM driftline.runs WHERE model = 'loan'")
                )
                .scalars()
                .all()
            )
        assert versions == [0]
        # ... the retrain they asked for is within the cooldown ...
        requests = _wait("the second retrain request", lambda: _final("retrain-request", 2), 120)
        assert requests[1].state.name == "Skipped: cooldown"
        assert requests[1].name == "retrain-request-loan: skipped (cooldown)"
        assert len(_runs("team-train")) == 1
        # ... and no CI/CD webhook has been called.
        assert cicd.posts("/hooks/cicd") == []
        before = _stored(engine, DRIFT_FROM, DRIFT_FROM + 4 * H)
        assert len(before) > 40

        # 3. A person promotes the team's new version: four drifted hours (1,200 rows) as its reference.
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "driftline.cli.commands",
                "promote",
                "--config",
                str(loop_config),
                "--model",
                "loan",
                "--version",
                "team-v2",
                "--reference-start",
                DRIFT_FROM.isoformat(),
                "--reference-end",
                (DRIFT_FROM + 4 * H).isoformat(),
                "--effective-from",
                (DRIFT_FROM + 4 * H).isoformat(),
                "--note",
                "reviewed the holdout",
                "--by",
                "e2e",
                "--retrain-run-id",
                str(logged["id"]),
            ],
            env=_env(api_url),
            capture_output=True,
            text=True,
            timeout=300,
            cwd=str(tmp_path),
        )
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        assert "reference version 0 -> 1" in done.stdout
        (promotion,) = _final("promote", 1)
        assert promotion.state.name == "Promoted" and promotion.name == "promote-loan-team-v2: promoted"
        hook = _wait("the CI/CD webhook", lambda: cicd.posts("/hooks/cicd"), 60)[0]["json"]
        assert hook["event"] == "driftline.retrain.promoted" and hook["version"] == "team-v2"
        with engine.connect() as connection:
            closed = connection.execute(
                sa.text("SELECT status FROM driftline.retrain_runs WHERE id = :i"), {"i": logged["id"]}
            ).scalar_one()
        assert closed == "promoted"

        # 4. The next hours are judged against the new version: the drift is the new normal.
        _monitor(api_url, loop_config, [16, 17], tmp_path)
        for hour in (16, 17):
            statuses = _drift_statuses(engine, hour)
            assert statuses and not {k: s for k, s in statuses.items() if s in ("warning", "alert")}, statuses
        with engine.connect() as connection:
            judged = dict(
                connection.execute(
                    sa.text("SELECT window_start, reference_version FROM driftline.runs WHERE model = 'loan'")
                ).all()
            )
        assert judged[DAY + 16 * H] == judged[DAY + 17 * H] == 1 and judged[DRIFT_FROM] == 0

        # 5. Rerunning the hours before the promotion reproduces their stored results exactly.
        rerun = subprocess.run(
            [
                sys.executable,
                "-m",
                "driftline.cli.commands",
                "run",
                "--config",
                str(loop_config),
                "--model",
                "loan",
                "--start",
                DRIFT_FROM.isoformat(),
                "--end",
                (DRIFT_FROM + 4 * H).isoformat(),
            ],
            env=_env(api_url),
            capture_output=True,
            text=True,
            timeout=600,
            cwd=str(tmp_path),
        )
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert _stored(engine, DRIFT_FROM, DRIFT_FROM + 4 * H) == before

        # 6. A promotion a team's pipeline asks for by event, with too small a reference: refused, by name.
        _python(
            api_url,
            f"""
            from driftline.tasks.promotion import request_promotion
            ids = request_promotion("loan", "team-v3", reference_start={(DAY + 18 * H).isoformat()!r},
                                    reference_end={(DAY + 19 * H).isoformat()!r}, promoted_by="pipeline")
            print("RESULT " + str(len(ids)))
        """,
            tmp_path,
        )
        promotions = _wait("the event-driven promotion", lambda: _final("promote", 2), 120)
        refused = promotions[1]
        assert refused.state.name == "Refused" and refused.name == "promote-loan-team-v3: refused"
        assert "min_rows" in (refused.state.message or "")
        assert len(cicd.posts("/hooks/cicd")) == 1, "a refused promotion calls no CI/CD webhook"
