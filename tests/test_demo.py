"""The README's first command: ``driftline demo``, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from driftline.cli.commands import app
from driftline.cli.demo import DAY_END, DAY_START
from driftline.config.monitors import parse_config
from driftline.core.results import Kind, Status
from driftline.storage.connections import open_databases
from driftline.storage.migrate import current_revision, head_revision
from driftline.storage.results import load_results


@pytest.mark.usefixtures("prefect_api")
def test_demo_on_configured_database(
    store: sa.Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_DATABASE_URL", database_url)
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    outcome = CliRunner().invoke(app, ["demo"])
    assert outcome.exit_code == 0, outcome.output
    assert "loan: one day, hour by hour" in outcome.stdout and "Where to look next" in outcome.stdout
    # The missing hour is reported, not skipped (the table wraps long cells, so match the row itself).
    missing = [line for line in outcome.stdout.splitlines() if "03-08 05:00" in line][0]  # loan's table comes first
    assert " 0 " in missing and "alert" in missing
    assert (tmp_path / "demo" / "monitors.yaml").exists()
    # Not on a terminal: one line per monitored hour on stderr, with each model's verdict (#18).
    per_window = [line for line in outcome.stderr.splitlines() if "] monitor-all " in line]
    assert len(per_window) == 24, outcome.stderr
    assert "[13/24] monitor-all 2026-03-08T12:00Z..13:00Z loan=alert eta=" in per_window[12]

    loan = load_results(store, "loan", DAY_START, DAY_END)
    assert len({r.window_start for r in loan}) == 24
    by_hour = {}
    for r in loan:
        if r.kind == Kind.DATA_DRIFT and r.feature == "income" and r.details.get("primary"):
            by_hour[r.window_start.hour] = r.status
    assert all(by_hour[h] == Status.ALERT for h in range(12, 24)), by_hour
    assert all(by_hour[h] == Status.OK for h in range(12) if h != 5), by_hour
    assert by_hour[5] == Status.UNKNOWN
    # Calm hours raise nothing, of any kind (#16: loan warned at 07:00 and 09:00, and credit_lines,
    # which never drifts, alerted at 17:00 through one of its four statistics).
    calm = [r for r in loan if r.window_start.hour < 12 and r.window_start.hour != 5]
    assert not [(r.window_start.hour, r.kind, r.metric, r.feature) for r in calm if r.status in ("warning", "alert")]
    assert not [r for r in loan if r.feature == "credit_lines" and r.status in ("warning", "alert")]
    # Every flagged result explains itself in one sentence.
    flagged = [r for r in loan if r.status in ("warning", "alert")]
    assert flagged and all(isinstance(r.details.get("reason"), str) and r.details["reason"] for r in flagged)
    eta = load_results(store, "eta", DAY_START, DAY_END)
    alerted = {r.feature for r in eta if r.status == Status.ALERT and r.kind == Kind.DATA_DRIFT}
    assert alerted >= {"traffic_index", "vehicle"}
    assert not [
        (r.window_start.hour, r.metric) for r in eta if r.status in ("warning", "alert") and r.window_start.hour < 15
    ]


@pytest.mark.slow
def test_embedded_postgres_starts_and_migrates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    config = parse_config(
        {
            "database_url": f"embedded://{tmp_path / 'pgdata'}",
            "models": [
                {
                    "name": "m",
                    "table": "t",
                    "timestamp_column": "ts",
                    "task": "regression",
                    "prediction_column": "p",
                    "features": {"numeric": ["x"]},
                    "reference": {"start": "2026-01-01", "end": "2026-01-02"},
                }
            ],
        }
    )
    databases = open_databases(config)
    assert current_revision(databases.results) == head_revision()
    with databases.data.connect() as connection:
        assert connection.execute(sa.text("SHOW server_version")).scalar_one().startswith("16")
