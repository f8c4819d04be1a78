"""From a table to a monitored model (#18): ``init`` -> ``validate`` -> ``run`` -> ``results --status alert``
on a table Driftline has never seen, and ``validate`` listing every problem of a broken deployment at once.
Real PostgreSQL, real Prefect API, the CLI through typer's runner."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.dialects.postgresql import JSONB
from typer.testing import CliRunner

from driftline.cli.commands import app

pytestmark = pytest.mark.usefixtures("prefect_api")

FIRST_DAY = datetime(2026, 5, 4, tzinfo=UTC)
MONITORED_DAY = FIRST_DAY + timedelta(days=2)
#: From this hour of the monitored day, monthly charges are 40% higher.
DRIFT_FROM = MONITORED_DAY + timedelta(hours=2)
PER_HOUR = 100


def churn_table(engine: sa.Engine, schema: str) -> sa.Table:
    """A prediction log with its own names: nothing here is called ts, prediction or label."""
    table = sa.Table(
        "churn_scores",
        sa.MetaData(schema=schema),
        sa.Column("customer_id", sa.BigInteger, primary_key=True),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenure_months", sa.Integer),
        sa.Column("monthly_charges", sa.Float),
        sa.Column("plan", sa.Text),
        sa.Column("is_senior", sa.Boolean),
        sa.Column("churn_probability", sa.Float),
        sa.Column("predicted_churn", sa.Integer),
        sa.Column("actual_churn", sa.Integer),
        sa.Column("response_ms", sa.Float),
        sa.Column("payload", JSONB),
    )
    with engine.begin() as connection:
        table.create(connection)
    rng = np.random.default_rng(18)
    rows: list[dict[str, Any]] = []
    hours = 48 + 4  # two days of history, then four hours of the monitored day
    for h in range(hours):
        start = FIRST_DAY + timedelta(hours=h)
        shift = 1.4 if start >= DRIFT_FROM else 1.0
        for s in np.sort(rng.uniform(0, 3600, PER_HOUR)):
            probability = float(rng.uniform())
            rows.append(
                {
                    "customer_id": len(rows) + 1,
                    "event_time": start + timedelta(seconds=float(s)),
                    "tenure_months": int(rng.integers(1, 72)),
                    "monthly_charges": float(rng.normal(70, 15) * shift),
                    "plan": str(rng.choice(["basic", "plus", "pro"], p=[0.5, 0.3, 0.2])),
                    "is_senior": bool(rng.uniform() < 0.2),
                    "churn_probability": probability,
                    "predicted_churn": int(probability > 0.5),
                    "actual_churn": int(rng.uniform() < probability),
                    "response_ms": float(rng.gamma(3, 10)),
                    "payload": {"v": 1},
                }
            )
    with engine.begin() as connection:
        connection.execute(table.insert(), rows)
    return table


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def churn(engine: sa.Engine, log_schema: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    churn_table(engine, log_schema)
    return f"{log_schema}.churn_scores"


def test_init_validate_run_results_on_a_new_table(
    runner: CliRunner, store: sa.Engine, churn: str, database_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "monitors.yaml"
    made = runner.invoke(app, ["init", "--table", churn, "--database-url", database_url, "--out", str(config)])
    assert made.exit_code == 0, made.output
    # What it guessed is printed...
    for column, role in (
        ("event_time", "timestamp"),
        ("customer_id", "id"),
        ("predicted_churn", "prediction"),
        ("churn_probability", "score"),
        ("actual_churn", "label"),
        ("response_ms", "latency"),
        ("monthly_charges", "numeric feature"),
        ("plan", "categorical feature"),
        ("payload", "left out"),
    ):
        assert any(column in line and role in line for line in made.stdout.splitlines()), (column, role, made.stdout)
    assert "task: classification" in made.stdout and "4,800 rows" in made.stdout
    # ... and written, with comments, as a config that validates.
    text = config.read_text(encoding="utf-8")
    assert text.startswith("# monitors.yaml written by `driftline init")
    model = yaml.safe_load(text)["models"][0]
    assert model["name"] == "churn_scores" and model["table"] == churn
    assert model["timestamp_column"] == "event_time" and model["id_column"] == "customer_id"
    assert model["prediction_column"] == "predicted_churn" and model["score_column"] == "churn_probability"
    assert model["label_column"] == "actual_churn" and model["latency_column"] == "response_ms"
    assert model["features"] == {"numeric": ["tenure_months", "monthly_charges"], "categorical": ["plan", "is_senior"]}
    # The reference: the whole days before the log's last day.
    assert model["reference"] == {"start": "2026-05-04T00:00:00Z", "end": "2026-05-06T00:00:00Z"}
    again = runner.invoke(app, ["init", "--table", churn, "--database-url", database_url, "--out", str(config)])
    assert again.exit_code == 2 and "exists" in again.stderr

    checked = runner.invoke(app, ["validate", "--config", str(config)])
    assert checked.exit_code == 0, checked.output
    assert "ok churn_scores" in checked.stdout and "reference 4,800 rows" in checked.stdout

    window = ["--start", "2026-05-06T01:00Z", "--end", "2026-05-06T03:00Z"]
    ran = runner.invoke(app, ["run", "--config", str(config), *window])
    assert ran.exit_code == 0, ran.output

    shown = runner.invoke(
        app, ["results", "--config", str(config), "--model", "churn_scores", "--status", "alert", "--format", "json"]
    )
    assert shown.exit_code == 0, shown.output
    alerts = json.loads(shown.stdout)
    assert alerts and {r["status"] for r in alerts} == {"alert"}
    drifted = {r["feature"] for r in alerts if r["kind"] == "data_drift" and r["feature"]}
    assert drifted == {"monthly_charges"}, alerts
    assert {r["window_start"] for r in alerts if r["feature"] == "monthly_charges"} == {"2026-05-06T02:00:00Z"}


def test_validate_lists_every_problem_at_once(
    runner: CliRunner, store: sa.Engine, churn: str, database_url: str, tmp_path: Path
) -> None:
    schema = churn.split(".")[0]
    good: dict[str, Any] = {
        "name": "churn",
        "table": churn,
        "timestamp_column": "event_time",
        "task": "classification",
        "features": {"numeric": ["monthly_charges"], "categorical": ["plan"]},
        "prediction_column": "predicted_churn",
        "reference": {"start": "2026-05-04T00:00:00Z", "end": "2026-05-06T00:00:00Z"},
    }
    broken = [
        good
        | {
            "name": "typos",
            "features": {"numeric": ["monthly_charge", "plan"], "categorical": ["plan_tier"]},
            "timestamp_column": "tenure_months",
        },
        good | {"name": "gone", "table": f"{schema}.churn_score"},
        good | {"name": "small", "reference": {"start": "2026-05-04T00:00:00Z", "end": "2026-05-04T00:30:00Z"}},
        good | {"name": "empty", "reference": {"start": "2025-01-01T00:00:00Z", "end": "2025-01-02T00:00:00Z"}},
    ]
    config = tmp_path / "m.yaml"
    config.write_text(yaml.safe_dump({"database_url": database_url, "models": broken}), encoding="utf-8")
    outcome = runner.invoke(app, ["validate", "--config", str(config)])
    assert outcome.exit_code == 2, outcome.output
    problems = [line.strip()[2:] for line in outcome.stderr.splitlines() if line.strip().startswith("- ")]
    text = "\n".join(problems)
    assert len(problems) == 7, text
    assert f"model 'typos': table '{churn}' has no column 'monthly_charge' (did you mean 'monthly_charges'?)" in text
    assert "model 'typos': numeric feature 'plan' is TEXT, not a number" in text
    assert "has no column 'plan_tier' (did you mean 'plan'?)" in text
    assert "model 'typos': timestamp_column 'tenure_months' is INTEGER, not a timestamp" in text
    assert f"model 'gone': table '{schema}.churn_score' does not exist in schema '{schema}'" in text
    assert "(did you mean 'churn_scores'?)" in text
    assert re.search(
        r"model 'small': the reference \(2026-05-04 00:00 \.\. 2026-05-04 00:30 UTC\) has \d\d rows, fewer than the",
        text,
    )
    assert "model 'empty': the reference (2025-01-01 00:00 .. 2025-01-02 00:00 UTC) has no rows" in text
    assert "7 problem(s)" in outcome.stderr

    # --offline checks the file only: the same (valid) YAML passes without looking at the database.
    offline = runner.invoke(app, ["validate", "--config", str(config), "--offline"])
    assert offline.exit_code == 0, offline.output
    assert "ok typos" in offline.stdout and "--offline" in offline.stdout


def test_validate_names_unknown_keys_with_a_suggestion(runner: CliRunner, tmp_path: Path) -> None:
    entry = {
        "name": "loan",
        "table": "t",
        "timestam_column": "ts",
        "task": "classification",
        "features": {"numeric": ["a"], "categoricl": ["b"]},
        "prediction_column": "p",
        "reference": {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"},
    }
    config = tmp_path / "m.yaml"
    config.write_text(yaml.safe_dump({"models": [entry]}), encoding="utf-8")
    outcome = runner.invoke(app, ["validate", "--config", str(config), "--offline"])
    assert outcome.exit_code == 2
    problems = [line.strip()[2:] for line in outcome.stderr.splitlines() if line.strip().startswith("- ")]
    assert problems == [
        f"{config}: model 'loan': timestam_column: unknown key (did you mean 'timestamp_column'?)",
        f"{config}: model 'loan': features.categoricl: unknown key (did you mean 'categorical'?)",
        f"{config}: model 'loan': timestamp_column: Field required",
    ], outcome.stderr
    # The one-line error of other commands now leads with the unknown key, not the missing field.
    ran = runner.invoke(app, ["run", "--config", str(config)])
    assert ran.exit_code == 2
    assert "timestam_column: unknown key (did you mean 'timestamp_column'?) (and 2 more)" in ran.stderr
