"""``driftline notify test``: one test message through every configured channel, each delivery reported.

The real ``slack_sdk`` client and ``httpx`` post to a local HTTP server (tests/notify/test_slack.py's
FakeSlack); e-mail goes to a port where nothing listens, so its failure is reported, not raised.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from driftline.cli.commands import app
from driftline.config.monitors import load_config
from driftline.tasks.notify import channel_warnings, configured_channels, send_test_messages
from tests.conftest import model_entry
from tests.notify.test_slack import TOKEN, FakeSlack, free_port


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    server = FakeSlack().start()
    yield server
    server.stop()


def _config(path: Path, notifications: dict[str, Any] | None, per_model: dict[str, dict[str, Any]]) -> Path:
    models = [model_entry(name, f"public.{name}_predictions") | extra for name, extra in per_model.items()]
    document: dict[str, Any] = {"models": models}
    if notifications is not None:
        document["notifications"] = notifications
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def test_every_channel_gets_one_test_message_and_each_delivery_is_reported(
    fake_slack: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    dead_smtp = free_port()
    path = _config(
        tmp_path / "monitors.yaml",
        {"slack": {"channel": "#ml-alerts", "base_url": fake_slack.base_url}},
        {
            "loan": {"notifications": {"webhook": {"url": f"http://127.0.0.1:{fake_slack.port}/hooks/loan"}}},
            "eta": {
                "notifications": {
                    "email": {"to": ["oncall@example.com"], "sender": "dl@example.com", "host": "127.0.0.1",
                              "port": dead_smtp, "timeout_s": 2}
                }
            },
        },
    )
    config = load_config(path)
    # The top-level Slack channel is inherited by both models but is one channel: one message.
    assert sorted((c, m) for c, m, _ in configured_channels(config)) == [
        ("email", "eta"), ("slack", "loan"), ("webhook", "loan")
    ]
    deliveries = {d["channel"]: d for d in send_test_messages(config)}
    assert deliveries["slack"]["delivered"] and deliveries["webhook"]["delivered"]
    assert not deliveries["email"]["delivered"] and f"127.0.0.1:{dead_smtp}" in deliveries["email"]["error"]
    (slack,) = fake_slack.posts()
    assert slack["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert slack["json"]["channel"] == "#ml-alerts" and "Test message from Driftline" in slack["json"]["text"]
    (hook,) = fake_slack.posts("/hooks/loan")
    assert hook["json"]["transition"] == "test" and hook["json"]["model"] == "loan"
    assert TOKEN not in repr(deliveries)

    # One model only: its own channels (the inherited Slack and its webhook), not eta's e-mail.
    assert sorted(d["channel"] for d in send_test_messages(config, "loan")) == ["slack", "webhook"]

    # The command: a table of deliveries; exit 1 because the e-mail failed.
    result = CliRunner().invoke(app, ["notify", "test", "--config", str(path)])
    assert result.exit_code == 1, result.output
    assert "delivered" in result.output and "failed" in result.output and TOKEN not in result.output
    ok = CliRunner().invoke(app, ["notify", "test", "--config", str(path), "--model", "loan"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.count("delivered") == 2


def test_a_rejected_token_is_a_reported_failure_without_the_token(
    fake_slack: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
    fake_slack.script = [(200, {}, {"ok": False, "error": "invalid_auth"})]
    path = _config(tmp_path / "m.yaml", {"slack": {"channel": "#x", "base_url": fake_slack.base_url}}, {"loan": {}})
    (delivery,) = send_test_messages(load_config(path))
    assert not delivery["delivered"] and "invalid_auth" in delivery["error"] and TOKEN not in delivery["error"]


def test_no_channel_is_a_clear_error_and_a_loud_warning(tmp_path: Path) -> None:
    path = _config(tmp_path / "m.yaml", None, {"loan": {}})
    result = CliRunner().invoke(app, ["notify", "test", "--config", str(path)])
    assert result.exit_code == 2 and "no notification channel is configured" in result.output
    (warning,) = channel_warnings(load_config(path))
    assert "reach nobody" in warning
    mail_only = _config(
        tmp_path / "mail.yaml",
        {"email": {"to": ["a@example.com"], "sender": "dl@example.com"}},
        {"loan": {}},
    )
    (warning,) = channel_warnings(load_config(mail_only))
    assert "only e-mail" in warning
    silenced = _config(
        tmp_path / "off.yaml", {"on_monitor_failure": False, "webhook": {"url": "http://127.0.0.1:1/x"}}, {"loan": {}}
    )
    assert any("on_monitor_failure is false" in w for w in channel_warnings(load_config(silenced)))
