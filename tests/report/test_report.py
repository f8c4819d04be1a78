"""The HTML report: self-contained, escaped, within budget, drawn from the real results store."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from driftline.tasks.report import write_report
from driftline.tasks.report.html import vega_bundle
from driftline.tasks.report.prefect import artifact_key, report_link
from driftline.tasks.report.synthetic import seed_sample, store_results, synthetic_results

START = datetime(2026, 3, 10, tzinfo=UTC)
XSS = "<script>alert(1)</script>"


def specs(document: str) -> dict[str, Any]:
    """Every chart spec in the document, by id."""
    found = re.findall(r'<script type="application/json" id="(spec-\d+)">(.*?)</script>', document, flags=re.S)
    return {key: json.loads(text) for key, text in found}


def chart_data(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return spec["data"]["values"]


@pytest.mark.slow
def test_week_of_20_features_is_under_5_mb_and_10_s(store: sa.Engine, log_schema: str, tmp_path: Path) -> None:
    """20 features x 168 hourly windows (18,480 result rows), with the latest window re-read for overlays."""
    numeric = [f"num_{i:02d}" for i in range(15)]
    categorical = [f"cat_{i}" for i in range(5)]
    config = seed_sample(store, log_schema, numeric, categorical, START, 168, drifting=["num_00", "cat_0"])
    with store.connect() as connection:
        stored = connection.execute(sa.text("SELECT count(*) FROM driftline.results")).scalar_one()
    assert stored == 18_480

    vega_bundle.cache_clear()  # count loading the chart library too (the disk cache may be warm)
    began = time.perf_counter()
    path = write_report(
        store, config, "loan", START, START + timedelta(hours=168), tmp_path / "week.html", data_engine=store
    )
    elapsed = time.perf_counter() - began
    size = path.stat().st_size
    print(f"\nreport 20 features x 168 windows: {size / 1e6:.2f} MB in {elapsed:.2f} s")
    assert size < 5_000_000
    assert elapsed < 10.0

    document = path.read_text(encoding="utf-8")
    assert document.count("window.vegaEmbed=") == 1, "the chart library is included exactly once"
    assert not re.search(r"""(src|href)=["']?https?:""", document), "nothing is loaded from the network"
    assert "default-src 'none'" in document
    charts = specs(document)
    heatmap = next(s for s in charts.values() if s.get("encoding", {}).get("y", {}).get("title") == "feature")
    cells = chart_data(heatmap)
    assert len(cells) == 20 * 168
    assert {
        c["s"] for c in cells if c["y"] == "num_00" and c["t"] >= (START + timedelta(hours=84)).timestamp() * 1000
    } == {"alert"}
    assert {c["s"] for c in cells if c["y"] == "num_05"} == {"ok"}
    assert heatmap["encoding"]["y"]["sort"][:2] == ["num_00", "cat_0"], "drifted features come first"
    assert len(re.findall(r'<section class="feature" id="feature-\d+">', document)) == 20


def test_report_shows_every_kind_with_overlay_from_the_log(store: sa.Engine, log_schema: str, tmp_path: Path) -> None:
    config = seed_sample(store, log_schema, ["income", "age"], ["region"], START, 24, drifting=["income"], seed=4)
    end = START + timedelta(hours=24)
    document = write_report(store, config, "loan", START, end, tmp_path, data_engine=store).read_text("utf-8")
    assert "driftline-loan-20260310T0000Z-20260311T0000Z.html" in str(list(tmp_path.iterdir())[0])

    charts = specs(document)
    kinds = next(s for s in charts.values() if s.get("encoding", {}).get("y", {}).get("title") == "check")
    assert {c["y"] for c in chart_data(kinds)} == {
        "data drift",
        "concept drift",
        "performance",
        "data quality",
        "operational",
    }
    # Overlay: the latest window's 400 rows, re-profiled on the reference bins, beside the reference.
    income = next(s for s in charts.values() if s.get("encoding", {}).get("x", {}).get("title") == "income")
    by_source: dict[str, int] = {}
    for row in chart_data(income):
        by_source[row["src"]] = by_source.get(row["src"], 0) + row["n"]
    assert by_source == {"reference": 5000, "window": 400}
    window_mean = sum(r["n"] * (r["x0"] + r["x1"]) / 2 for r in chart_data(income) if r["src"] == "window") / 400
    assert window_mean > 60, "the drifted window sits to the right of the reference (mean 50)"
    region = next(s for s in charts.values() if s.get("encoding", {}).get("x", {}).get("title") == "region")
    assert {r["c"] for r in chart_data(region)} == {"north", "south", "east"}
    assert "2026-03-10T23:00Z..00:00Z (400 rows)" in document

    # Performance with label coverage; the last 6 windows have no labels yet.
    coverage = next(s for s in charts.values() if s.get("encoding", {}).get("y", {}).get("title") == "label coverage")
    assert len(chart_data(coverage)) == 24
    assert sum(1 for r in chart_data(coverage) if r["n"] == 0) == 6
    performance = next(
        s for s in charts.values() if s.get("facet") and any(r.get("m") == "roc_auc" for r in s["data"]["values"])
    )
    assert {r["s"] for r in chart_data(performance)} >= {"ok", "alert", "unknown"}
    # Failed data-quality expectation (the last feature's nulls after the drift), volume and latency.
    assert "1 of 4 expectations failed in at least one window" in document
    quality = document[document.index('id="quality"') : document.index('id="operational"')]
    assert "expect_column_values_to_not_be_null" in quality and ">region<" in quality
    volume = next(s for s in charts.values() if s.get("facet") and s["data"]["values"][0]["m"] == "row_count")
    assert all(r["lo"] == 320.0 and r["hi"] == 480.0 for r in chart_data(volume))
    latency = next(s for s in charts.values() if s.get("facet") and s["data"]["values"][0]["m"].startswith("latency"))
    assert {r["m"] for r in chart_data(latency)} == {"latency_p50", "latency_p95", "latency_p99"}


