"""driftline backtest (#16 item 6): stored profiles and results re-judged under candidate settings."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from driftline.cli.commands import app
from driftline.config.monitors import load_config
from driftline.core.errors import ConfigError
from driftline.flows.monitor import monitor_model
from driftline.tasks.backtest import candidate_config, run_backtest
from tests.conftest import DAY

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_candidate_config_applies_dotted_yaml_settings(loan_config: Path) -> None:
    candidate = candidate_config(
        loan_config, "loan", ["drift.alpha=0.05", "drift.thresholds.wasserstein={warning: 0.5, alert: 2.0}"]
    )
    assert candidate.drift.alpha == 0.05
    assert candidate.drift.thresholds["wasserstein"].alert == 2.0
    with pytest.raises(ConfigError, match="key=value"):
        candidate_config(loan_config, "loan", ["drift.alpha"])
    with pytest.raises(ConfigError, match="alpha"):
        candidate_config(loan_config, "loan", ["drift.alpha=2"])


def test_backtest_rejudges_stored_windows_without_the_log(store: sa.Engine, loan_config: Path) -> None:
    for hour in (3, 15):  # a calm hour, and one where income shifted
        monitor_model("loan", DAY + timedelta(hours=hour), str(loan_config))
    current = load_config(loan_config).model("loan")
    lenient = candidate_config(loan_config, "loan", ["drift.thresholds.wasserstein={warning: 5, alert: 9}"])
    with store.begin() as connection:  # the prediction log is gone: the backtest must not need it
        schema, table = current.schema_and_table
        connection.execute(sa.text(f'DROP TABLE "{schema}"."{table}"'))
    outcome = run_backtest(store, current, lenient, DAY, DAY + timedelta(hours=16))
    assert outcome.windows == 2 and outcome.missing_profiles == 0
    assert outcome.current["data_drift"].alert == 1  # the shifted hour, as the hourly run judged it
    assert outcome.candidate["data_drift"].alert == 0  # Wasserstein levels no shift here reaches
    assert outcome.current["operational"].windows == 2

    printed = CliRunner().invoke(
        app,
        [
            "backtest",
            "--config",
            str(loan_config),
            "--model",
            "loan",
            "--start",
            DAY.isoformat(),
            "--end",
            (DAY + timedelta(hours=16)).isoformat(),
            "--set",
            "drift.thresholds.wasserstein={warning: 5, alert: 9}",
        ],
    )
    assert printed.exit_code == 0, printed.output
    assert "data_drift" in printed.output and "2 stored windows" in printed.output
