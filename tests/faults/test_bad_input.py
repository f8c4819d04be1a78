"""Hostile and degenerate prediction logs: nothing may crash the run or the fan-out.

Each input gives per-check ``unknown`` (with the reason) or a verdict, or — when the log no longer
matches the config — a one-line error naming the problem. First through the pure layer (reference
and window profiles, ``evaluate_drift``), property-based and by name; then through the flows on a
real PostgreSQL and Prefect API.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from driftline.cli.commands import app
from driftline.config.monitors import ModelConfig, parse_config
from driftline.core.results import Kind, Result, Status
from driftline.core.window import Window
from driftline.flows.monitor import backfill, monitor_all, monitor_model
from driftline.stats.model_profile import ModelProfile, fit_model_profile, window_model_profile
from driftline.stats.profile import MAX_STORED_CATEGORIES, CategoricalProfile
from driftline.storage.engine import get_engine
from driftline.storage.results import _result_values, load_results
from driftline.storage.runs import load_runs
from driftline.tasks.context import WindowContext
from driftline.tasks.drift import evaluate_drift, metrics_for
from driftline.tasks.extract import labelled_counts, read_rows
from driftline.tasks.operational import evaluate_operational
from tests.conftest import DAY, REFERENCE_START, model_entry, synthetic_rows, write_config

WINDOW = Window(DAY, DAY + timedelta(hours=1))
NUMERIC = ["income", "age"]
CATEGORICAL = ["region"]
STATUSES = set(Status)


def _model(**drift: Any) -> ModelConfig:
    return parse_config({"models": [model_entry("m", "t", drift=drift)]}).models[0]


def _reference_frame(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "income": rng.normal(50_000, 10_000, n),
            "age": rng.integers(18, 80, n).astype(float),
            "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]),
        }
    )


def _evaluate(model: ModelConfig, reference: pd.DataFrame, window: pd.DataFrame) -> list[Result]:
    fitted = fit_model_profile(reference, NUMERIC, CATEGORICAL)
    current = window_model_profile(window, fitted)
    return evaluate_drift(model, WINDOW, fitted, current)


def _assert_well_formed(model: ModelConfig, results: list[Result]) -> None:
    """One row per (feature, metric) plus the two window-level rows; valid statuses; every
    ``unknown`` says why; every row survives the store's JSON (no NaN/inf reaches PostgreSQL)."""
    expected = {(f, m) for f, kind in model.features.items() for m in metrics_for(model, kind)}
    expected |= {(None, "drifted_features_share"), (None, "general_drift")}
    assert sorted((r.feature or "", r.metric) for r in results) == sorted((f or "", m) for f, m in expected)
    for r in results:
        assert r.status in STATUSES and r.kind == Kind.DATA_DRIFT
        if r.status == Status.UNKNOWN:
            assert str(r.details.get("reason", "")).strip(), f"unknown without a reason: {r}"
        stored = _result_values(r)
        assert stored["value"] is None or math.isfinite(stored["value"])
        json.dumps(stored["details"], allow_nan=False)


def _by_feature(results: list[Result], feature: str) -> dict[str, Result]:
    return {r.metric: r for r in results if r.feature == feature}


# --- property-based, pure layer ------------------------------------------------------------------

EXTREMES = [1e308, -1e308, 1e-308, -1e-308, 5e-324, 0.0, -0.0, float("nan"), float("inf"), float("-inf")]
numeric_value = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(EXTREMES))
text_value = st.one_of(st.none(), st.text(max_size=4), st.sampled_from(["", " ", "north", "NULL", "nan", "∞", "ü"]))
rows = st.lists(st.tuples(numeric_value, st.one_of(numeric_value, text_value), text_value), max_size=120)


def _frame(data: list[tuple[Any, Any, Any]]) -> pd.DataFrame:
    return pd.DataFrame(data, columns=["income", "age", "region"], dtype=object)


@settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(reference=rows, window=rows, min_rows=st.sampled_from([1, 3, 100]))
def test_any_values_give_verdicts_or_reasons(
    reference: list[tuple[Any, Any, Any]], window: list[tuple[Any, Any, Any]], min_rows: int
) -> None:
    model = _model(min_rows=min_rows)
    results = _evaluate(model, _frame(reference), _frame(window))
    _assert_well_formed(model, results)


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(window=rows)
def test_any_window_against_a_normal_reference(window: list[tuple[Any, Any, Any]]) -> None:
    model = _model(min_rows=1)
    _assert_well_formed(model, _evaluate(model, _reference_frame(), _frame(window)))


# --- named cases, pure layer ---------------------------------------------------------------------

