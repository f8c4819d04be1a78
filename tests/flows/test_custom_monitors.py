"""User monitors (dotted path and entry point), failing and hanging monitors, the multivariate monitor."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from driftline.cli.commands import app
from driftline.core.results import Kind, Status
from driftline.flows.monitor import monitor_model
from driftline.storage.results import load_results
from driftline.storage.runs import load_runs
from tests.conftest import DAY, model_entry, write_config

pytestmark = pytest.mark.usefixtures("prefect_api")

TEAM_MODULE = '''
import time

from driftline.core.results import Kind, Status


def share_of_big_incomes(context):
    """Share of rows with income above a threshold given in params."""
    limit = context.parameters["limit"]
    frame = context.frame
    share = float((frame["income"] > limit).mean()) if len(frame) else None
    status = Status.UNKNOWN if share is None else Status.ALERT if share > 0.5 else Status.OK
    return [context.result(Kind.DATA_QUALITY, "big_income_share", "income", share, 0.5, status, {"limit": limit})]


class RowParity:
    kind = Kind.OPERATIONAL

    def __init__(self, modulus=2):
        self.modulus = modulus

    def __call__(self, context):
        return [{"metric": "row_parity", "value": len(context.frame) % self.modulus, "status": "ok"}]


def explode(context):
    raise RuntimeError("boom in a user monitor")


def hang(context):
    time.sleep(30)
    return []
'''


@pytest.fixture
def team_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's package on sys.path, with a dist-info that registers an entry point."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "team_monitors.py").write_text(textwrap.dedent(TEAM_MODULE), encoding="utf-8")
    dist = root / "team_monitors-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: team-monitors\nVersion: 0.1\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[driftline.monitors]\nparity = team_monitors:RowParity\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(root))
    return root


def test_user_monitors_by_path_and_entry_point(
    store: sa.Engine,
    loan_log: dict[str, Any],
    team_package: Path,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monitors = [
        {"name": "data_drift"},
        {
            "name": "big_incomes",
            "path": "team_monitors:share_of_big_incomes",
            "kind": "data_quality",
            "params": {"limit": 60_000},
        },
        {"name": "parity", "entry_point": "parity", "params": {"modulus": 7}},
        {"name": "explodes", "path": "team_monitors:explode", "kind": "performance"},
        {"name": "hangs", "path": "team_monitors.hang", "kind": "concept_drift", "timeout_seconds": 1},
    ]
    config = write_config(
        tmp_path / "m.yaml", [model_entry("loan", loan_log["table"], monitors=monitors)], database_url
    )
    end = DAY + timedelta(hours=15)
    outcome = monitor_model("loan", end, str(config))
    assert outcome["rows"] == 200
    results = load_results(store, "loan")
    by_metric = {(r.kind, r.metric): r for r in results}
    big = by_metric[(Kind.DATA_QUALITY, "big_income_share")]
    assert big.status == Status.ALERT and big.value > 0.5 and big.details == {"limit": 60_000}
    assert by_metric[(Kind.OPERATIONAL, "row_parity")].value == 200 % 7
    exploded = by_metric[(Kind.PERFORMANCE, "monitor:explodes")]
    assert exploded.status == Status.UNKNOWN and "boom in a user monitor" in exploded.details["error"]
    hung = by_metric[(Kind.CONCEPT_DRIFT, "monitor:hangs")]
    assert hung.status == Status.UNKNOWN and "timed out after 1 s" in hung.details["reason"]
    assert any(r.kind == Kind.DATA_DRIFT and r.feature == "income" for r in results)
    assert not any(r.kind == Kind.OPERATIONAL and r.metric == "row_count" for r in results), "only listed monitors"
    (run,) = load_runs(store, "loan")
    assert run["status"] == "succeeded"

    printed = CliRunner().invoke(
        app, ["results", "--config", str(config), "--model", "loan", "--format", "json", "--kind", "data_quality"]
    )
    assert printed.exit_code == 0, printed.output
    assert [r["metric"] for r in json.loads(printed.stdout)] == ["big_income_share"]

    # The report shows the user's results beside the built-in ones.
    out = tmp_path / "report.html"
    reported = CliRunner().invoke(
        app,
        ["report", "--config", str(config), "--model", "loan", "--start", "2026-03-03T00:00Z"]
        + ["--end", "2026-03-04T00:00Z", "--out", str(out)],
    )
    assert reported.exit_code == 0, reported.output
    page = out.read_text(encoding="utf-8")
    assert "big_income_share" in page and "row_parity" in page and "monitor:explodes" in page


def test_unknown_monitor_fails_the_window_with_a_clear_error(
    store: sa.Engine, loan_log: dict[str, Any], tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    config = write_config(
        tmp_path / "m.yaml", [model_entry("loan", loan_log["table"], monitors=[{"name": "nope"}])], database_url
    )
    line = CliRunner().invoke(
        app, ["run", "--config", str(config), "--start", "2026-03-03T10:00Z", "--end", "2026-03-03T11:00Z"]
    )
    assert line.exit_code == 2 and "monitor 'nope' is not built in" in line.stderr


def test_multivariate_monitor_sees_a_correlation_flip(
    store: sa.Engine,
    engine: sa.Engine,
    log_schema: str,
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    table = sa.Table(
        "pairs",
        sa.MetaData(schema=log_schema),
        sa.Column("ts", sa.DateTime(timezone=True)),
        sa.Column("x", sa.Float),
        sa.Column("y", sa.Float),
        sa.Column("prediction", sa.Float),
    )
    rng = np.random.default_rng(3)
    start = datetime(2026, 3, 1, tzinfo=UTC)

    def rows(first: datetime, hours: int, rho: float) -> list[dict[str, Any]]:
        n = hours * 400
        x = rng.normal(size=n)
        y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=n)
        stamps = [first + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, hours * 3600, n))]
        return [
            {"ts": t, "x": float(a), "y": float(b), "prediction": float(a + b)}
            for t, a, b in zip(stamps, x, y, strict=True)
        ]

    with engine.begin() as connection:
        table.create(connection)
        connection.execute(table.insert(), rows(start, 24, 0.8) + rows(start + timedelta(days=1), 1, -0.8))
    entry = {
        "name": "pairs",
        "table": f"{log_schema}.pairs",
        "timestamp_column": "ts",
        "task": "regression",
        "prediction_column": "prediction",
        "features": {"numeric": ["x", "y"]},
        "reference": {"start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat()},
        "monitors": [{"name": "data_drift"}, {"name": "multivariate_drift", "params": {"sample_size": 2000}}],
    }
    config = write_config(tmp_path / "m.yaml", [entry], database_url)
    monitor_model("pairs", start + timedelta(days=1, hours=1), str(config))
    results = load_results(store, "pairs")
    univariate = [r for r in results if r.feature in ("x", "y")]
    assert univariate and all(r.status == Status.OK for r in univariate), [
        (r.feature, r.metric, r.status) for r in univariate
    ]
    (auc,) = [r for r in results if r.metric == "domain_classifier_auc"]
    assert auc.status == Status.ALERT and auc.value > 0.75 and auc.details["p_value"] < 1e-6
