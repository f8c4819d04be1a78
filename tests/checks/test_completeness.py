"""Completeness and validity expectations (GX) on a real PostgreSQL prediction log.

One log, seeded once for the module: two days of reference, then one hour per defect. Each defect
must fail exactly its own expectation, and a clean hour must fail nothing.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from driftline.checks import completeness
from driftline.checks.completeness import evaluate_completeness, plan_expectations, value_kinds
from driftline.config.monitors import ModelConfig, parse_config
from driftline.core.errors import ConfigError
from driftline.core.results import Kind, Result, Status
from driftline.core.window import Window
from driftline.stats.model_profile import ModelProfile, fit_model_profile, window_model_profile
from driftline.stats.profile import CategoricalProfile
from driftline.tasks.context import WindowContext
from driftline.tasks.extract import read_rows
from tests.conftest import DAY, REFERENCE_END, REFERENCE_START, create_log_table, model_entry, synthetic_rows

PER_HOUR = 200
HOURS = {
    "clean": 0,
    "null_burst": 1,
    "unseen_category": 2,
    "out_of_range": 3,
    "duplicate_id": 4,
    "empty": 5,
    "clean_again": 6,
}


@pytest.fixture(scope="module")
def quality_log(engine: sa.Engine) -> Iterator[dict[str, Any]]:
    """``<schema>.loan_predictions`` without a primary key (so an id can repeat), one defect per hour."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with engine.begin() as connection:
        connection.execute(sa.schema.CreateSchema(schema))
    table = create_log_table(engine, schema, "loan_predictions")
    with engine.begin() as connection:
        connection.execute(sa.text(f'ALTER TABLE "{schema}".loan_predictions DROP CONSTRAINT loan_predictions_pkey'))
    rng = np.random.default_rng(11)
    rows = synthetic_rows(rng, REFERENCE_START, 48, 100)
    for name, hour in HOURS.items():
        if name == "empty":
            continue
        hour_rows = synthetic_rows(rng, DAY + timedelta(hours=hour), 1, PER_HOUR, first_id=len(rows) + 1)
        if name == "null_burst":
            for row in hour_rows[::3]:  # a third of the incomes missing; the reference has none
                row["income"] = None
        elif name == "unseen_category":
            for row in hour_rows[::10]:  # 10% of a region never seen in the reference
                row["region"] = "west"
        elif name == "out_of_range":
            hour_rows[17]["income"] = 10_000_000.0
        elif name == "duplicate_id":
            hour_rows[40]["request_id"] = hour_rows[39]["request_id"]
        rows += hour_rows
    with engine.begin() as connection:
        connection.execute(table.insert(), rows)
    yield {"schema": schema, "table": f"{schema}.loan_predictions"}
    with engine.begin() as connection:
        connection.execute(sa.schema.DropSchema(schema, cascade=True))


def _model(table: str, name: str = "loan", **quality: Any) -> ModelConfig:
    entry = model_entry(name, table, quality=quality) if quality else model_entry(name, table)
    return parse_config({"models": [entry]}).models[0]


@pytest.fixture(scope="module")
def reference(engine: sa.Engine, quality_log: dict[str, Any]) -> ModelProfile:
    model = _model(quality_log["table"])
    frame = read_rows(engine, model, REFERENCE_START, REFERENCE_END)
    return fit_model_profile(frame, model.features.numeric, model.features.categorical)


def _context(engine: sa.Engine, model: ModelConfig, hour: int, reference: ModelProfile | None) -> WindowContext:
    window = Window(DAY + timedelta(hours=hour), DAY + timedelta(hours=hour + 1))
    frame = read_rows(engine, model, window.start, window.end)
    profile = reference or fit_model_profile(frame, model.features.numeric, model.features.categorical)
    return WindowContext(
        model=model,
        window=window,
        frame=frame,
        reference=reference,
        current=window_model_profile(frame, profile),
        data_engine=engine,
    )


