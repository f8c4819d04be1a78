"""The documented example of a team's own flow composed from Driftline's tasks runs as written."""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from driftline.core.results import Kind, Status
from driftline.storage.results import load_results
from tests.conftest import DAY

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.usefixtures("prefect_api")
def test_team_flow_composes_driftline_tasks(store: sa.Engine, loan_config: Path) -> None:
    spec = importlib.util.spec_from_file_location("team_flow", ROOT / "examples" / "team_flow.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    alerts = module.team_monitoring(str(loan_config), "loan", DAY + timedelta(hours=15))
    results = load_results(store, "loan")
    (kpi,) = [r for r in results if r.metric == "approval_rate"]
    assert kpi.kind == Kind.PERFORMANCE and kpi.status in (Status.OK, Status.ALERT) and 0 <= kpi.value <= 1
    assert alerts == sum(1 for r in results if r.status == Status.ALERT)
    assert any(r.kind == Kind.DATA_DRIFT and r.feature == "income" and r.status == Status.ALERT for r in results)
    # The pipeline's last step keeps the team's hour for day and week merges, as the hourly run's does.
    with store.connect() as connection:
        hours = (
            connection.execute(
                sa.text("SELECT row_count FROM driftline.window_profiles WHERE model = 'loan' AND window_start = :s"),
                {"s": DAY + timedelta(hours=14)},
            )
            .scalars()
            .all()
        )
    assert hours == [200]
