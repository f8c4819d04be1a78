"""The Evidently monitor without its extra: one `unknown` row naming the extra, the window completes.

Its behaviour *with* Evidently is tested in tests/extras/evidently_drift.py, in the extra's own
environment (Evidently 0.7 needs pandas < 3; `.ci/run` builds `.venv-evidently` and runs it there).
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from driftline.core.results import Kind, Status
from driftline.flows.monitor import monitor_model
from driftline.storage.results import load_results
from driftline.storage.runs import load_runs
from tests.conftest import DAY, model_entry, write_config

pytestmark = pytest.mark.usefixtures("prefect_api")

EVIDENTLY = {"name": "evidently", "path": "driftline.tasks.evidently_drift:EvidentlyDrift"}


def test_without_the_extra_the_monitor_is_unknown_and_names_it(
    store: sa.Engine,
    loan_log: dict[str, Any],
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    # Absent even where the extra happens to be installed: a None entry makes the import fail.
    monkeypatch.setitem(sys.modules, "evidently", None)
    monitors = [{"name": "data_drift"}, EVIDENTLY]
    config = write_config(
        tmp_path / "m.yaml", [model_entry("loan", loan_log["table"], monitors=monitors)], database_url
    )
    outcome = monitor_model("loan", DAY + timedelta(hours=15), str(config))
    assert outcome["rows"] == 200
    results = load_results(store, "loan")
    (failed,) = [r for r in results if r.metric == "monitor:evidently"]
    assert failed.kind == Kind.DATA_DRIFT and failed.status == Status.UNKNOWN
    assert "MissingExtraError" in failed.details["error"]
    assert "pip install 'driftline[evidently]'" in failed.details["error"]
    assert any(r.details.get("primary") and r.feature == "income" and r.status == Status.ALERT for r in results)
    (run,) = load_runs(store, "loan")
    assert run["status"] == "succeeded"