def _failing(results: list[Result]) -> set[tuple[str, str | None]]:
    return {(r.metric, r.feature) for r in results if r.status != Status.OK}


def _one(results: list[Result], metric: str, feature: str | None) -> Result:
    [found] = [r for r in results if r.metric == metric and r.feature == feature]
    return found


def _check_shape(results: list[Result], context: WindowContext) -> None:
    keys = [(r.metric, r.feature) for r in results]
    assert len(keys) == len(set(keys)), "two results share the unique key"
    for r in results:
        assert r.kind == Kind.DATA_QUALITY
        assert (r.model, r.window_start, r.window_end) == (context.model.name, context.window.start, context.window.end)
        assert r.details["expectation"] == r.metric.split("#")[0]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("clean", set()),
        ("clean_again", set()),
        ("null_burst", {("expect_column_values_to_not_be_null", "income")}),
        ("unseen_category", {("expect_column_values_to_be_in_set", "region")}),
        ("out_of_range", {("expect_column_values_to_be_between", "income")}),
        ("duplicate_id", {("expect_column_values_to_be_unique", "request_id")}),
        ("empty", {("expect_table_row_count_to_be_between", None)}),
    ],
)
def test_each_defect_fails_exactly_its_expectation(
    engine: sa.Engine, quality_log: dict[str, Any], reference: ModelProfile, case: str, expected: set[Any]
) -> None:
    model = _model(quality_log["table"])
    context = _context(engine, model, HOURS[case], reference)
    results = evaluate_completeness(context)
    _check_shape(results, context)
    assert _failing(results) == expected
    assert all(r.status in (Status.OK, Status.ALERT) for r in results)
    # Every configured column is checked to exist; the label column never gets a null check.
    exist = {r.feature for r in results if r.metric == "expect_column_to_exist"}
    assert exist == set(model.columns())
    assert ("expect_column_values_to_not_be_null", "label") not in {(r.metric, r.feature) for r in results}


def test_failing_results_carry_value_threshold_and_details(
    engine: sa.Engine, quality_log: dict[str, Any], reference: ModelProfile
) -> None:
    model = _model(quality_log["table"])

    nulls = _one(
        evaluate_completeness(_context(engine, model, HOURS["null_burst"], reference)),
        "expect_column_values_to_not_be_null",
        "income",
    )
    assert nulls.value == pytest.approx(67 / PER_HOUR)  # rows 0, 3, ..., 198
    assert nulls.threshold == pytest.approx(0.05)  # reference null rate 0 + null_tolerance
    assert nulls.details["element_count"] == PER_HOUR and nulls.details["unexpected_count"] == 67
    assert nulls.details["partial_unexpected_list"] == [None] * 5

    unseen = _one(
        evaluate_completeness(_context(engine, model, HOURS["unseen_category"], reference)),
        "expect_column_values_to_be_in_set",
        "region",
    )
    assert unseen.value == pytest.approx(0.1)
    assert unseen.threshold == pytest.approx(0.01)
    assert unseen.details["partial_unexpected_list"] == ["west"] * 5
    assert sorted(unseen.details["kwargs"]["value_set"]) == ["east", "north", "south"]

    out = _one(
        evaluate_completeness(_context(engine, model, HOURS["out_of_range"], reference)),
        "expect_column_values_to_be_between",
        "income",
    )
    profile = reference.features["income"]
    margin = 0.25 * (profile.maximum - profile.minimum)  # type: ignore[union-attr]
    assert out.details["kwargs"]["min_value"] == pytest.approx(profile.minimum - margin)  # type: ignore[union-attr]
    assert out.details["kwargs"]["max_value"] == pytest.approx(profile.maximum + margin)  # type: ignore[union-attr]
    assert out.value == pytest.approx(1 / PER_HOUR) and out.threshold == 0.0
    assert out.details["partial_unexpected_list"] == [10_000_000.0]

    duplicated = _one(
        evaluate_completeness(_context(engine, model, HOURS["duplicate_id"], reference)),
        "expect_column_values_to_be_unique",
        "request_id",
    )
    assert duplicated.details["unexpected_count"] == 2 and len(set(duplicated.details["partial_unexpected_list"])) == 1

    empty = evaluate_completeness(_context(engine, model, HOURS["empty"], reference))
    rows = _one(empty, "expect_table_row_count_to_be_between", None)
    assert (rows.value, rows.threshold, rows.status) == (0.0, 1.0, Status.ALERT)
    nulls_on_empty = _one(empty, "expect_column_values_to_not_be_null", "income")
    assert nulls_on_empty.value is None and nulls_on_empty.details["reason"] == "no rows in this window"

    clean = evaluate_completeness(_context(engine, model, HOURS["clean"], reference))
    window = _one(clean, "expect_column_values_to_be_between", "ts")
    assert window.details["kwargs"]["min_value"] == (DAY).isoformat()
    assert window.details["kwargs"]["strict_max"] is True
    assert _one(clean, "expect_table_row_count_to_be_between", None).value == PER_HOUR


