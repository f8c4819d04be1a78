"""``driftline run`` keeps its console quiet, yet its monitor runs' logs reach the Prefect API (the UI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, LogFilter, LogFilterFlowRunId
from prefect.settings import PREFECT_API_URL

from tests.conftest import DAY

pytestmark = pytest.mark.usefixtures("prefect_api")
ROOT = Path(__file__).resolve().parents[1]


def test_monitor_run_logs_reach_the_prefect_api_while_the_console_stays_quiet(
    store: sa.Engine, loan_config: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "PREFECT_"))}
    env |= {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(ROOT)}
    start, end = DAY.replace(hour=13), DAY.replace(hour=14)
    done = subprocess.run(
        [sys.executable, "-m", "driftline.cli.commands", "run", "--config", str(loan_config), "--model", "loan",
         "--start", start.isoformat(), "--end", end.isoformat()],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "INFO" not in done.stderr, "the console stays quiet: Prefect's INFO lines are not printed"
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_="loan@2026-03-03")))
        ids = [r.id for r in runs if r.parameters.get("window_end") and "14:00" in str(r.parameters["window_end"])]
        assert ids, [r.name for r in runs]
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
    messages = [log.message for log in logs]
    # The flow's own summary line (INFO, from get_run_logger) is in the run's logs in the UI.
    assert any(m.startswith("loan 2026-03-03T13:00Z..14:00Z") and "verdict" in m for m in messages), messages
