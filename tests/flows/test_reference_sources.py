"""References from elsewhere (#18 item 2): a training table, one read-only query or a CSV/Parquet file is
fitted and stored like a range of the log, and judges the windows the same way. Real PostgreSQL and Prefect."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from driftline.cli.commands import app
from driftline.config.monitors import parse_config
from driftline.core.errors import ConfigError
from tests.conftest import REFERENCE_END, model_entry, write_config

pytestmark = pytest.mark.usefixtures("prefect_api")

WINDOWS = ["--start", "2026-03-03T11:00Z", "--end", "2026-03-03T13:00Z"]


def _training_rows(loan_log: dict[str, Any]) -> pd.DataFrame:
    """The log's two reference days as a training set: features and label, no predictions or latency."""
    rows = pd.DataFrame(loan_log["rows"])
    rows = rows[rows["ts"] < REFERENCE_END]
    return rows[["request_id", "ts", "income", "age", "region", "label"]]


def _income_drift(runner: CliRunner, config: Path) -> dict[str, set[str]]:
    shown = runner.invoke(
        app,
        ["results", "--config", str(config), "--model", "loan", "--all", "--kind", "data_drift", "--format", "json"],
    )
    assert shown.exit_code == 0, shown.output
    by_hour: dict[str, set[str]] = {}
    for r in json.loads(shown.stdout):
        if r["feature"] == "income":
            by_hour.setdefault(r["window_start"][11:16], set()).add(r["status"])
    return by_hour


@pytest.mark.parametrize("source", ["table", "file", "query"])
def test_a_reference_from_a_table_file_or_query_judges_like_a_range(
    source: str,
    store: sa.Engine,
    engine: sa.Engine,
    loan_log: dict[str, Any],
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    training = _training_rows(loan_log)
    schema = loan_log["schema"]
    if source == "table":
        training.to_sql("loan_training", engine, schema=schema, index=False)
        reference: dict[str, str] = {"table": f"{schema}.loan_training"}
    elif source == "file":
        training.to_csv(tmp_path / "train.csv", index=False)
        reference = {"file": "train.csv"}  # relative to monitors.yaml's folder
    else:
        reference = {"query": f"SELECT * FROM {schema}.loan_predictions WHERE ts < '{REFERENCE_END.isoformat()}'"}
    config = write_config(tmp_path / "monitors.yaml", [model_entry("loan", loan_log["table"], reference=reference)])
    config.write_text(config.read_text(encoding="utf-8") + f"database_url: {database_url}\n", encoding="utf-8")
    runner = CliRunner()

    checked = runner.invoke(app, ["validate", "--config", str(config)])
    assert checked.exit_code == 0, checked.output
    assert f"reference {len(training):,} rows" in checked.stdout

    ran = runner.invoke(app, ["run", "--config", str(config), *WINDOWS])
    assert ran.exit_code == 0, ran.output
    # Income shifts at 12:00: no alert before against the training rows, an alert after (on its primary
    # statistic since #16's one-verdict-per-feature; the others stay informative).
    drift = _income_drift(runner, config)
    assert "alert" in drift["12:00"] and "alert" not in drift["11:00"], drift
    with store.connect() as connection:
        stored = connection.execute(
            sa.text("SELECT count(*), min(row_count) FROM driftline.reference_profiles WHERE model = 'loan'")
        ).one()
    assert stored == (1, len(training)), "fitted once, from every source row, and stored"


def test_a_bad_reference_source_is_a_named_problem(
    store: sa.Engine,
    engine: sa.Engine,
    loan_log: dict[str, Any],
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    schema = loan_log["schema"]
    entries = [
        model_entry("no-table", loan_log["table"], reference={"table": f"{schema}.nowhere"}),
        model_entry(
            "two-statements",
            loan_log["table"],
            reference={"query": f"SELECT * FROM {schema}.loan_predictions; DROP TABLE {schema}.loan_predictions"},
        ),
        model_entry("no-income", loan_log["table"], reference={"query": f"SELECT age FROM {schema}.loan_predictions"}),
    ]
    config = write_config(tmp_path / "monitors.yaml", entries, database_url)
    outcome = CliRunner().invoke(app, ["validate", "--config", str(config)])
    assert outcome.exit_code == 2
    assert f"model 'no-table': reference: reference table '{schema}.nowhere' does not exist" in outcome.stderr
    assert "model 'two-statements': reference: SQL source refused or failed" in outcome.stderr
    assert "model 'no-income': reference: the reference query has no column 'income'" in outcome.stderr
    with engine.connect() as connection:  # the second statement never ran
        assert connection.execute(sa.text(f"SELECT count(*) FROM {schema}.loan_predictions")).scalar_one() > 0

    with pytest.raises(ConfigError, match="give one of: start and end, last, table, query or file"):
        parse_config({"models": [model_entry("m", "t", reference={"table": "x", "start": "2026-01-01T00:00:00Z"})]})
    with pytest.raises(ConfigError, match="query must be one SELECT"):
        parse_config({"models": [model_entry("m", "t", reference={"query": "DELETE FROM t"})]})


def test_multivariate_drift_samples_a_file_reference_not_an_empty_range_of_the_log(
    store: sa.Engine,
    engine: sa.Engine,
    loan_log: dict[str, Any],
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reference from a file has no range of the log: the domain classifier's reference sample is read
    from the file (before, it read the log's stand-in 1970 range and reported 'reference 0' rows)."""
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    from driftline.tasks import multivariate

    multivariate._SAMPLES.clear()
    _training_rows(loan_log).to_csv(tmp_path / "train.csv", index=False)
    monitors = [{"name": "data_drift"}, {"name": "multivariate_drift", "params": {"sample_size": 1000}}]
    entry = model_entry("loan", loan_log["table"], reference={"file": "train.csv"}, monitors=monitors)
    config = write_config(tmp_path / "monitors.yaml", [entry], database_url)
    runner = CliRunner()
    ran = runner.invoke(app, ["run", "--config", str(config), *WINDOWS])
    assert ran.exit_code == 0, ran.output
    shown = runner.invoke(
        app,
        ["results", "--config", str(config), "--model", "loan", "--all", "--kind", "data_drift", "--format", "json"],
    )
    assert shown.exit_code == 0, shown.output
    domain = [r for r in json.loads(shown.stdout) if r["metric"] == "domain_classifier_auc"]
    assert len(domain) == 2, domain
    for row in domain:
        assert row["status"] != "unknown", row
        assert row["details"]["reference_rows"] == 1000, row["details"]
    first_sample = multivariate._SAMPLES.copy()
    multivariate._SAMPLES.clear()  # as in a new process: the same rows are sampled again
    again = runner.invoke(app, ["run", "--config", str(config), *WINDOWS])
    assert again.exit_code == 0, again.output
    for key, frame in first_sample.items():
        pd.testing.assert_frame_equal(frame, multivariate._SAMPLES[key])