def test_without_the_log_only_the_reference_is_drawn(store: sa.Engine, log_schema: str, tmp_path: Path) -> None:
    config = seed_sample(store, log_schema, ["income"], ["region"], START, 6, seed=1)
    path = write_report(
        store, config, "loan", START, START + timedelta(hours=6), tmp_path / "r.html", "https://x.test/r/"
    )
    document = path.read_text("utf-8")
    income = next(s for s in specs(document).values() if s.get("encoding", {}).get("x", {}).get("title") == "income")
    assert {r["src"] for r in chart_data(income)} == {"reference"}
    assert "made without the prediction log" in document
    assert '<a href="https://x.test/r/r.html">' in document


def test_names_from_data_are_escaped(store: sa.Engine, log_schema: str, tmp_path: Path) -> None:
    config = seed_sample(store, log_schema, ["income"], [XSS], START, 4, drifting=[XSS], seed=2)
    with store.begin() as connection:  # a hostile reason text too
        connection.execute(
            sa.text(
                "UPDATE driftline.results SET details = details || jsonb_build_object('reason', CAST(:r AS text)) "
                "WHERE kind = 'operational'"
            ),
            {"r": '<img src=x onerror="alert(2)">'},
        )
        connection.execute(
            sa.text(
                "UPDATE driftline.results SET status = 'alert' WHERE kind = 'operational' AND metric = 'latency_p50'"
            )
        )
    document = write_report(
        store, config, "loan", START, START + timedelta(hours=4), tmp_path / "x.html", data_engine=store
    ).read_text("utf-8")
    assert XSS not in document
    assert "<img src=x" not in document
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in document
    # Inside chart data the name is JSON with < and > escaped, and still decodes to the original.
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in document
    decoded = [r for s in specs(document).values() for r in s.get("data", {}).get("values", []) if r.get("y") == XSS]
    assert len(decoded) == 4
    # Every <script> element is one of ours: the chart specs, the library and the start-up script.
    assert document.count("<script") == len(specs(document)) + 2


def test_failed_runs_and_an_unreadable_log_show_without_secrets(
    store: sa.Engine, log_schema: str, tmp_path: Path
) -> None:
    config = seed_sample(store, log_schema, ["income"], ["region"], START, 3, seed=6)
    with store.begin() as connection:
        connection.execute(
            sa.text("UPDATE driftline.runs SET status = 'failed', error = :e WHERE window_start = :w"),
            {"e": "could not reach postgresql://monitor:hunter2@db:5432/ml", "w": START},
        )
        connection.execute(sa.text(f'DROP TABLE "{log_schema}".predictions'))
    path = write_report(
        store, config, "loan", START, START + timedelta(hours=3), tmp_path / "f.html", data_engine=store
    )
    document = path.read_text("utf-8")
    assert "hunter2" not in document
    assert "postgresql://monitor:***@db:5432/ml" in document
    assert "1 window(s) failed to run" in document and "Failed runs" in document
    assert "Reference distributions only: window rows could not be read" in document


def test_a_period_without_results_still_makes_a_page(store: sa.Engine, log_schema: str, tmp_path: Path) -> None:
    config = seed_sample(store, log_schema, ["income"], [], START, 2, seed=3)
    later = START + timedelta(days=30)
    document = write_report(store, config, "loan", later, later + timedelta(hours=1), tmp_path / "e.html").read_text()
    assert "No results for model loan in this period." in document
    assert specs(document) == {}


def test_report_link_helpers(tmp_path: Path) -> None:
    assert artifact_key("Driftline Report: loan_v2") == "driftline-report-loan-v2"
    assert report_link("https://reports.example/a.html") == "https://reports.example/a.html"
    assert report_link(tmp_path / "a b.html") == (tmp_path / "a b.html").resolve().as_uri()
    assert report_link(tmp_path / "a b.html").startswith("file:///")


