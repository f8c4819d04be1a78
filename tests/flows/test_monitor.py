"""The flows on a real Prefect API (test harness) and a real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.artifacts import Artifact

from driftline.core.results import Kind, Status
from driftline.flows.monitor import backfill, monitor_all, monitor_model
from driftline.storage.results import load_results
from driftline.storage.runs import load_runs
from tests.conftest import DAY, model_entry, write_config

pytestmark = pytest.mark.usefixtures("prefect_api")


def _drift(results: list[Any], feature: str) -> set[Status]:
    """The feature's verdicts: its primary statistic's rows (the others are informational, #16)."""
    return {r.status for r in results if r.kind == Kind.DATA_DRIFT and r.feature == feature and r.details["primary"]}


def test_monitor_model_flags_the_shifted_feature_only(store: sa.Engine, loan_config: Path) -> None:
    calm = monitor_model("loan", DAY + timedelta(hours=3), str(loan_config))
    shifted = monitor_model("loan", DAY + timedelta(hours=15), str(loan_config))
    assert calm["status"] == "ok" and calm["rows"] == 200
    assert shifted["status"] == "alert" and shifted["alerts"] == ["income"]
    results = load_results(store, "loan", DAY + timedelta(hours=14), DAY + timedelta(hours=15))
    assert _drift(results, "income") == {Status.ALERT}
    assert Status.ALERT not in _drift(results, "age") | _drift(results, "region")
    metrics = {(r.feature, r.metric) for r in results if r.kind == Kind.DATA_DRIFT}
    assert {
        ("income", "ks"),
        ("income", "psi"),
        ("income", "jensen_shannon"),
        ("region", "chi_square"),
        ("region", "psi"),
        ("region", "jensen_shannon"),
    } <= metrics
    ks = next(r for r in results if r.feature == "income" and r.metric == "ks")
    assert ks.value is not None and ks.value > 0.5 and ks.threshold == 0.2 and ks.details["p_value"] < 1e-10


def test_rerun_is_idempotent(store: sa.Engine, loan_config: Path) -> None:
    end = DAY + timedelta(hours=15)
    monitor_model("loan", end, str(loan_config))
    first = load_results(store, "loan")
    monitor_model("loan", end, str(loan_config))
    second = load_results(store, "loan")
    assert len(first) == len(second) > 0
    assert [(r.metric, r.feature, r.value, r.status) for r in first] == [
        (r.metric, r.feature, r.value, r.status) for r in second
    ]
    (run,) = load_runs(store, "loan")
    assert run["attempts"] == 2 and run["status"] == "succeeded"
    with store.connect() as connection:
        profiles = connection.execute(sa.text("SELECT count(*) FROM driftline.reference_profiles")).scalar_one()
    assert profiles == 1, "the reference is fitted once and reused"


def test_empty_window_is_unknown_with_reason(store: sa.Engine, loan_config: Path) -> None:
    outcome = monitor_model("loan", DAY + timedelta(days=3), str(loan_config))
    assert outcome["rows"] == 0
    results = load_results(store, "loan")
    drift = [r for r in results if r.kind == Kind.DATA_DRIFT]
    assert drift and all(r.status == Status.UNKNOWN for r in drift)
    assert all("window has 0 rows" in r.details["reason"] for r in drift)
    (volume,) = [r for r in results if r.metric == "row_count"]
    assert volume.status == Status.ALERT and volume.value == 0


def test_artifact_per_model(store: sa.Engine, loan_config: Path) -> None:
    monitor_model("loan", DAY + timedelta(hours=15), str(loan_config))
    artifact = Artifact.get("driftline-loan")
    assert artifact is not None
    assert "alert" in str(artifact.data) and "income" in str(artifact.data)


def test_monitor_all_isolates_a_failing_model(
    store: sa.Engine, loan_log: dict[str, Any], tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    broken = model_entry("broken", loan_log["table"], features={"numeric": ["income", "no_such_column"]})
    config = write_config(tmp_path / "m.yaml", [broken, model_entry("loan", loan_log["table"])], database_url)
    outcome = monitor_all(DAY + timedelta(hours=15), str(config))
    assert set(outcome["succeeded"]) == {"loan"}
    assert "no column 'no_such_column'" in outcome["failed"]["broken"]
    runs = {r["model"]: r for r in load_runs(store)}
    assert runs["broken"]["status"] == "failed" and "no_such_column" in runs["broken"]["error"]
    assert runs["loan"]["status"] == "succeeded"


def test_backfill_covers_consecutive_hours(store: sa.Engine, loan_config: Path) -> None:
    outcome = backfill("loan", DAY + timedelta(hours=10), DAY + timedelta(hours=14), str(loan_config))
    assert [o["window_start"][11:16] for o in outcome["succeeded"]] == ["10:00", "11:00", "12:00", "13:00"]
    assert not outcome["failed"]
    statuses = [o["status"] for o in outcome["succeeded"]]
    assert statuses[:2] == ["ok", "ok"] and statuses[2:] == ["alert", "alert"]


def test_rolling_reference(
    store: sa.Engine, loan_log: dict[str, Any], tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    config = write_config(
        tmp_path / "m.yaml", [model_entry("loan", loan_log["table"], reference={"last": "2d"})], database_url
    )
    assert monitor_model("loan", DAY + timedelta(hours=3), str(config))["status"] == "ok"
    assert monitor_model("loan", DAY + timedelta(hours=15), str(config))["alerts"] == ["income"]
    with store.connect() as connection:
        spans = connection.execute(
            sa.text("SELECT reference_start, reference_end FROM driftline.reference_profiles WHERE model = 'loan'")
        ).all()
    assert len(spans) == 1, "both hours of one day share one fitted reference"
    assert spans[0][1] == DAY and spans[0][0] == DAY - timedelta(days=2)


def test_each_run_can_refresh_the_report_and_link_it(
    store: sa.Engine, loan_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("DRIFTLINE_REPORTS_URL", "https://reports.internal.example/driftline/")
    outcome = monitor_model("loan", DAY + timedelta(hours=15), str(loan_config))
    assert outcome["report"] == "https://reports.internal.example/driftline/loan.html"
    html = (tmp_path / "reports" / "loan.html").read_text(encoding="utf-8")
    assert "income" in html
    link = Artifact.get("driftline-loan-report")
    assert link is not None and "https://reports.internal.example/driftline/loan.html" in str(link.data)
    summary = Artifact.get("driftline-loan")
    assert summary is not None and "reports.internal.example/driftline/loan.html" in (summary.description or "")
