"""The report draws estimated performance: the estimate with its band, the realised metric as points."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from driftline.core.results import Kind, Result, Status
from driftline.tasks.report import write_report
from driftline.tasks.report.synthetic import seed_sample, store_results
from tests.report.test_report import START, chart_data, specs


def test_estimates_are_drawn_with_band_and_realised_points(store: sa.Engine, log_schema: str, tmp_path: Path) -> None:
    config = seed_sample(store, log_schema, ["income"], ["region"], START, 24, seed=5)  # last 6 hours unlabelled
    estimates = []
    for h in range(24):
        start = START + timedelta(hours=h)
        value = 0.86 if h < 20 else 0.70
        status = Status.OK if h < 20 else Status.ALERT
        details = {"band": [value - 0.03, value + 0.03], "reference_value": 0.86, "estimate": True}
        estimates.append(
            Result(
                model="loan",
                window_start=start,
                window_end=start + timedelta(hours=1),
                kind=Kind.PERFORMANCE,
                metric="estimated_accuracy",
                feature=None,
                value=value,
                threshold=0.774,
                status=status,
                details=details,
            )
        )
    # Two labelled hours with per-segment estimates and the realised value of each same segment: the
    # later one is tabled.
    for hour, realised_south in ((10, 0.71), (12, 0.55)):
        start = START + timedelta(hours=hour)
        segments = [
            {"segment": "north", "value": 0.84, "band": [0.80, 0.88], "realised": 0.83, "within_band": True},
            {
                "segment": "south",
                "value": 0.78,
                "band": [0.70, 0.86],
                "realised": realised_south,
                "within_band": 0.70 <= realised_south <= 0.86,
            },
            {"segment": "<east>", "value": 0.80, "band": [0.7, 0.9], "realised": None, "within_band": None},
        ]
        estimates.append(
            Result(
                model="loan",
                window_start=start,
                window_end=start + timedelta(hours=1),
                kind=Kind.PERFORMANCE,
                metric="estimated_segment_roc_auc",
                feature="region",
                value=0.78,
                threshold=0.7,
                status=Status.OK,
                details={"segment": "south", "segments": segments},
            )
        )
    store_results(store, estimates)
    document = write_report(
        store, config, "loan", START, START + timedelta(hours=24), tmp_path / "r.html", data_engine=store
    ).read_text("utf-8")
    assert "Estimated from the scores, before the labels" in document
    latest = (START + timedelta(hours=12)).strftime("%Y-%m-%d %H:%M")
    assert f"Per segment, window starting {latest} UTC: the estimated roc_auc of each segment" in document
    table = document.split(f"window starting {latest}")[1].split("</table>")[0]
    assert '<td>region</td><td>south</td><td class="num">0.78</td><td>0.7 .. 0.86</td>' in table
    assert '<td class="num">0.55</td><td><strong>no</strong></td>' in table
    assert "<td>&lt;east&gt;</td>" in table and "0.71" not in table  # escaped; the earlier hour not tabled
    assert "1 estimated degradation(s) flagged" not in document and "4 estimated degradation(s) flagged" in document
    chart = next(s for s in specs(document).values() if any("lo" in r and "e" in r for r in chart_data(s)))
    rows = sorted(chart_data(chart), key=lambda r: r["t"])
    assert len(rows) == 24 and {r["m"] for r in rows} == {"accuracy"}
    assert all(r["lo"] < r["e"] < r["hi"] for r in rows)
    # Realised points where labels arrived (the synthetic results' accuracy), none for the last six hours.
    assert all(r["v"] is not None for r in rows[:18]) and all(r["v"] is None for r in rows[18:])
    assert [r["s"] for r in rows[20:]] == ["alert"] * 4
    # The realised panel does not mix the estimates in.
    realised_panel = next(
        s
        for s in specs(document).values()
        if s.get("facet") and any(r.get("m") == "roc_auc" and "e" not in r for r in chart_data(s))
    )
    assert not any(r["m"].startswith("estimated_") for r in chart_data(realised_panel))
