"""History is reproducible: a promotion takes effect from its ``effective_from``; rerunning earlier windows
reproduces their stored results value for value; re-judging them against the new reference is an
explicit flag. Real PostgreSQL, real Prefect API (test harness), the hourly flow end to end.

The log (tests/conftest.py ``loan_log``): two days of reference, then a day whose income shifts by
+3 standard deviations from 12:00 — so the afternoon alerts against the configured reference and is
``ok`` against a reference taken from the afternoon itself.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from driftline.cli.commands import app
from driftline.config.monitors import load_config
from driftline.flows.monitor import backfill, monitor_model, monitor_period
from tests.conftest import DAY, REFERENCE_END, REFERENCE_START, model_entry, write_config

pytestmark = pytest.mark.usefixtures("prefect_api")

STORED = sa.text(
    "SELECT model, resolution, window_start, window_end, kind, metric, feature, value, threshold, status, details "
    "FROM driftline.results WHERE model = 'loan' AND resolution = 'hour' AND window_start >= :s AND window_start < :e "
    "ORDER BY window_start, kind, metric, feature NULLS FIRST"
)


def stored(engine: sa.Engine, start: Any, end: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(STORED, {"s": start, "e": end})]


def income_drift(engine: sa.Engine, window_start: Any) -> dict[str, Any]:
    """The data-drift verdict of ``income``: its primary statistic's row (Wasserstein by default)."""
    with engine.connect() as connection:
        row = connection.execute(
            sa.text(
                "SELECT status, details FROM driftline.results WHERE model = 'loan' AND resolution = 'hour' "
                "AND kind = 'data_drift' AND metric = 'wasserstein' AND feature = 'income' AND window_start = :s"
            ),
            {"s": window_start},
        ).one()
    return {"status": row.status, "details": row.details}


def run_versions(engine: sa.Engine) -> dict[Any, int | None]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT window_start, reference_version FROM driftline.runs WHERE model = 'loan'")
        )
        return {r.window_start: r.reference_version for r in rows}


def test_rerunning_history_after_a_promotion_reproduces_stored_results_exactly(
    store: sa.Engine, loan_config: Path, loan_log: dict[str, Any]
) -> None:
    from driftline.tasks.references import promote_reference

    config = str(loan_config)
    history = (DAY + timedelta(hours=10), DAY + timedelta(hours=16))
    backfill("loan", *history, config)
    before = stored(store, *history)
    assert before and income_drift(store, DAY + timedelta(hours=13))["status"] == "alert"
    assert income_drift(store, DAY + timedelta(hours=11))["status"] == "ok"

    # Promote the afternoon's traffic, effective from 16:00 — after the stored windows.
    model = load_config(loan_config).model("loan")
    promoted = promote_reference(
        store,
        model_config=model,
        version="v2",
        reference_start=DAY + timedelta(hours=12),
        reference_end=DAY + timedelta(hours=18),
        effective_from=DAY + timedelta(hours=16),
        data_engine=store,
    )
    assert promoted.version == 1

    # Rerunning the earlier windows reproduces their stored results, value for value.
    backfill("loan", *history, config)
    assert stored(store, *history) == before
    assert set(run_versions(store).values()) == {0}

    # The windows from effective_from on are judged against the new version.
    backfill("loan", DAY + timedelta(hours=16), DAY + timedelta(hours=18), config)
    assert income_drift(store, DAY + timedelta(hours=16))["status"] == "ok"
    assert income_drift(store, DAY + timedelta(hours=17))["status"] == "ok"
    versions = run_versions(store)
    assert versions[DAY + timedelta(hours=16)] == versions[DAY + timedelta(hours=17)] == 1

    # Re-judging an old window against the newest reference is an explicit choice, and is recorded.
    outcome = monitor_model("loan", DAY + timedelta(hours=14), config, rejudge_with_latest_reference=True)
    assert outcome["reference"]["version"] == 1
    assert income_drift(store, DAY + timedelta(hours=13))["status"] == "ok"
    assert run_versions(store)[DAY + timedelta(hours=13)] == 1
    # ... and a plain rerun puts the window back on the version in effect at its start.
    monitor_model("loan", DAY + timedelta(hours=14), config)
    assert stored(store, *history) == before

    # Day merges use the version in effect at the day's start, and only hours judged against it.
    day = monitor_period("loan", "day", DAY, DAY + timedelta(days=1), config)
    assert day[DAY.isoformat()]["hours"] == 6