def test_user_expectations_in_gx_vocabulary(
    engine: sa.Engine, quality_log: dict[str, Any], reference: ModelProfile
) -> None:
    model = _model(
        quality_log["table"],
        expectations=[
            # Collides with the built-in range on income: gets a suffix, not the built-in's key.
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "income", "min_value": 0}},
            {
                "type": "expect_column_values_to_match_regex",
                "severity": "warning",
                "kwargs": {"column": "region", "regex": "^(?:north|south|east)$"},
            },
            {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "age", "min_value": 40, "max_value": 60}},
            {"type": "expect_column_max_to_be_between", "kwargs": {"column": "age", "max_value": 50}},
            # The window bounds are suite parameters a user may use too.
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {
                    "column": "ts",
                    "min_value": {"$PARAMETER": "window_start"},
                    "max_value": {"$PARAMETER": "window_end"},
                },
            },
        ],
        max_rows=150,
        severity="warning",
    )
    context = _context(engine, model, HOURS["unseen_category"], reference)
    results = evaluate_completeness(context)
    _check_shape(results, context)
    assert _failing(results) == {
        ("expect_column_values_to_be_in_set", "region"),
        ("expect_column_values_to_match_regex", "region"),
        ("expect_column_max_to_be_between", "age"),
        ("expect_table_row_count_to_be_between", None),
    }
    # Built-ins follow quality.severity, users' their own entry's severity (alert by default).
    assert _one(results, "expect_column_values_to_be_in_set", "region").status == Status.WARNING
    regex = _one(results, "expect_column_values_to_match_regex", "region")
    assert (regex.status, regex.value, regex.details["user_defined"]) == (Status.WARNING, pytest.approx(0.1), True)
    age_max = _one(results, "expect_column_max_to_be_between", "age")
    assert (age_max.status, age_max.value, age_max.threshold) == (Status.ALERT, 79.0, 50.0)
    rows = _one(results, "expect_table_row_count_to_be_between", None)
    assert (rows.value, rows.threshold) == (PER_HOUR, 150)
    assert _one(results, "expect_column_values_to_be_between#1", "income").status == Status.OK
    assert _one(results, "expect_column_values_to_be_between", "income").details.get("user_defined") is None
    assert _one(results, "expect_column_values_to_be_between#5", "ts").status == Status.OK
    assert _one(results, "expect_column_mean_to_be_between", "age").value == pytest.approx(context.frame["age"].mean())


def test_without_reference_only_reference_free_expectations_run(engine: sa.Engine, quality_log: dict[str, Any]) -> None:
    model = _model(quality_log["table"])
    results = evaluate_completeness(_context(engine, model, HOURS["unseen_category"], None))
    assert _failing(results) == set()
    checked = {(r.metric, r.feature) for r in results}
    assert ("expect_column_values_to_be_in_set", "region") not in checked
    assert ("expect_column_values_to_be_between", "income") not in checked
    assert ("expect_column_values_to_not_be_null", "income") not in checked
    assert ("expect_column_values_to_not_be_null", "prediction") in checked
    assert ("expect_column_values_to_be_unique", "request_id") in checked


