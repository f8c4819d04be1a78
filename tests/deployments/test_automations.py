"""Which automations monitors.yaml declares: nothing unless a model's ``actions`` asks (opt-in), and a
failed-run automation whenever any Slack or webhook channel is configured (top level or a model's)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.config.monitors import load_config
from driftline.core.errors import ConfigError
from driftline.deployments.automations import FAILED_AUTOMATION, desired_automations
from tests.conftest import model_entry

RETRAIN_ID = uuid.uuid4()


def _load(tmp_path: Path, models: list[dict[str, Any]], **top: Any) -> Any:
    path = tmp_path / "monitors.yaml"
    path.write_text(yaml.safe_dump({"models": models, **top}, sort_keys=False), encoding="utf-8")
    return load_config(path)


def _names(config: Any) -> dict[str, Any]:
    return {a.name: a for a in desired_automations(config, lambda name: RETRAIN_ID)}


def test_no_actions_no_automation(tmp_path: Path) -> None:
    config = _load(tmp_path, [model_entry("loan", "public.loan"), model_entry("eta", "public.eta")])
    assert _names(config) == {}


def test_a_retrain_block_opts_in_and_enabled_true_keeps_working(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        [
            model_entry("loan", "public.loan", actions={"retrain": {}}),
            model_entry("eta", "public.eta", actions={"retrain": {"enabled": True, "on": ["data_drift"]}}),
            model_entry("churn", "public.churn", actions={"retrain": {"enabled": False}}),
        ],
    )
    names = _names(config)
    assert set(names) == {
        "driftline-loan-retrain-on-data_drift",
        "driftline-loan-retrain-on-performance",
        "driftline-loan-promote-on-request",
        "driftline-eta-retrain-on-data_drift",
        "driftline-eta-promote-on-request",
    }
    assert config.model("loan").actions.retrain.approval_required is True  # unset: Driftline's trainer asks
    assert config.model("eta").actions.retrain.require_approval is None


def test_unknown_action_keys_stay_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="retrian"):
        _load(tmp_path, [model_entry("loan", "public.loan", actions={"retrian": {}})])
    with pytest.raises(ConfigError, match="deploy"):
        _load(tmp_path, [model_entry("loan", "public.loan", actions={"retrain": {"deploy": "x/y"}})])


@pytest.mark.usefixtures("prefect_api")  # the failure automation saves its webhook/Slack blocks
def test_failure_automation_exists_whenever_any_channel_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-automation-test")
    no_channel = _load(tmp_path, [model_entry("loan", "public.loan")])
    assert FAILED_AUTOMATION not in _names(no_channel)
    # A channel set only on one model (no top-level notifications) still gets failed runs reported.
    model_level = _load(
        tmp_path,
        [
            model_entry("loan", "public.loan", notifications={"webhook": {"url": "http://127.0.0.1:9/hook"}}),
            model_entry("eta", "public.eta", notifications={"slack": {"channel": "#eta"}}),
        ],
    )
    failure = _names(model_level)[FAILED_AUTOMATION]
    assert [type(a).__name__ for a in failure.actions] == ["CallWebhook", "SendNotification"]
    # Switched off explicitly at the top level: none (and `up`/`deploy` say so).
    off = _load(
        tmp_path,
        [model_entry("loan", "public.loan", notifications={"webhook": {"url": "http://127.0.0.1:9/hook"}})],
        notifications={"on_monitor_failure": False},
    )
    assert FAILED_AUTOMATION not in _names(off)