def test_the_run_command_rejudges_only_with_the_flag(
    store: sa.Engine, loan_config: Path, loan_log: dict[str, Any]
) -> None:
    from driftline.tasks.references import promote_reference

    runner = CliRunner()
    args = ["run", "--config", str(loan_config), "--model", "loan"]
    window = ["--start", (DAY + timedelta(hours=13)).isoformat(), "--end", (DAY + timedelta(hours=14)).isoformat()]
    assert runner.invoke(app, args + window).exit_code == 0
    assert income_drift(store, DAY + timedelta(hours=13))["status"] == "alert"
    model = load_config(loan_config).model("loan")
    promote_reference(
        store,
        model_config=model,
        reference_start=DAY + timedelta(hours=12),
        reference_end=DAY + timedelta(hours=18),
        effective_from=DAY + timedelta(hours=20),
    )
    assert runner.invoke(app, args + window).exit_code == 0
    assert income_drift(store, DAY + timedelta(hours=13))["status"] == "alert"
    done = runner.invoke(app, args + window + ["--rejudge-with-latest-reference"])
    assert done.exit_code == 0, done.output
    assert income_drift(store, DAY + timedelta(hours=13))["status"] == "ok"


def test_warm_up_then_judged_against_the_new_traffic_and_a_small_reference_is_refused(
    store: sa.Engine, tmp_path: Path, loan_log: dict[str, Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from driftline.tasks.references import promote_reference

    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    reference = {"start": REFERENCE_START.isoformat(), "end": REFERENCE_END.isoformat()}

    def configure(**keys: Any) -> str:
        entry = model_entry("loan", loan_log["table"], reference=reference | keys)
        return str(write_config(tmp_path / "monitors.yaml", [entry], database_url))

    config = configure(warmup_hours=3, min_rows=500)
    model = load_config(Path(config)).model("loan")
    # No range given: the new model's traffic from 14:00 to 17:00 (600 rows) becomes the reference.
    promoted = promote_reference(store, model_config=model, version="v2", effective_from=DAY + timedelta(hours=14))
    assert promoted.warmup and promoted.end == DAY + timedelta(hours=17)
    backfill("loan", DAY + timedelta(hours=13), DAY + timedelta(hours=18), config)
    assert income_drift(store, DAY + timedelta(hours=13))["status"] == "alert"  # before the promotion
    for hour in (14, 15, 16):
        drift = income_drift(store, DAY + timedelta(hours=hour))
        assert drift["status"] == "unknown"
        assert drift["details"]["reason"].startswith("warm-up after reference version 1")
    assert income_drift(store, DAY + timedelta(hours=17))["status"] == "ok"

    # The same reference with a higher reference.min_rows is refused, with the reason on the verdicts.
    config = configure(warmup_hours=3, min_rows=700)
    monitor_model("loan", DAY + timedelta(hours=18), config)
    drift = income_drift(store, DAY + timedelta(hours=17))
    assert drift["status"] == "unknown"
    assert drift["details"]["reason"].endswith("has 600 rows, fewer than reference.min_rows=700: refused")


def test_multivariate_sample_follows_the_version_and_is_the_same_rows_on_every_rerun(
    store: sa.Engine, tmp_path: Path, loan_log: dict[str, Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The multivariate monitor's reference sample comes from the window's reference version (it used
    to sample the configured range whatever the promotion), and a rerun draws the same rows (it used
    ``ORDER BY random()``: a rerun in a new process changed the AUC)."""
    from driftline.tasks import multivariate
    from driftline.tasks.references import promote_reference

    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    entry = model_entry(
        "loan",
        loan_log["table"],
        monitors=[{"name": "data_drift"}, {"name": "multivariate_drift", "params": {"sample_size": 1000}}],
    )
    config = str(write_config(tmp_path / "monitors.yaml", [entry], database_url))
    model = load_config(Path(config)).model("loan")
    promote_reference(
        store,
        model_config=model,
        reference_start=DAY + timedelta(hours=12),
        reference_end=DAY + timedelta(hours=18),
        effective_from=DAY + timedelta(hours=16),
    )

    def auc(window_start: Any) -> tuple[str, float, dict[str, Any]]:
        with store.connect() as connection:
            row = connection.execute(
                sa.text(
                    "SELECT status, value, details FROM driftline.results WHERE model = 'loan' "
                    "AND metric = 'domain_classifier_auc' AND window_start = :s"
                ),
                {"s": window_start},
            ).one()
        return row.status, row.value, row.details

    monitor_model("loan", DAY + timedelta(hours=14), config)  # 13:00, shifted, before the promotion
    monitor_model("loan", DAY + timedelta(hours=17), config)  # 16:00, shifted, after it
    before, after = auc(DAY + timedelta(hours=13)), auc(DAY + timedelta(hours=16))
    assert before[0] == "alert" and before[1] > 0.75  # against the configured (unshifted) reference
    assert after[0] == "ok" and after[1] < 0.6  # against version 1: the shifted afternoon
    multivariate._SAMPLES.clear()  # as in a new process
    monitor_model("loan", DAY + timedelta(hours=14), config)
    assert auc(DAY + timedelta(hours=13)) == before


def test_late_labels_re_judge_a_window_against_the_version_it_was_judged_with(
    store: sa.Engine, engine: sa.Engine, loan_config: Path, loan_log: dict[str, Any]
) -> None:
    """A window judged against version 0, then a promotion effective from before it (recorded later;
    its 400 rows are below reference.min_rows, so windows judged against it are refused), then the
    window's labels arrive: the refresh re-judges it against version 0, the one its stored verdicts
    rest on — not against version 1, which would make its performance ``unknown``."""
    from driftline.tasks.references import promote_reference

    config = str(loan_config)
    start, end = DAY + timedelta(hours=9), DAY + timedelta(hours=10)
    with engine.begin() as connection:
        connection.execute(
            sa.text(f"UPDATE {loan_log['schema']}.loan_predictions SET label = NULL WHERE ts >= :s AND ts < :e"),
            {"s": start, "e": end},
        )
    monitor_model("loan", end, config)
    assert run_versions(store)[start] == 0
    model = load_config(loan_config).model("loan")
    promote_reference(
        store,
        model_config=model,
        reference_start=DAY + timedelta(hours=12),
        reference_end=DAY + timedelta(hours=14),
        effective_from=DAY,
    )
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                f"UPDATE {loan_log['schema']}.loan_predictions SET label = (CASE WHEN score > 0.5 THEN 1 ELSE 0 END) "
                "WHERE ts >= :s AND ts < :e"
            ),
            {"s": start, "e": end},
        )
    outcome = monitor_model("loan", end + timedelta(hours=1), config)  # 10:00 is judged against version 1 ...
    assert outcome["reference"]["version"] == 1 and outcome["reference"]["reason"].endswith("refused")
    assert outcome["refreshed_windows"] == [start.isoformat()]  # ... and 09:00 is refreshed on version 0
    assert run_versions(store)[start] == 0
    with store.connect() as connection:
        accuracy = connection.execute(
            sa.text(
                "SELECT status, details FROM driftline.results WHERE model = 'loan' AND kind = 'performance' "
                "AND metric = 'accuracy' AND feature IS NULL AND window_start = :s"
            ),
            {"s": start},
        ).one()
    assert accuracy.details["labelled_rows"] == 200
    assert accuracy.status != "unknown", accuracy.details


def test_report_draws_against_the_version_of_its_latest_window_and_lists_the_versions(
    store: sa.Engine, engine: sa.Engine, loan_config: Path, loan_log: dict[str, Any]
) -> None:
    from driftline.tasks.references import promote_reference
    from driftline.tasks.report.data import load_report_data
    from driftline.tasks.report.html import render_report

    config = str(loan_config)
    model = load_config(loan_config).model("loan")
    promote_reference(
        store,
        model_config=model,
        version="v2",
        reference_start=DAY + timedelta(hours=12),
        reference_end=DAY + timedelta(hours=18),
        effective_from=DAY + timedelta(hours=16),
        note="reviewed by ana",
    )
    backfill("loan", DAY + timedelta(hours=14), DAY + timedelta(hours=18), config)
    data = load_report_data(store, model, DAY, DAY + timedelta(days=1), data_engine=engine)
    assert data.reference is not None and data.reference.row_count == 1200  # version 1: 6 h x 200 rows
    assert data.reference_note is not None and data.reference_note.startswith("reference version 1 (model v2)")
    assert [v.version for v in data.reference_versions] == [1]
    page = render_report(data)
    assert "Reference versions" in page and "2 window(s) of this period judged against it" in page
    assert "2 window(s) of this period against the configured reference" in page
