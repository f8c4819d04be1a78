"""Persistence against a real PostgreSQL: upserts, rerun replacement, the run log."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from driftline.core.results import Kind, Result, Status
from driftline.core.window import Window
from driftline.stats.model_profile import ModelProfile
from driftline.stats.profile import fit_categorical
from driftline.storage.profiles import load_reference, store_reference
from driftline.storage.results import load_results, save_window
from driftline.storage.runs import claim_run, load_runs, mark_failed

WINDOW = Window.hour_ending("2026-03-08T14:00:00Z")


def _result(metric: str, feature: str | None, value: float, kind: Kind = Kind.DATA_DRIFT) -> Result:
    return Result(
        model="m",
        window_start=WINDOW.start,
        window_end=WINDOW.end,
        kind=kind,
        metric=metric,
        feature=feature,
        value=value,
        threshold=0.2,
        status=Status.OK,
        details={"n": 1},
    )


def _count(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM driftline.results")).scalar_one())


def test_rerun_replaces_and_never_duplicates(store: sa.Engine) -> None:
    claim_run(store, "m", WINDOW)
    first = [_result("psi", "a", 0.1), _result("psi", "b", 0.2), _result("row_count", None, 10, Kind.OPERATIONAL)]
    save_window(store, "m", WINDOW, first, [Kind.DATA_DRIFT, Kind.OPERATIONAL], 10, 0.1)
    assert _count(store) == 3
    claim_run(store, "m", WINDOW)
    second = [_result("psi", "a", 0.5), _result("row_count", None, 12, Kind.OPERATIONAL)]
    save_window(store, "m", WINDOW, second, [Kind.DATA_DRIFT, Kind.OPERATIONAL], 12, 0.1)
    rows = load_results(store, "m")
    # Feature b vanished from the rerun, so its stale row is gone too; a's value was replaced.
    assert [(r.metric, r.feature, r.value) for r in rows] == [("psi", "a", 0.5), ("row_count", None, 12.0)]
    runs = load_runs(store, "m")
    assert runs[0]["attempts"] == 2 and runs[0]["status"] == "succeeded" and runs[0]["row_count"] == 12


def test_rerun_of_one_kind_keeps_other_kinds(store: sa.Engine) -> None:
    claim_run(store, "m", WINDOW)
    save_window(
        store,
        "m",
        WINDOW,
        [_result("psi", "a", 0.1), _result("accuracy", None, 0.9, Kind.PERFORMANCE)],
        [Kind.DATA_DRIFT, Kind.PERFORMANCE],
        5,
        0.1,
    )
    save_window(store, "m", WINDOW, [_result("accuracy", None, 0.8, Kind.PERFORMANCE)], [Kind.PERFORMANCE], 5, 0.1)
    assert {(r.kind, r.value) for r in load_results(store, "m")} == {(Kind.DATA_DRIFT, 0.1), (Kind.PERFORMANCE, 0.8)}


def test_null_feature_rows_are_unique(store: sa.Engine) -> None:
    statement = sa.text(
        "INSERT INTO driftline.results (model, window_start, window_end, kind, metric, feature, status) "
        "VALUES ('m', :s, :e, 'operational', 'row_count', NULL, 'ok')"
    )
    with store.begin() as connection:
        connection.execute(statement, {"s": WINDOW.start, "e": WINDOW.end})
    try:
        with store.begin() as connection:
            connection.execute(statement, {"s": WINDOW.start, "e": WINDOW.end})
        raised = False
    except sa.exc.IntegrityError:
        raised = True
    assert raised, "two rows with a NULL feature must collide on the unique key"


def test_non_finite_values_are_stored_as_null_with_reason(store: sa.Engine) -> None:
    claim_run(store, "m", WINDOW)
    save_window(store, "m", WINDOW, [_result("psi", "a", float("inf"))], [Kind.DATA_DRIFT], 1, 0.1)
    (row,) = load_results(store, "m")
    assert row.value is None and row.details["value_raw"] == "inf"


def test_failed_run_is_logged(store: sa.Engine) -> None:
    claim_run(store, "m", WINDOW)
    mark_failed(store, "m", WINDOW, "boom")
    (run,) = load_runs(store, "m")
    assert run["status"] == "failed" and run["error"] == "boom" and run["finished_at"] is not None


def test_reference_is_stored_once(store: sa.Engine) -> None:
    span = Window(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 8, tzinfo=UTC))
    first = ModelProfile(3, {"region": fit_categorical(["a", "b", "a"])})
    second = ModelProfile(1, {"region": fit_categorical(["z"])})
    store_reference(store, "m", "def1", span, first)
    kept = store_reference(store, "m", "def1", span, second)  # a concurrent fit lost the race
    assert kept.row_count == 3
    loaded = load_reference(store, "m", "def1")
    assert loaded is not None and loaded.features["region"].counts == {"a": 2, "b": 1}  # type: ignore[union-attr]
    assert load_reference(store, "m", "other") is None


def test_json_safe_nulls_every_non_finite_float_and_keeps_the_rest() -> None:
    """Nested anywhere, NaN and +-Infinity (Python or numpy) become null; numpy floats become floats;
    ints, bools, strings and None stay as they are; tuples become lists."""
    import math

    import numpy as np

    from driftline.storage.results import json_safe

    value = {
        "plain": [1, 2.5, True, None, "x", math.nan, -math.inf],
        "numpy": (np.float32(2.5), np.float64(math.inf), np.float64(-0.0), np.int64(7)),
        "nested": {"deep": [[math.inf, {"nan": np.nan}], 1e308 * 10]},
        "scalar": np.float64(1.5),
        "flag": False,
    }
    safe = json_safe(value)
    assert safe == {
        "plain": [1, 2.5, True, None, "x", None, None],
        "numpy": [2.5, None, -0.0, np.int64(7)],
        "nested": {"deep": [[None, {"nan": None}], None]},
        "scalar": 1.5,
        "flag": False,
    }
    assert [type(v) for v in safe["plain"]] == [int, float, bool, type(None), str, type(None), type(None)]
    assert type(safe["numpy"][0]) is float and type(safe["scalar"]) is float and safe["flag"] is False
