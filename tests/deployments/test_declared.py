"""Deployments are declared once (deployments/declared.py): prefect.yaml, ``serve`` and ``up`` agree with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint

from driftline.config.notifications import RetrainAction
from driftline.deployments.declared import (
    DEPLOYMENTS,
    HOURLY_AT_MINUTE_5,
    PREFECT_YAML,
    declared,
    render_prefect_yaml,
    write_prefect_yaml,
)
from driftline.deployments.serve import build_deployments
from driftline.deployments.up import build_work_pool_deployments, closed_loop_deployments

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["monitor-all", "backfill", "retrain-request", "retrain", "promote"]


def test_prefect_yaml_is_rendered_from_the_declaration() -> None:
    """If this fails, run ``python -m driftline.deployments.declared`` and commit deployments/prefect.yaml."""
    assert PREFECT_YAML == ROOT / "deployments" / "prefect.yaml"
    assert PREFECT_YAML.read_text(encoding="utf-8") == render_prefect_yaml()


def test_prefect_yaml_keeps_its_deployments_and_their_entrypoints_load(monkeypatch: pytest.MonkeyPatch) -> None:
    document = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    entries = {entry["name"]: entry for entry in document["deployments"]}
    assert list(entries) == NAMES
    assert entries["monitor-all"]["schedules"] == [{"cron": "5 * * * *", "timezone": "UTC"}]
    assert all("schedules" not in entries[name] for name in NAMES[1:])
    assert {entry["work_pool"]["name"] for entry in entries.values()} == {"driftline"}
    monkeypatch.chdir(ROOT)  # prefect deploy resolves entrypoints from the project root (the pull step)
    for deployment in DEPLOYMENTS:
        flow = load_flow_from_entrypoint(entries[deployment.name]["entrypoint"])
        assert flow.name == deployment.load_flow().name


def test_write_rewrites_a_stale_file_and_leaves_a_current_one(tmp_path: Path) -> None:
    stale = tmp_path / "prefect.yaml"
    stale.write_text("deployments: []\n", encoding="utf-8")
    assert write_prefect_yaml(stale) is True
    assert stale.read_text(encoding="utf-8") == render_prefect_yaml()
    assert write_prefect_yaml(stale) is False


def _summary(deployments: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (d.flow_name, d.name, [s.schedule.cron for s in d.schedules], d.parameters, d.description) for d in deployments
    ]


def test_serve_and_up_build_the_declared_deployments() -> None:
    served = build_deployments("/etc/monitors.yaml")
    pooled = build_work_pool_deployments("/etc/monitors.yaml")
    expected = [
        (
            d.load_flow().name,
            d.name,
            [d.cron] if d.cron else [],
            {"config_path": "/etc/monitors.yaml"},
            d.description,
        )
        for d in DEPLOYMENTS
    ]
    assert _summary(served) == expected
    assert _summary(pooled) == expected
    assert [d.name for d in served] == NAMES
    assert served[0].schedules[0].schedule.cron == HOURLY_AT_MINUTE_5
    assert served[0].schedules[0].schedule.timezone == "UTC"
    # serve runs flows from files; a work pool's worker imports the installed package.
    assert served[0].entrypoint.endswith("monitor.py:monitor_all")
    assert pooled[0].entrypoint == "driftline.flows.monitor.monitor_all"


def test_cron_overrides_only_the_scheduled_deployment() -> None:
    served = build_deployments("m.yaml", cron="0 0 1 1 *")
    assert [[s.schedule.cron for s in d.schedules] for d in served] == [["0 0 1 1 *"], [], [], [], []]


def test_closed_loop_is_the_declared_subset() -> None:
    assert [d.name for d in closed_loop_deployments("m.yaml")] == ["retrain-request", "retrain", "promote"]
    assert [d.name for d in DEPLOYMENTS if d.closed_loop] == ["retrain-request", "retrain", "promote"]


def test_full_names_and_the_default_training_deployment() -> None:
    assert [d.full_name for d in DEPLOYMENTS] == [f"{name}/{name}" for name in NAMES]
    # actions.retrain.deployment defaults to Driftline's example trainer as declared here.
    assert RetrainAction().deployment == declared("retrain").full_name


def test_the_schedule_is_written_once_in_the_product_code() -> None:
    """The CLI's --cron default, serve and up all read HOURLY_AT_MINUTE_5; prefect.yaml is rendered from it."""
    places = [
        path.relative_to(ROOT).as_posix()
        for folder in ("driftline", "tasks", "checks", "flows", "deployments")
        for path in (ROOT / folder).rglob("*.py")
        for line in path.read_text(encoding="utf-8").splitlines()
        if HOURLY_AT_MINUTE_5 in line
    ]
    assert places == ["deployments/declared.py"]