N = 300


def _window(**columns: Any) -> pd.DataFrame:
    frame = _reference_frame(N, seed=1)
    for name, values in columns.items():
        frame[name] = pd.Series(values if isinstance(values, list) else [values] * N, dtype=object)
    return frame


NAMED: dict[str, tuple[pd.DataFrame, dict[str, set[Status]]]] = {
    # name: (window, feature -> statuses every metric of that feature must have)
    "nan": (_window(income=float("nan")), {"income": {Status.UNKNOWN}, "age": {Status.OK}}),
    "null": (_window(income=None, region=None), {"income": {Status.UNKNOWN}, "region": {Status.UNKNOWN}}),
    "+inf": (_window(income=float("inf")), {"income": {Status.UNKNOWN}}),
    "-inf": (_window(income=float("-inf")), {"income": {Status.UNKNOWN}}),
    "text in a numeric column": (_window(age="abc"), {"age": {Status.UNKNOWN}, "income": {Status.OK}}),
    "empty strings": (_window(region=""), {"region": {Status.ALERT}}),
    "huge": (_window(income=1e308), {"income": {Status.ALERT}}),
    "huge both signs": (_window(income=[1e308, -1e308] * (N // 2)), {"income": {Status.ALERT}}),
    "tiny": (_window(income=1e-308), {"income": {Status.ALERT}}),
    "identical values": (_window(income=50_000.0, region="north"), {"income": {Status.ALERT}}),
    "unseen categories": (_window(region=[f"new-{i % 7}" for i in range(N)]), {"region": {Status.ALERT}}),
    "one row": (_window().head(1), {f: {Status.UNKNOWN} for f in ["income", "age", "region"]}),
    "no rows": (_window().head(0), {f: {Status.UNKNOWN} for f in ["income", "age", "region"]}),
    "unchanged": (_window(), {f: {Status.OK} for f in ["income", "age", "region"]}),
}


@pytest.mark.parametrize("case", list(NAMED))
def test_named_window_inputs(case: str) -> None:
    window, expected = NAMED[case]
    model = _model()
    results = _evaluate(model, _reference_frame(), window)
    _assert_well_formed(model, results)
    for feature, statuses in expected.items():
        got = {r.status for r in _by_feature(results, feature).values()}
        if statuses == {Status.ALERT}:
            assert Status.ALERT in got, (feature, got)  # some metric catches it (not all need to)
        else:
            assert got == statuses, (feature, got)


def test_reasons_say_what_is_wrong() -> None:
    model = _model()
    reference = _reference_frame()
    one = _evaluate(model, reference, _window().head(1))
    assert "window has 1 rows, fewer than min_rows=100" in one[0].details["reason"]
    no_values = _by_feature(_evaluate(model, reference, _window(age="abc")), "age")
    assert all(r.details["reason"] for r in no_values.values())
    empty_reference = _evaluate(model, reference.head(0), _window())
    assert all(r.status == Status.UNKNOWN and "reference" in r.details["reason"] for r in empty_reference)


DEGENERATE_REFERENCES = {
    "all NULL": _reference_frame().assign(income=np.nan, region=None),
    "constant": _reference_frame().assign(income=7.0, region="north"),
    "huge": _reference_frame().assign(income=[1e308, -1e308] * 250),
    "infinite": _reference_frame().assign(income=np.inf),
    "one row": _reference_frame().head(1),
}


@pytest.mark.parametrize("case", list(DEGENERATE_REFERENCES))
def test_degenerate_references(case: str) -> None:
    model = _model(min_rows=1)
    _assert_well_formed(model, _evaluate(model, DEGENERATE_REFERENCES[case], _window()))


def test_float_overflow_in_the_statistics_is_unknown_with_reason() -> None:
    """Found by the property test: a reference around 4e154 overflowed ``centred**2`` (OverflowError,
    the whole window failed); a tiny reference std against a 7e210 window made Wasserstein inf
    (``unknown`` without a reason)."""
    model = _model(min_rows=1)
    frame = pd.DataFrame({"income": [0.0, 0.0, 4.022342378982779e154], "age": 1.0, "region": "a"})
    results = _evaluate(model, frame, frame.head(1))
    _assert_well_formed(model, results)
    wasserstein = _by_feature(results, "income")["wasserstein"]
    assert wasserstein.status == Status.UNKNOWN and "overflows" in wasserstein.details["reason"]

    reference = pd.DataFrame({"income": [0.0, 3.852005133596822e-98], "age": 1.0, "region": "a"})
    window = pd.DataFrame({"income": [6.924723184121404e210], "age": 1.0, "region": "a"})
    results = _evaluate(model, reference, window)
    _assert_well_formed(model, results)
    assert "not a finite number" in _by_feature(results, "income")["wasserstein"].details["reason"]


def test_hundred_thousand_distinct_categories_in_bounded_time() -> None:
    n = 100_000
    rng = np.random.default_rng(3)
    reference = pd.DataFrame(
        {"income": rng.normal(0, 1, n), "age": rng.normal(0, 1, n), "region": [f"r{i}" for i in range(n)]}
    )
    window = reference.assign(region=[f"w{i}" for i in range(n)])
    model = _model()
    started = time.perf_counter()
    fitted = fit_model_profile(reference, NUMERIC, CATEGORICAL)
    current = window_model_profile(window, fitted)
    results = evaluate_drift(model, WINDOW, fitted, current)
    elapsed = time.perf_counter() - started
    assert elapsed < 20, f"{elapsed:.1f} s"
    stored = fitted.features["region"]
    assert isinstance(stored, CategoricalProfile)
    assert len(stored.counts) == MAX_STORED_CATEGORIES and stored.n == n, "capped, total kept"
    _assert_well_formed(model, results)
    region = _by_feature(results, "region")
    assert region["unseen_share"].value == pytest.approx(1.0)
    # Every reference value was unique (an id-like column): new values are what chance predicts
    # (Good-Turing missing mass 1.0), so they are reported but raise nothing (#16).
    assert region["unseen_share"].details["chance_share"] == pytest.approx(1.0)
    assert region["unseen_share"].status == Status.OK
    assert len(json.dumps(fitted.to_json())) < 2_000_000, "the stored profile stays bounded"


# --- through the flows: real PostgreSQL and Prefect ----------------------------------------------


def _nasty_table(engine: sa.Engine, schema: str, name: str, naive: bool = False) -> sa.Table:
    """Like the loan log, but ``age`` is TEXT (configured numeric), ids may repeat, and with
    ``naive`` the timestamp is ``timestamp`` (without time zone, holding UTC wall time)."""
    table = sa.Table(
        name,
        sa.MetaData(schema=schema),
        sa.Column("request_id", sa.BigInteger),
        sa.Column("ts", sa.DateTime(timezone=not naive), nullable=False),
        sa.Column("income", sa.Float(precision=53)),
        sa.Column("age", sa.Text),
        sa.Column("region", sa.Text),
        sa.Column("prediction", sa.Float),
        sa.Column("score", sa.Float),
        sa.Column("label", sa.Float),
        sa.Column("latency_ms", sa.Float),
    )
    with engine.begin() as connection:
        table.create(connection)
    return table


def _as_text_age(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "age": str(int(r["age"]))} for r in rows]


def _hostile_hours() -> list[dict[str, Any]]:
    """Four hours from DAY: mixed garbage, all NULL, identical values, a single row."""
    incomes = [float("nan"), float("inf"), float("-inf"), None, 1e308, -1e308, 1e-308, 55_000.0]
    ages = ["abc", "", "42", None, "1e308", "NaN", "-7", "  "]
    regions = [None, "", "north", "ünï'code", "new;region", "NULL", "south", "  "]
    rows: list[dict[str, Any]] = []

    def add(hour: int, i: int, **values: Any) -> None:
        row = {
            "request_id": 1,  # every id the same: duplicates must not matter
            "ts": DAY + timedelta(hours=hour, seconds=10 * i + 1),
            "income": 50_000.0,
            "age": "30",
            "region": "north",
            "prediction": 1.0,
            "score": 0.7,
            "label": 1.0,
            "latency_ms": 20.0,
        }
        rows.append(row | values)

    for i in range(160):
        add(
            0,
            i,
            income=incomes[i % 8],
            age=ages[i % 8],
            region=regions[i % 8],
            score=[0.2, float("nan"), None, 0.9][i % 4],
            label=[None, float("nan"), 1.0, 0.0][i % 4],
            latency_ms=[float("inf"), None, 5.0, -1.0][i % 4],
        )
    for i in range(160):
        add(1, i, income=None, age=None, region=None, prediction=None, score=None, label=None, latency_ms=None)
    for i in range(160):
        add(2, i)
    add(3, 0)
    return rows


def _check_stored(engine: sa.Engine, model: str) -> list[Result]:
    results = load_results(engine, model)
    assert results
    for r in results:
        assert r.status in STATUSES
        assert r.value is None or math.isfinite(r.value)
        if r.status == Status.UNKNOWN:
            assert str(r.details.get("reason", "")).strip(), f"unknown without a reason: {r}"
    return results


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.timeout(180)
def test_hostile_log_through_the_fan_out(
    store: sa.Engine, log_schema: str, tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Garbage, all-NULL, identical and single-row hours; a TEXT column configured as numeric; one
    id for every row; a second table with ``timestamp without time zone``: every hour of every model
    completes (backfill and monitor-all's fan-out), with verdicts or reasons, and JSON comes out clean."""
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    rng = np.random.default_rng(5)
    reference = _as_text_age(synthetic_rows(rng, REFERENCE_START, 48, 60))
    nasty = _nasty_table(store, log_schema, "nasty")
    naive = _nasty_table(store, log_schema, "naive", naive=True)
    later = _as_text_age(synthetic_rows(rng, DAY + timedelta(hours=4), 2, 150, first_id=10**6))
    with store.begin() as connection:
        connection.execute(nasty.insert(), reference + _hostile_hours())
        connection.execute(
            naive.insert(), [{**r, "ts": r["ts"].astimezone(UTC).replace(tzinfo=None)} for r in reference + later]
        )
        connection.execute(nasty.insert(), later)
    config = write_config(
        tmp_path / "m.yaml",
        [model_entry("nasty", f"{log_schema}.nasty"), model_entry("naive", f"{log_schema}.naive")],
        database_url,
    )

    outcome = backfill("nasty", DAY, DAY + timedelta(hours=4), str(config))
    assert not outcome["failed"], outcome["failed"]
    assert [o["rows"] for o in outcome["succeeded"]] == [160, 160, 160, 1]
    fanned = monitor_all(DAY + timedelta(hours=5), str(config))
    assert not fanned["failed"] and set(fanned["succeeded"]) == {"nasty", "naive"}, fanned["failed"]
    assert fanned["succeeded"]["naive"]["rows"] == fanned["succeeded"]["nasty"]["rows"] == 150

    results = _check_stored(store, "nasty")
    per_hour = {h: [r for r in results if r.window_start == DAY + timedelta(hours=h)] for h in range(4)}
    drift = {h: {(r.feature, r.metric): r for r in rs if r.kind == Kind.DATA_DRIFT} for h, rs in per_hour.items()}
    assert {drift[1][("income", m)].status for m in ("ks", "psi")} == {Status.UNKNOWN}, "all NULL"
    assert {drift[1][("region", m)].status for m in ("chi_square", "psi")} == {Status.UNKNOWN}
    assert drift[0][("region", "unseen_share")].status == Status.ALERT, "unseen categories"
    assert drift[2][("income", "wasserstein")].status == Status.ALERT, "identical values"
    assert all(r.status == Status.UNKNOWN for r in drift[3].values()), "a single row"
    unique = [r for r in per_hour[2] if r.metric == "expect_column_values_to_be_unique"]
    assert [(r.feature, r.status) for r in unique] == [("request_id", Status.ALERT)], "duplicate ids are reported"
    runs = {r["window_start"].astimezone(UTC): r for r in load_runs(store, "nasty")}
    assert all(runs[DAY + timedelta(hours=h)]["status"] == "succeeded" for h in range(4))

    # The naive-timestamp table holds the same rows for that hour: the same verdicts.
    same_hour = DAY + timedelta(hours=4)
    both = {
        name: {
            (str(r.kind), r.metric, r.feature, r.value, str(r.status))
            for r in load_results(store, name, same_hour, same_hour + timedelta(hours=1))
            if r.kind != Kind.OPERATIONAL  # its history differs: the naive table has no hostile hours
        }
        for name in ("nasty", "naive")
    }
    assert both["naive"] == both["nasty"] and len(both["naive"]) > 20

    out = CliRunner().invoke(app, ["results", "--config", str(config), "--model", "nasty", "--format", "json"])
    assert out.exit_code == 0, out.output
    assert len(json.loads(out.stdout)) == len(results), "strict JSON (no NaN) for every stored row"


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.timeout(120)
def test_columns_renamed_or_dropped_after_the_reference_was_fitted(
    store: sa.Engine, loan_config: Path, loan_log: dict[str, Any]
) -> None:
    assert monitor_model("loan", DAY + timedelta(hours=3), str(loan_config))["rows"] == 200  # reference fitted
    table = f'"{loan_log["schema"]}".loan_predictions'
    with store.begin() as connection:
        connection.execute(sa.text(f"ALTER TABLE {table} RENAME COLUMN income TO income_usd"))
        connection.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN region"))
    runner = CliRunner()
    args = ["run", "--config", str(loan_config), "--start", "2026-03-03T04:00Z", "--end", "2026-03-03T05:00Z"]
    outcome = runner.invoke(app, args)
    assert outcome.exit_code == 2, outcome.output
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, outcome.stderr
    assert "model 'loan'" in lines[0] and "no column 'income', 'region'" in lines[0]
    assert "Traceback" not in outcome.output

    # The flow itself (a scheduled run, no CLI pre-check) fails the window with the same message.
    state = monitor_model("loan", DAY + timedelta(hours=4), str(loan_config), return_state=True)
    assert state.is_failed()
    (run,) = [r for r in load_runs(store, "loan") if r["window_start"] == DAY + timedelta(hours=3)]
    assert run["status"] == "failed" and "no column 'income', 'region'" in run["error"]


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.timeout(60)
def test_config_naming_a_missing_column_fails_the_window_with_its_name(
    store: sa.Engine, loan_log: dict[str, Any], tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    entry = model_entry("loan", loan_log["table"], features={"numeric": ["income"], "categorical": ["segment"]})
    config = write_config(tmp_path / "m.yaml", [entry], database_url)
    state = monitor_model("loan", DAY + timedelta(hours=3), str(config), return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match=r"no column 'segment'"):
        state.result()
    (run,) = load_runs(store, "loan")
    assert run["status"] == "failed" and run["error"].count("\n") == 0 and "'segment'" in run["error"]
    assert load_results(store, "loan") == []


NEW_YORK = {"options": "-c TimeZone=America/New_York"}  # a server, database or role whose TimeZone is not UTC


@pytest.fixture
def naive_log(engine: sa.Engine, log_schema: str, database_url: str) -> Iterator[dict[str, Any]]:
    """A ``timestamp without time zone`` log (UTC wall time), an engine with a UTC session and one whose
    session TimeZone is America/New_York."""
    table = _nasty_table(engine, log_schema, "naive_tz", naive=True)
    rows = [
        {"request_id": i, "ts": datetime(2026, 3, day, 10, 10 * i), "prediction": 1.0, "label": 1.0, "latency_ms": 5.0}
        for day in (2, 3)
        for i in range(3)
    ]
    with engine.begin() as connection:
        connection.execute(table.insert(), rows)
    model = parse_config({"models": [model_entry("m", f"{log_schema}.naive_tz")]}).models[0]
    url = sa.make_url(database_url).update_query_dict(NEW_YORK).render_as_string(hide_password=False)
    shifted = get_engine(url)
    yield {"model": model, "utc": engine, "new_york": shifted}
    shifted.dispose()


def test_naive_timestamps_are_read_as_utc_whatever_the_session_time_zone(naive_log: dict[str, Any]) -> None:
    """Found here: labelled_counts (the late-label coverage per hour) shifted naive hours by the
    session's UTC offset; read_rows was already pinned to UTC."""
    hour = (DAY + timedelta(hours=10), DAY + timedelta(hours=11))
    since, until = DAY - timedelta(days=1), DAY + timedelta(days=1)
    labelled = {DAY - timedelta(days=1) + timedelta(hours=10): 3, DAY + timedelta(hours=10): 3}
    for session in ("utc", "new_york"):
        frame = read_rows(naive_log[session], naive_log["model"], *hour)
        assert len(frame) == 3, session
        assert frame["ts"].min() == pd.Timestamp(DAY + timedelta(hours=10)), session
        assert labelled_counts(naive_log[session], naive_log["model"], since, until) == labelled, session
    with naive_log["new_york"].connect() as connection:  # SET LOCAL left the pooled session alone
        assert connection.execute(sa.text("SHOW TimeZone")).scalar() == "America/New_York"


def test_naive_timestamps_get_operational_health(naive_log: dict[str, Any]) -> None:
    """Regression: the operational monitor compared the naive min(ts) of a ``timestamp`` log with an
    aware datetime and raised on every window; naive values are now taken as UTC."""
    window = Window(DAY + timedelta(hours=10), DAY + timedelta(hours=11))
    frame = read_rows(naive_log["utc"], naive_log["model"], window.start, window.end)
    context = WindowContext(naive_log["model"], window, frame, None, ModelProfile(len(frame)), naive_log["utc"])
    results = evaluate_operational(context)
    volume = next(r for r in results if r.metric == "row_count")
    assert volume.value == 3 and volume.details["history_hours"] == 1


def test_window_bounds_are_utc_for_naive_inputs() -> None:
    """A naive ``window_end`` is taken as UTC, like the naive timestamps of a ``timestamp`` column."""
    assert Window.hour_ending(datetime(2026, 3, 3, 5)) == Window.hour_ending(datetime(2026, 3, 3, 5, tzinfo=UTC))
