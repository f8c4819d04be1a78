"""A performance alert names its likely causes (#16 item 5): the segments that fell most, with their
share of the window's rows, and the drifted features ranked by effect size — in the result's details
and sentence, the notification and the report. Real PostgreSQL, real flow, a real webhook."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from driftline.config.monitors import load_config
from driftline.core.results import Kind, Status
from driftline.flows.monitor import monitor_model
from driftline.storage.results import load_results
from driftline.tasks.report import write_report
from tests.conftest import DAY
from tests.notify.test_slack import FakeSlack

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_a_performance_alert_names_the_segment_that_fell_and_the_drifted_feature(
    store: sa.Engine, engine: sa.Engine, loan_log: dict[str, Any], loan_config: Path, tmp_path: Path
) -> None:
    """Hour 14 is in the afternoon whose income moved by 3 standard deviations (the fixture); there,
    the labels of the ``north`` rows (about half) contradict their scores. Accuracy alerts; its likely
    causes are region = north first (the largest fall, with its share of rows), then segments of the
    other features, which fell less; and income, the one drifted feature."""
    sink = FakeSlack().start()
    document = yaml.safe_load(loan_config.read_text())
    document["notifications"] = {"webhook": {"url": f"http://127.0.0.1:{sink.port}/hook"}, "reminder_hours": 0}
    loan_config.write_text(yaml.safe_dump(document, sort_keys=False))
    start, end = DAY + timedelta(hours=14), DAY + timedelta(hours=15)
    table = f'"{loan_log["schema"]}"."loan_predictions"'
    window = {"s": start, "e": end}
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    f"UPDATE {table} SET label = CASE WHEN score > 0.5 THEN 0 ELSE 1 END "
                    "WHERE ts >= :s AND ts < :e AND region = 'north'"
                ),
                window,
            )
            north, rows = connection.execute(
                sa.text(
                    f"SELECT count(*) FILTER (WHERE region = 'north'), count(*) FROM {table} WHERE ts >= :s AND ts < :e"
                ),
                window,
            ).one()
        monitor_model("loan", end, str(loan_config))

        results = load_results(store, "loan", start, end)
        performance = {(r.metric, r.feature): r for r in results if r.kind == Kind.PERFORMANCE}
        accuracy = performance[("accuracy", None)]
        assert accuracy.status is Status.ALERT
        causes = accuracy.details["likely_causes"]

        segments = causes["segments"]
        assert (segments[0]["feature"], segments[0]["segment"]) == ("region", "north")
        assert segments[0]["row_share"] == pytest.approx(north / rows, abs=1e-4)
        assert segments[0]["value"] < segments[0]["reference_value"]
        falls = [s["degradation"] for s in segments]
        assert falls == sorted(falls, reverse=True) and len(segments) >= 2
        assert {s["feature"] for s in segments[1:]} <= {"income", "age"}

        drifted = causes["drifted_features"]
        assert [f["feature"] for f in drifted] == ["income"]
        assert drifted[0]["status"] in ("warning", "alert") and drifted[0]["effect"] > 0
        effects = [f["effect"] for f in drifted]
        assert effects == sorted(effects, reverse=True)

        reason = accuracy.details["reason"]
        assert reason.startswith("accuracy: ") and "(alert)" in reason
        share = f"{north / rows:.0%} of rows"
        assert "likely causes: worst segments region = north (" in reason and share in reason
        assert "drifted features income (" in reason

        # The notification carries the sentence, causes included.
        sent = [p["json"] for p in sink.posts("/hook") if p["json"]["kind"] == "performance"]
        assert sent and sent[0]["transition"] == "problem"
        lines = [item.get("reason") or "" for item in sent[0]["worst"]]
        assert any("likely causes: worst segments region = north" in line and share in line for line in lines), lines

        # The report's "Why performance fell" table carries it too.
        page = write_report(store, load_config(loan_config), "loan", start, end, tmp_path / "report.html").read_text()
        assert "Why performance fell" in page
        assert "likely causes: worst segments region = north" in page and "drifted features income" in page
    finally:
        sink.stop()