def test_disabled_quality_gives_nothing(
    engine: sa.Engine, quality_log: dict[str, Any], reference: ModelProfile
) -> None:
    model = _model(quality_log["table"], enabled=False)
    assert evaluate_completeness(_context(engine, model, HOURS["clean"], reference)) == []


def test_plan_keys_are_unique_when_the_timestamp_is_also_a_feature(reference: ModelProfile) -> None:
    entry = model_entry("loan", "x.y", features={"numeric": ["income", "age", "score"], "categorical": ["region"]})
    model = parse_config({"models": [entry]}).models[0]
    planned = plan_expectations(model, reference)
    keys = [(p.metric, p.feature) for p in planned]
    assert len(keys) == len(set(keys))


def test_several_models_in_threads_match_serial_runs(
    engine: sa.Engine, quality_log: dict[str, Any], reference: ModelProfile
) -> None:
    cases = ["null_burst", "unseen_category", "out_of_range", "duplicate_id"]
    contexts = [
        _context(engine, _model(quality_log["table"], name=f"m{i}"), HOURS[c], reference) for i, c in enumerate(cases)
    ]
    serial = [evaluate_completeness(c) for c in contexts]
    threaded: list[list[Result] | None] = [None] * len(contexts)

    def work(i: int) -> None:
        threaded[i] = evaluate_completeness(contexts[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(contexts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert threaded == serial
    assert [len(_failing(r)) for r in serial] == [1, 1, 1, 1]


def test_an_expectation_gx_cannot_evaluate_is_unknown_and_alone(
    engine: sa.Engine, quality_log: dict[str, Any], reference: ModelProfile
) -> None:
    # Config validation cannot know the table's columns; the run reports it instead of failing.
    model = _model(
        quality_log["table"],
        expectations=[
            {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "no_such_column", "regex": "x"}},
        ],
    )
    results = evaluate_completeness(_context(engine, model, HOURS["clean"], reference))
    broken = _one(results, "expect_column_values_to_match_regex", "no_such_column")
    assert broken.status == Status.UNKNOWN and broken.value is None
    assert "no_such_column" in broken.details["error"]
    assert _failing(results) == {("expect_column_values_to_match_regex", "no_such_column")}


def test_gx_keeps_no_window_data_after_a_run(
    engine: sa.Engine, quality_log: dict[str, Any], reference: ModelProfile
) -> None:
    """Regression: GX's execution engine held each model's last frame until its next run."""
    model = _model(quality_log["table"], name="released")
    completeness.gx_results(_context(engine, model, HOURS["clean"], reference))
    definition = completeness._SOURCES["released"]
    assert definition.data_asset.datasource.get_execution_engine().batch_manager.batch_data_cache == {}


@pytest.mark.parametrize("case", list(HOURS))
def test_streamed_results_equal_gx_on_the_read_window(
    engine: sa.Engine, quality_log: dict[str, Any], reference: ModelProfile, case: str
) -> None:
    """On the window as read from PostgreSQL (its dtypes), the folded suite gives GX's own results."""
    context = _context(engine, _model(quality_log["table"]), HOURS[case], reference)
    ours, theirs = evaluate_completeness(context), completeness.gx_results(context)
    assert [(r.metric, r.feature, r.status, r.threshold, r.details) for r in ours] == [
        (r.metric, r.feature, r.status, r.threshold, r.details) for r in theirs
    ]
    assert [None if r.value is None else round(r.value, 9) for r in ours] == [
        None if r.value is None else round(r.value, 9) for r in theirs
    ]


@pytest.mark.parametrize("case", list(HOURS))
def test_the_streamed_window_gives_the_frame_results_without_reading_rows(
    engine: sa.Engine, quality_log: dict[str, Any], reference: ModelProfile, case: str
) -> None:
    """The tallies fold with the streamed profile (blocks of ~40 rows here) and no monitor reads the frame."""
    from driftline.tasks.extract import iter_rows
    from driftline.tasks.profiles import stream_window_profile

    model = _model(quality_log["table"])
    framed = _context(engine, model, HOURS[case], reference)

    def small_blocks(*args: Any, **kwargs: Any) -> Any:
        return iter_rows(*args, **(kwargs | {"block_bytes": 4096}))

    def no_rows() -> pd.DataFrame:
        raise AssertionError("completeness read the window's rows")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("driftline.tasks.profiles.iter_rows", small_blocks)
        current = stream_window_profile(engine, model, framed.window, reference)
    assert current.states["completeness"].tallies[0].rows == len(framed.frame)
    streamed = WindowContext(model=model, window=framed.window, frame=no_rows, reference=reference,
                             current=current, data_engine=engine)
    ours = evaluate_completeness(streamed)
    theirs = evaluate_completeness(framed)
    assert [(r.metric, r.feature, r.status, r.threshold, r.details) for r in ours] == [
        (r.metric, r.feature, r.status, r.threshold, r.details) for r in theirs
    ]
    assert [None if r.value is None else round(r.value, 9) for r in ours] == [
        None if r.value is None else round(r.value, 9) for r in theirs
    ]


def test_reference_categories_compare_as_numbers_and_booleans_in_such_columns(reference: ModelProfile) -> None:
    frame = pd.DataFrame({"code": [1, 2, None], "flag": [True, None, False], "name": ["a", None, "b"]})
    assert value_kinds(frame, ["code", "flag", "name"]) == {"code": "number", "flag": "bool", "name": "text"}
    entry = model_entry("m", "x.y", features={"numeric": [], "categorical": ["code", "flag"]})
    model = parse_config({"models": [entry]}).models[0]
    profile = ModelProfile(
        3, {"code": CategoricalProfile({"1.0": 2, "2.0": 1}), "flag": CategoricalProfile({"True": 2, "False": 1})}
    )
    planned = plan_expectations(model, profile, value_kinds(frame, ["code", "flag"]))
    sets = {p.feature: p.kwargs["value_set"] for p in planned if p.type == "expect_column_values_to_be_in_set"}
    assert sets == {"code": [1.0, 2.0], "flag": [False, True]}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "age"}},
            "quality.expectations.0: unknown expectation type 'expect_column_values_to_be_betwen'; "
            "did you mean expect_column_values_to_be_between",
        ),
        (
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "min_vale": 1}},
            "quality.expectations.0: expect_column_values_to_be_between: unknown argument 'min_vale' "
            "(did you mean 'min_value'?); accepted: ",
        ),
        (
            {"type": "expect_column_values_to_be_between", "kwargs": {"min_value": 1}},
            "quality.expectations.0: expect_column_values_to_be_between: missing required argument 'column'",
        ),
        (
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "region", "value_set": ["a"], "mostly": 2},
            },
            "quality.expectations.0: expect_column_values_to_be_in_set: invalid value for 'mostly'",
        ),
        (
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "age", "severity": "warning"}},
            "argument 'severity' is not allowed: set 'severity' (warning or alert) on the entry itself",
        ),
        (
            {
                "type": "expect_column_values_to_match_like_pattern",
                "kwargs": {"column": "region", "like_pattern": "n%"},
            },
            "expect_column_values_to_match_like_pattern is not supported: ",
        ),
    ],
)
def test_bad_user_expectation_is_a_clear_config_error(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"models": [model_entry("loan", "loan_predictions", quality={"expectations": [spec]})]})
    assert str(caught.value).startswith("monitors.yaml: model 'loan': ")
    assert message in str(caught.value)
