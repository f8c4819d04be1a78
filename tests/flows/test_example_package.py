"""The documented example monitor package works when copied, pip-installed and listed in monitors.yaml.

``examples/team_monitors`` is copied to a temporary folder, built and installed with pip into its
own target directory (a real wheel build: setuptools, entry-point metadata), and the ``driftline``
command then runs the hourly window in a fresh process that sees that directory: one monitor by
dotted path, one by the entry point the package declares.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.conftest import model_entry, write_config

ROOT = Path(__file__).resolve().parents[2]
DRIFTLINE = Path(sys.executable).parent / "driftline"


@pytest.mark.slow
def test_copied_example_package_installs_and_runs_in_the_hourly_flow(
    store: sa.Engine, loan_log: dict[str, Any], tmp_path: Path, database_url: str
) -> None:
    package = tmp_path / "my_team_monitors"
    shutil.copytree(ROOT / "examples" / "team_monitors", package, ignore=shutil.ignore_patterns("*.egg-info", "build"))
    site = tmp_path / "site"
    started = time.monotonic()
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(package)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    print(f"\npip install of the example package: {time.monotonic() - started:.1f} s")
    entry_points = next(site.glob("team_monitors-*.dist-info")) / "entry_points.txt"
    assert "null_budget = team_monitors:NullBudget" in entry_points.read_text(encoding="utf-8")

    monitors = [
        {"name": "data_drift"},
        {"name": "rate", "path": "team_monitors:positive_rate", "kind": "data_quality", "params": {"low": 0.6}},
        {"name": "nulls", "entry_point": "null_budget", "params": {"budget": 0.01}},
    ]
    config = write_config(
        tmp_path / "monitors.yaml", [model_entry("loan", loan_log["table"], monitors=monitors)], database_url
    )
    # A fresh user's environment: no Driftline settings, and no Prefect API of this test session
    # (the run starts its own temporary Prefect server, as on a laptop).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "PREFECT_API"))}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env["PYTHONPATH"] = str(site)  # the installed package, and nothing of this checkout's tests
    window = ["--start", "2026-03-03T14:00Z", "--end", "2026-03-03T15:00Z"]

    def driftline(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(DRIFTLINE), *args, "--config", str(config), "--model", "loan", *window]
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)

    ran = driftline("run")
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    printed = driftline("results", "--kind", "data_quality", "-f", "json")
    assert printed.returncode == 0, printed.stderr[-2000:]
    rows = {(r["metric"], r["feature"]): r for r in json.loads(printed.stdout)}
    expected = {("positive_rate", None)} | {("null_share", feature) for feature in ("income", "age", "region")}
    assert set(rows) == expected
    rate = rows[("positive_rate", None)]
    # The loan log predicts positive for score > 0.5: about half the rows, below the configured low of 0.6.
    assert 0.35 < rate["value"] < 0.6 and rate["status"] == "alert" and rate["threshold"] == 0.6
    assert rate["details"]["rows"] == 200
    for feature in ("income", "age", "region"):
        assert rows[("null_share", feature)]["value"] == 0.0 and rows[("null_share", feature)]["status"] == "ok"
