"""The command line through typer's runner, on a real PostgreSQL and Prefect API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from driftline.cli.commands import app
from tests.conftest import model_entry, write_config

pytestmark = pytest.mark.usefixtures("prefect_api")

RECORD_KEYS = {
    "model",
    "window_start",
    "window_end",
    "kind",
    "metric",
    "feature",
    "value",
    "threshold",
    "status",
    "details",
}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _results(runner: CliRunner, config: Path, *extra: str) -> list[dict[str, Any]]:
    outcome = runner.invoke(app, ["results", "--config", str(config), "--model", "loan", "--format", "json", *extra])
    assert outcome.exit_code == 0, outcome.output
    return json.loads(outcome.stdout)


def test_run_then_results_json_one_set_per_hour(runner: CliRunner, store: sa.Engine, loan_config: Path) -> None:
    args = ["run", "--config", str(loan_config), "--start", "2026-03-03T10:00:00Z", "--end", "2026-03-03T14:00:00Z"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    records = _results(runner, loan_config)
    assert records and all(set(r) >= RECORD_KEYS for r in records)
    hours = sorted({r["window_start"] for r in records})
    assert hours == ["2026-03-03T10:00:00Z", "2026-03-03T11:00:00Z", "2026-03-03T12:00:00Z", "2026-03-03T13:00:00Z"]
    per_hour = {h: sum(1 for r in records if r["window_start"] == h) for h in hours}
    assert len(set(per_hour.values())) == 1, per_hour
    assert all(r["window_end"][11:13] == f"{int(r['window_start'][11:13]) + 1:02d}" for r in records)
    assert {r["kind"] for r in records} <= {"data_drift", "concept_drift", "performance", "data_quality", "operational"}
    assert {r["status"] for r in records} <= {"ok", "warning", "alert", "unknown"}
    assert any(r["feature"] is None for r in records)  # model-level rows
    late_income = [r for r in records if r["feature"] == "income" and r["window_start"] >= "2026-03-03T12"]
    assert {r["status"] for r in late_income if r["kind"] == "data_drift" and r["details"]["primary"]} == {"alert"}

    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert len(_results(runner, loan_config)) == len(records), "a rerun must not change the count"

    only_two = _results(
        runner, loan_config, "--start", "2026-03-03T12:00Z", "--end", "2026-03-03T14:00Z", "--kind", "data_drift"
    )
    assert {r["window_start"] for r in only_two} == {"2026-03-03T12:00:00Z", "2026-03-03T13:00:00Z"}
    assert {r["kind"] for r in only_two} == {"data_drift"}

    table = runner.invoke(app, ["results", "--config", str(loan_config), "--model", "loan", "--format", "table"])
    assert table.exit_code == 0 and "income" in table.stdout


def _one_line_error(outcome: Any) -> str:
    assert outcome.exit_code == 2, outcome.output
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, outcome.stderr
    return lines[0]


def test_bad_config_is_one_line_error(runner: CliRunner, tmp_path: Path) -> None:
    config = write_config(tmp_path / "m.yaml", [model_entry("loan", "t", task="ranking")])
    line = _one_line_error(runner.invoke(app, ["run", "--config", str(config)]))
    assert "m.yaml: model 'loan': task:" in line


def test_unreachable_database(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_DATABASE_URL", "postgresql+psycopg://nobody:s3cret-pw@127.0.0.1:1/none")
    config = write_config(tmp_path / "m.yaml", [model_entry("loan", "t")])
    line = _one_line_error(runner.invoke(app, ["run", "--config", str(config)]))
    assert "cannot connect to" in line and "127.0.0.1:1" in line
    assert "s3cret-pw" not in line, "the password must never be printed"


def test_missing_column_is_named(
    runner: CliRunner,
    store: sa.Engine,
    loan_log: dict[str, Any],
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    entry = model_entry("loan", loan_log["table"], features={"numeric": ["income", "salary"]})
    config = write_config(tmp_path / "m.yaml", [entry], database_url)
    line = _one_line_error(
        runner.invoke(
            app, ["run", "--config", str(config), "--start", "2026-03-03T10:00Z", "--end", "2026-03-03T11:00Z"]
        )
    )
    assert "no column 'salary'" in line
    table = write_config(tmp_path / "t.yaml", [model_entry("loan", f"{loan_log['schema']}.gone")], database_url)
    line = _one_line_error(runner.invoke(app, ["run", "--config", str(table)]))
    assert "does not exist" in line and ".gone" in line


def test_results_rejects_bad_format_and_kind(runner: CliRunner, loan_config: Path) -> None:
    assert "--format must be one of table, json, jsonl, csv" in _one_line_error(
        runner.invoke(app, ["results", "--config", str(loan_config), "--model", "loan", "--format", "xml"])
    )
    assert "--kind must be one of" in _one_line_error(
        runner.invoke(app, ["results", "--config", str(loan_config), "--model", "loan", "--kind", "drift"])
    )


def test_validate_and_db_upgrade(runner: CliRunner, store: sa.Engine, loan_config: Path) -> None:
    validated = runner.invoke(app, ["validate", "--config", str(loan_config)])
    assert validated.exit_code == 0 and "ok loan" in validated.stdout
    upgraded = runner.invoke(app, ["db", "upgrade", "--config", str(loan_config)])
    from driftline.storage.migrate import head_revision

    assert upgraded.exit_code == 0 and f"revision {head_revision()}" in upgraded.stdout


def test_compare_two_csv_files(runner: CliRunner, tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(11)
    n = 2000
    reference = pd.DataFrame(
        {"income": rng.normal(50, 10, n), "age": rng.normal(40, 10, n), "region": rng.choice(["n", "s", "e"], n)}
    )
    current = reference.copy()
    current["income"] = rng.normal(65, 10, n)
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current.to_csv(tmp_path / "current.csv", index=False)
    outcome = runner.invoke(
        app,
        [
            "compare",
            "--reference",
            str(tmp_path / "reference.csv"),
            "--current",
            str(tmp_path / "current.csv"),
            "--format",
            "json",
            "--out",
            str(tmp_path / "c.html"),
        ],
    )
    assert outcome.exit_code == 0, outcome.output
    records = json.loads(outcome.stdout)
    assert set(records[0]) >= RECORD_KEYS
    alerted = {r["feature"] for r in records if r["status"] == "alert" and r["feature"]}
    assert alerted == {"income"}
    assert "income=numeric" in outcome.stderr and "region=categorical" in outcome.stderr
    assert (tmp_path / "c.html").stat().st_size > 10_000


def test_report_command(runner: CliRunner, store: sa.Engine, loan_config: Path, tmp_path: Path) -> None:
    ran = runner.invoke(
        app, ["run", "--config", str(loan_config), "--start", "2026-03-03T11:00Z", "--end", "2026-03-03T13:00Z"]
    )
    assert ran.exit_code == 0, ran.output
    out = tmp_path / "loan.html"
    made = runner.invoke(
        app,
        [
            "report",
            "--config",
            str(loan_config),
            "--model",
            "loan",
            "--start",
            "2026-03-03T00:00Z",
            "--end",
            "2026-03-04T00:00Z",
            "--out",
            str(out),
        ],
    )
    assert made.exit_code == 0, made.output
    html = out.read_text(encoding="utf-8")
    assert "income" in html and "<script" in html and "cdn" not in html.lower()
