"""The command line's everyday options (#18): --version, results filters and formats, --fail-on, and the
per-window log lines a run prints when nobody watches a terminal. Real PostgreSQL, real Prefect API."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from driftline import __version__
from driftline.cli.commands import app
from driftline.cli.output import FAIL_ON_EXIT_CODE, results_table, wide_console

pytestmark = pytest.mark.usefixtures("prefect_api")

WINDOW_LINE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z \[(\d+)/(\d+)\] loan (2026-03-03T\d{2}:00Z)\.\.\d{2}:00Z rows=(\d+) "
    r"verdict=(ok|warning|alert|unknown)( alerts=\S+)? \(\d+\.\d s\)$"
)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_version(runner: CliRunner) -> None:
    outcome = runner.invoke(app, ["--version"])
    assert outcome.exit_code == 0 and outcome.stdout.strip() == f"driftline {__version__}"


def _results(runner: CliRunner, config: Path, *extra: str) -> Any:
    outcome = runner.invoke(app, ["results", "--config", str(config), "--model", "loan", *extra])
    assert outcome.exit_code == 0, outcome.output
    return outcome


def test_run_logs_a_line_per_window_and_fails_on_alert(
    runner: CliRunner, store: sa.Engine, loan_config: Path, tmp_path: Path
) -> None:
    args = ["run", "--config", str(loan_config), "--start", "2026-03-03T11:00Z", "--end", "2026-03-03T13:00Z"]
    ran = runner.invoke(app, [*args, "--fail-on", "alert"])
    # 12:00 is after the income shift: its window alerts, so --fail-on alert gives the documented exit code.
    assert ran.exit_code == FAIL_ON_EXIT_CODE, ran.output
    assert "--fail-on alert" in ran.stderr
    lines = [line for line in ran.stderr.splitlines() if WINDOW_LINE.match(line)]
    assert len(lines) == 2, ran.stderr
    parsed = [WINDOW_LINE.match(line).groups() for line in lines]  # type: ignore[union-attr]
    assert [(p[0], p[1], p[2]) for p in parsed] == [("1", "2", "2026-03-03T11:00Z"), ("2", "2", "2026-03-03T12:00Z")]
    assert all(int(p[3]) == 200 for p in parsed)
    assert parsed[1][4] == "alert" and "income" in (parsed[1][5] or "")

    # Without --fail-on the same alerts exit 0; an unknown level is a one-line error.
    assert runner.invoke(app, args).exit_code == 0
    bad = runner.invoke(app, [*args, "--fail-on", "panic"])
    assert bad.exit_code == 2 and "--fail-on must be warning or alert" in bad.stderr

    # --status: only the rows with that status; the default range is the 24 h up to the latest window.
    everything = json.loads(_results(runner, loan_config, "--format", "json").stdout)
    default_range = _results(runner, loan_config, "--format", "json")
    assert "the last 24 h of results" in default_range.stderr
    alerts = json.loads(_results(runner, loan_config, "--status", "alert", "--format", "json").stdout)
    assert alerts and {r["status"] for r in alerts} == {"alert"}
    assert {r["feature"] for r in alerts if r["kind"] == "data_drift"} >= {"income"}
    assert len(alerts) == sum(1 for r in everything if r["status"] == "alert")
    flagged = json.loads(_results(runner, loan_config, "--status", "warning,alert", "--format", "json").stdout)
    assert len(flagged) == sum(1 for r in everything if r["status"] in ("warning", "alert"))
    assert (
        "--status must be"
        in runner.invoke(app, ["results", "--config", str(loan_config), "--model", "loan", "--status", "bad"]).stderr
    )

    # --since is relative to now: these windows are from March, so nothing in the last 24 h.
    assert json.loads(_results(runner, loan_config, "--since", "24h", "--format", "json").stdout) == []
    assert len(json.loads(_results(runner, loan_config, "--all", "--format", "json").stdout)) == len(everything)

    # jsonl: one record per line, the same records; csv: a header and one row per record.
    jsonl = [json.loads(line) for line in _results(runner, loan_config, "--format", "jsonl").stdout.splitlines()]
    assert jsonl == everything
    rows = list(csv.DictReader(io.StringIO(_results(runner, loan_config, "--format", "csv").stdout)))
    assert len(rows) == len(everything)
    assert set(rows[0]) >= {"model", "window_start", "window_end", "kind", "metric", "feature", "status", "details"}
    assert json.loads(rows[0]["details"]) == everything[0]["details"]

    # Piped (CliRunner is not a terminal), the table is not cut at 80 columns: long metric names stay whole.
    table = _results(runner, loan_config, "--format", "table").stdout
    longest = max((r["metric"] for r in everything), key=len)
    assert len(longest) > 30 and longest in table
    assert max(len(line) for line in table.splitlines()) > 80

    # The report's default period follows the model's latest results (March), not the clock (December).
    out = tmp_path / "report.html"
    made = runner.invoke(app, ["report", "--config", str(loan_config), "--model", "loan", "--out", str(out)])
    assert made.exit_code == 0, made.output
    assert "report period 2026-02-24 13:00 .. 2026-03-03 13:00 UTC" in made.stderr
    html = out.read_text(encoding="utf-8")
    assert "2026-03-03 12:00" in html and "Needs attention" in html


def test_table_shows_the_reason_when_there_is_one() -> None:
    from rich.console import Console

    records: list[dict[str, Any]] = [
        {
            "window_start": "2026-03-03T12:00:00Z",
            "kind": "data_drift",
            "feature": "income_of_the_household_in_euros_per_year",
            "metric": "psi",
            "value": 0.61,
            "threshold": 0.25,
            "status": "alert",
            "details": {"reason": "income moved up: PSI 0.61 is above the alert level 0.25"},
        },
        {
            "window_start": "2026-03-03T12:00:00Z",
            "kind": "data_drift",
            "feature": "age",
            "metric": "psi",
            "value": 0.01,
            "threshold": 0.25,
            "status": "ok",
            "details": {},
        },
    ]
    piped = io.StringIO()
    wide_console(Console(file=piped, width=80)).print(results_table(records, "t"))
    text = piped.getvalue()
    assert "reason" in text and "PSI 0.61 is above the alert level 0.25" in text
    assert "income_of_the_household_in_euros_per_year" in text
    without = io.StringIO()
    wide_console(Console(file=without, width=80)).print(results_table(records[1:], "t"))
    assert "reason" not in without.getvalue()


def test_compare_missing_column_alerts_and_fail_on(runner: CliRunner, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 1500
    reference = pd.DataFrame({"income": rng.normal(50, 10, n), "age": rng.normal(40, 10, n), "plan": "a"})
    current = reference.drop(columns=["age"]).assign(tenure=rng.normal(3, 1, n))
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current.to_csv(tmp_path / "current.csv", index=False)
    base = ["compare", "--reference", str(tmp_path / "reference.csv"), "--current", str(tmp_path / "current.csv")]
    outcome = runner.invoke(app, [*base, "--format", "jsonl", "--fail-on", "alert"])
    assert outcome.exit_code == FAIL_ON_EXIT_CODE, outcome.output
    records = [json.loads(line) for line in outcome.stdout.splitlines()]
    missing = {r["feature"]: r for r in records if r["metric"] == "column_missing"}
    assert set(missing) == {"age", "tenure"}
    assert all(r["kind"] == "data_quality" and r["status"] == "alert" for r in missing.values())
    assert missing["age"]["details"]["missing_in"] == "current"
    assert missing["tenure"]["details"]["missing_in"] == "reference"
    # No timestamps: no invented window, but every record key is there.
    assert all(r["window_start"] is None and r["window_end"] is None for r in records)
    assert {r["status"] for r in records if r["feature"] == "income"} == {"ok"}
    # The same data without the one-sided columns: nothing to fail on.
    current.assign(age=reference["age"]).drop(columns=["tenure"]).to_csv(tmp_path / "current.csv", index=False)
    clean = runner.invoke(app, [*base, "--format", "csv", "--fail-on", "warning"])
    assert clean.exit_code == 0, clean.output
    assert len(list(csv.DictReader(io.StringIO(clean.stdout)))) > 0


def test_a_cli_run_logs_to_the_prefect_ui_and_one_line_per_window_to_stderr(
    store: sa.Engine, loan_config: Path
) -> None:
    """A real `driftline run` process against the Prefect API: its flow-run logs reach the API (what the
    UI shows) at INFO, while its console shows only the per-window lines (stderr is a pipe, not a TTY)."""
    import os
    import subprocess
    import sys
    from datetime import UTC, datetime, timedelta

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterTimestamp
    from prefect.settings import PREFECT_API_URL

    since = datetime.now(UTC) - timedelta(seconds=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING")}
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    command = [
        sys.executable,
        "-m",
        "driftline.cli.commands",
        "run",
        "--config",
        str(loan_config),
        "--start",
        "2026-03-03T15:00Z",
        "--end",
        "2026-03-03T17:00Z",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if WINDOW_LINE.match(line)]
    assert [WINDOW_LINE.match(line).group(3) for line in lines] == [  # type: ignore[union-attr]
        "2026-03-03T15:00Z",
        "2026-03-03T16:00Z",
    ], done.stderr
    assert "| INFO" not in done.stderr, "Prefect's INFO lines stay off the console"
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(timestamp=LogFilterTimestamp(after_=since)), limit=200)
    summaries = [log for log in logs if log.message.startswith("loan 2026-03-03T1") and "verdict" in log.message]
    assert {log.message[:33] for log in summaries} == {
        "loan 2026-03-03T15:00Z..16:00Z: 2",
        "loan 2026-03-03T16:00Z..17:00Z: 2",
    }
    assert all(log.flow_run_id is not None and log.level == 20 for log in summaries)