def test_publish_report_link_creates_a_prefect_artifact(prefect_api: None, tmp_path: Path) -> None:
    from prefect import flow
    from prefect.artifacts import Artifact

    from driftline.tasks.report import publish_report_link

    url = "https://reports.example/driftline/loan.html"

    @flow
    def report_flow() -> None:
        publish_report_link("Driftline-Report-Loan", url, description="loan, last week")

    report_flow()
    stored = Artifact.get("driftline-report-loan")
    assert stored is not None
    assert url in str(stored.data)
    assert stored.description == "loan, last week"


@pytest.mark.parametrize("hours", [1])
def test_synthetic_results_match_the_stored_contract(store: sa.Engine, hours: int) -> None:
    results, runs = synthetic_results("m", [("a", "numeric"), ("b", "categorical")], START, hours, seed=5)
    assert store_results(store, results, runs) == len(results)
    with store.connect() as connection:
        kinds = {row[0] for row in connection.execute(sa.text("SELECT DISTINCT kind FROM driftline.results"))}
    assert kinds == {"data_drift", "concept_drift", "performance", "data_quality", "operational"}
    assert np.isfinite([r.value for r in results if r.value is not None]).all()


def test_skewed_histograms_stay_readable() -> None:
    """A long tail goes on a symlog axis where each bar's area is its share of rows; an overflow bar is
    at least as wide as its neighbour, so it cannot be a spike that flattens the others (#18)."""
    import math

    import numpy as np

    from driftline.stats.profile import fit_numeric, profile_numeric
    from driftline.tasks.report import charts

    rng = np.random.default_rng(4)
    skewed = fit_numeric(rng.lognormal(3, 1.5, 20_000))
    normal = fit_numeric(rng.normal(50, 10, 20_000))
    assert charts.skew_constant(normal) is None
    constant = charts.skew_constant(skewed)
    assert constant is not None and constant > 0
    rows = charts.numeric_distribution_rows(skewed, None, symlog=constant)

    def drawn(x: float) -> float:
        return math.copysign(math.log1p(abs(x) / constant), x)

    for row in rows:  # area on the drawn axis == share of rows
        assert row["d"] * (drawn(row["x1"]) - drawn(row["x0"])) == pytest.approx(row["sh"], rel=1e-3)
    assert sum(row["sh"] for row in rows) == pytest.approx(1.0)

    # Half the window far above a normal reference: the overflow bar is no narrower than its neighbour.
    window = profile_numeric(np.concatenate([rng.normal(50, 10, 500), np.full(500, normal.edges[-1] + 0.01)]), normal)
    drawn_rows = [r for r in charts.numeric_distribution_rows(normal, window, "window") if r["src"] == "window"]
    overflow = next(r for r in drawn_rows if "note" in r)
    neighbour = max((r for r in drawn_rows if "note" not in r), key=lambda r: r["x1"])
    assert overflow["x1"] - overflow["x0"] >= (neighbour["x1"] - neighbour["x0"]) * 0.999
    assert overflow["d"] <= 0.5 / (neighbour["x1"] - neighbour["x0"]) * 1.001


def test_unknown_windows_never_open_an_empty_chi_square_panel() -> None:
    """An unknown chi-square row (no rows in the hour) has no effect detail: it still belongs to the
    Cohen's w panel; a metric with no value in any window is left out of the chart, with a note (#18)."""
    from datetime import UTC, datetime, timedelta

    from driftline.core.results import Kind, Result, Status
    from driftline.tasks.report.html import drawable, drift_rows

    start = datetime(2026, 3, 8, tzinfo=UTC)

    def row(hour: int, metric: str, value: float | None, details: dict[str, object]) -> Result:
        window = start + timedelta(hours=hour)
        status = Status.UNKNOWN if value is None else Status.OK
        return Result(
            model="m",
            window_start=window,
            window_end=window + timedelta(hours=1),
            kind=Kind.DATA_DRIFT,
            metric=metric,
            feature="region",
            value=value,
            threshold=None,
            status=status,
            details=details,
        )

    results = [
        row(0, "chi_square", 12.0, {"effect": "cohens_w", "effect_value": 0.05, "warning": 0.1, "alert": 0.2}),
        row(1, "chi_square", None, {"reason": "no rows in the window", "warning": 0.1, "alert": 0.2}),
        row(0, "psi", None, {"reason": "no rows"}),
        row(1, "psi", None, {"reason": "no rows"}),
    ]
    series = drift_rows(results)
    assert [r["m"] for r in series[:2]] == ["chi_square (Cohen's w)"] * 2
    kept, note = drawable(series)
    assert {r["m"] for r in kept} == {"chi_square (Cohen's w)"}
    assert "not drawn: psi" in note
