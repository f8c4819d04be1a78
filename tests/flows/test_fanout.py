"""monitor-all fans out over models on a task runner: threads by default, a Dask cluster unchanged."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from driftline.flows.monitor import monitor_all
from driftline.storage.runs import load_runs
from tests.conftest import DAY, model_entry, write_config

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def six_models(loan_log: dict[str, Any], tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    models = [model_entry(f"m{i}", loan_log["table"]) for i in range(5)]
    models.append(model_entry("broken", loan_log["table"], features={"numeric": ["nope"]}))
    return write_config(tmp_path / "m.yaml", models, database_url)


def test_thread_fanout_runs_every_model_and_isolates_failures(store: sa.Engine, six_models: Path) -> None:
    outcome = monitor_all(DAY + timedelta(hours=15), str(six_models))
    assert sorted(outcome["succeeded"]) == [f"m{i}" for i in range(5)]
    assert all(o["alerts"] == ["income"] for o in outcome["succeeded"].values())
    assert "no column 'nope'" in outcome["failed"]["broken"]
    runs = {r["model"]: r["status"] for r in load_runs(store)}
    assert runs == {**{f"m{i}": "succeeded" for i in range(5)}, "broken": "failed"}


def test_same_flow_on_a_dask_cluster(
    store: sa.Engine, six_models: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect_dask import DaskTaskRunner

    # Dask workers are separate processes: they read the database from the config file like any worker.
    runner = DaskTaskRunner(
        cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True, "dashboard_address": None}
    )
    outcome = monitor_all.with_options(task_runner=runner)(DAY + timedelta(hours=15), str(six_models))
    assert sorted(outcome["succeeded"]) == [f"m{i}" for i in range(5)]
    assert "no column 'nope'" in outcome["failed"]["broken"]
    assert {r["model"] for r in load_runs(store) if r["status"] == "succeeded"} == {f"m{i}" for i in range(5)}


def test_a_shard_of_the_fleet_runs_only_its_models(store: sa.Engine, six_models: Path) -> None:
    """``models`` splits the fleet across deployments (and so across workers on several machines)."""
    outcome = monitor_all(DAY + timedelta(hours=15), str(six_models), models=["m1", "m3"])
    assert sorted(outcome["succeeded"]) == ["m1", "m3"] and outcome["failed"] == {}
    assert {r["model"] for r in load_runs(store)} == {"m1", "m3"}
    from driftline.core.errors import ConfigError

    with pytest.raises(ConfigError, match="no model named 'm9'"):
        monitor_all(DAY + timedelta(hours=15), str(six_models), models=["m1", "m9"])
