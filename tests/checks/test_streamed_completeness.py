"""The streamed completeness suite equals GX's own validation of the whole frame.

For each fault case (nulls, out-of-range and non-finite values, unseen categories, duplicates, text
in a numeric column, an empty window, an all-null column, a naive timestamp, a window's rows outside
it) the frame is folded in blocks of several sizes and every expectation's result — success,
element/unexpected/missing counts, percentages, the partial unexpected list, the observed value,
whether it raised — is compared with GX 1.24 validating the whole frame. So are the Driftline
results built from them.
"""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftline.checks import completeness
from driftline.checks.completeness import (
    begin_completeness,
    build_suite,
    completeness_results,
    evaluate_completeness,
    gx_results,
    plan_expectations,
    run_suite,
    value_kinds,
    window_bounds,
)
from driftline.config.monitors import ModelConfig, parse_config
from driftline.core.errors import ConfigError
from driftline.core.results import Result
from driftline.core.window import Window
from driftline.stats.expectations import STREAMED_EXPECTATIONS
from driftline.stats.model_profile import ModelProfile, fit_model_profile, window_model_profile
from driftline.tasks.context import WindowContext
from tests.conftest import model_entry

START = datetime(2026, 3, 2, 10, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(hours=1))

#: Every streamed type at least once, with mostly, strict bounds, parameters and a missing column.
USER_EXPECTATIONS: list[dict[str, Any]] = [
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "income", "min_value": 0, "mostly": 0.9}},
    {"type": "expect_column_values_to_be_between",
     "kwargs": {"column": "age", "min_value": 18, "max_value": 70, "strict_min": True, "strict_max": True}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "age", "max_value": 65}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "region", "regex": "^(?:north|south)$"}},
    {"type": "expect_column_values_to_not_match_regex", "kwargs": {"column": "region", "regex": "st", "mostly": 0.5}},
    {"type": "expect_column_values_to_not_be_in_set", "kwargs": {"column": "region", "value_set": ["west"]}},
    {"type": "expect_column_values_to_be_null", "kwargs": {"column": "label", "mostly": 0.1}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "score", "mostly": 0.95}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "region"}},
    {"type": "expect_column_min_to_be_between", "kwargs": {"column": "age", "min_value": 18}},
    {"type": "expect_column_max_to_be_between", "kwargs": {"column": "income", "max_value": 1e6, "strict_max": True}},
    {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "age", "min_value": 30, "max_value": 60}},
    {"type": "expect_column_sum_to_be_between", "kwargs": {"column": "score", "min_value": 1}},
    {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "region", "min_value": 0}},
    {"type": "expect_column_sum_to_be_between", "kwargs": {"column": "region", "max_value": 10}},
    {"type": "expect_column_values_to_be_between",
     "kwargs": {"column": "ts", "min_value": {"$PARAMETER": "window_start"},
                "max_value": {"$PARAMETER": "window_end"}}},
    {"type": "expect_table_row_count_to_equal", "kwargs": {"value": 300}},
    {"type": "expect_column_to_exist", "kwargs": {"column": "no_such_column"}},
    {"type": "expect_column_to_exist", "kwargs": {"column": "ts", "column_index": 1}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "no_such_column", "value_set": [1]}},
]


def _model(name: str = "loan", expectations: list[dict[str, Any]] | None = None) -> ModelConfig:
    quality = {"expectations": USER_EXPECTATIONS if expectations is None else expectations}
    return parse_config({"models": [model_entry(name, "x.loan", quality=quality)]}).models[0]


def _frame(rows: int, seed: int, start: datetime = START) -> pd.DataFrame:
    """A window's rows with the dtypes the streamed COPY read gives (int64, float64, str, UTC times)."""
    rng = np.random.default_rng(seed)
    score = rng.uniform(size=rows)
    frame = pd.DataFrame({
        "request_id": np.arange(1, rows + 1, dtype=np.int64),
        "ts": pd.Series(start + pd.to_timedelta(np.sort(rng.uniform(0, 3599, rows)), unit="s")).astype(
            "datetime64[us, UTC]"),
        "income": rng.normal(50_000, 10_000, rows),
        "age": rng.integers(18, 80, rows).astype(float),
        "region": pd.Series(rng.choice(["north", "south", "east"], rows, p=[0.5, 0.3, 0.2]), dtype="str"),
        "prediction": (score > 0.5).astype(float),
        "score": score,
        "label": np.where(rng.uniform(size=rows) < 0.6, (rng.uniform(size=rows) < score).astype(float), np.nan),
        "latency_ms": rng.gamma(3, 10, rows),
    })
    return frame


@pytest.fixture(scope="module")
def reference() -> ModelProfile:
    model = _model()
    frame = _frame(2_000, 1, START - timedelta(days=2))
    return fit_model_profile(frame, model.features.numeric, model.features.categorical)


def _fault(case: str) -> pd.DataFrame:
    frame = _frame(300, 7)
    if case == "nulls":
        frame.loc[::3, "income"] = np.nan
        frame.loc[5:9, "request_id"] = None  # becomes float with NaN, as a NULL id would
        frame.loc[[2, 200], "score"] = np.nan
        frame["region"] = frame["region"].where(frame.index % 7 != 0, None)
        frame.loc[11, "ts"] = pd.NaT
    elif case == "out_of_range":
        frame.loc[17, "income"] = 10_000_000.0
        frame.loc[18, "income"] = np.inf
        frame.loc[19, "income"] = -np.inf
        frame.loc[20, "age"] = -5.0
        frame.loc[21, "income"] = np.nan
    elif case == "bad_categories":
        frame.loc[::10, "region"] = "west"
        frame.loc[3, "region"] = ""
    elif case == "duplicates":
        frame.loc[40, "request_id"] = frame.loc[39, "request_id"]
        frame.loc[[100, 250, 299], "request_id"] = 7
    elif case == "type_errors":
        text = frame["age"].map(lambda v: f"{v:g}").astype(object)
        text[[4, 9]] = ["n/a", "12,5"]
        frame["age"] = text.astype("str")
    elif case == "empty":
        frame = frame.iloc[:0]
    elif case == "all_null":
        frame["income"] = np.nan
        frame["region"] = pd.Series([None] * len(frame), dtype="str")
    elif case == "naive_timestamp":
        frame["ts"] = frame["ts"].dt.tz_localize(None)
    elif case == "outside_window":
        frame.loc[[0, 1], "ts"] = START - timedelta(minutes=1)
        frame.loc[299, "ts"] = WINDOW.end
    return frame.reset_index(drop=True)


CASES = ["clean", "nulls", "out_of_range", "bad_categories", "duplicates", "type_errors", "empty", "all_null",
         "naive_timestamp", "outside_window"]


def _blocks(frame: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    if len(frame) == 0:
        return [frame]
    return [frame.iloc[i : i + size] for i in range(0, len(frame), size)]


def _same(ours: Any, theirs: Any, key: str) -> bool:
    if isinstance(theirs, list):
        return isinstance(ours, list) and len(ours) == len(theirs) and all(
            _same(a, b, key) for a, b in zip(ours, theirs, strict=True))
    if theirs is None or ours is None:
        return ours is None and theirs is None
    if theirs is pd.NaT:
        return ours is pd.NaT
    if isinstance(theirs, (float, np.floating)) and not isinstance(theirs, bool):
        if math.isnan(theirs):
            return isinstance(ours, (float, np.floating)) and math.isnan(ours)
        # A mean or sum folded block by block may differ from pandas' one pass in the last bits.
        return ours == pytest.approx(theirs, rel=1e-12, abs=0)
    if isinstance(theirs, pd.Timestamp) or isinstance(theirs, datetime):
        return pd.Timestamp(ours) == pd.Timestamp(theirs)
    return bool(ours == theirs) and type(ours) is not bool or ours is theirs


def _gx_raw(model: ModelConfig, frame: pd.DataFrame, reference: ModelProfile) -> list[Any]:
    planned = plan_expectations(model, reference, value_kinds(frame, model.features.categorical))
    suite, errors = build_suite(f"test_{model.name}", planned)
    assert errors == {}
    by_index = {}
    for result in run_suite(model, frame, suite, window_bounds(model, WINDOW, frame)):
        by_index[int(result.expectation_config.meta[completeness._META_KEY])] = result
    return [by_index[i] for i in range(len(planned))]


def _context(model: ModelConfig, frame: pd.DataFrame, reference: ModelProfile) -> WindowContext:
    return WindowContext(model, WINDOW, frame, reference, window_model_profile(frame, reference))


def _streamed(model: ModelConfig, frame: pd.DataFrame, reference: ModelProfile, size: int) -> Any:
    blocks = _blocks(frame, size)
    fold = begin_completeness(model, reference, WINDOW, blocks[0])
    for block in blocks:
        fold.fold(block)
    return fold


def _comparable(result: Result) -> tuple[Any, ...]:
    details = {k: v for k, v in result.details.items() if k not in ("error", "reason", "p_value", "p_value_adjusted")}
    # A mean or sum folded block by block may differ from pandas' one pass in the last bits.
    value = None if result.value is None else float(f"{result.value:.12g}")
    return (result.metric, result.feature, value, result.threshold, result.status, repr(details),
            "error" in result.details)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_every_expectation_equals_gx_on_the_whole_frame(case: str, reference: ModelProfile) -> None:
    model = _model()
    frame = _fault(case)
    planned = plan_expectations(model, reference, value_kinds(frame, model.features.categorical))
    theirs = _gx_raw(model, frame, reference)
    context = _context(model, frame, reference)
    gx_rows = [_comparable(r) for r in gx_results(context)]
    assert {p.type for p in planned} == set(STREAMED_EXPECTATIONS)  # every supported type is compared
    for size in (5, 64, 10_000):
        fold = _streamed(model, frame, reference, size)
        ours = fold.suite.results()
        for item, mine, gx in zip(planned, ours, theirs, strict=True):
            where = f"{case}, blocks of {size}: {item.metric} on {item.feature}"
            gx_raised = bool(completeness._error_of(gx.exception_info))
            assert bool(completeness._error_of(mine.exception_info)) == gx_raised, where
            if gx_raised:
                continue
            assert mine.success == gx.success, where
            gx_result = dict(gx.result or {})
            assert set(mine.result) == set(gx_result), where
            for key, value in gx_result.items():
                assert _same(mine.result[key], value, key), f"{where}: {key} {mine.result[key]!r} != {value!r}"
        # ... and so are the Driftline results built from them (value, threshold, status, details).
        assert [_comparable(r) for r in completeness_results(context, fold)] == gx_rows, case


def test_the_fault_cases_do_fail(reference: ModelProfile) -> None:
    """The comparison is not vacuous: each fault makes its built-in expectation fail or be unknown."""
    model = _model(expectations=[])
    failing = {}
    for case in CASES:
        frame = _fault(case)
        results = evaluate_completeness(_context(model, frame, reference))
        failing[case] = {(r.metric, r.feature) for r in results if r.status != "ok"}
    assert failing["clean"] == set()
    assert ("expect_column_values_to_not_be_null", "income") in failing["nulls"]
    assert ("expect_column_values_to_be_between", "income") in failing["out_of_range"]
    assert ("expect_column_values_to_be_in_set", "region") in failing["bad_categories"]
    assert failing["duplicates"] == {("expect_column_values_to_be_unique", "request_id")}
    assert ("expect_column_values_to_be_between", "age") in failing["type_errors"]  # unknown: text vs number
    assert failing["empty"] == {("expect_table_row_count_to_be_between", None)}
    assert ("expect_column_values_to_be_between", "ts") in failing["outside_window"]


def test_tallies_merge_in_row_order(reference: ModelProfile) -> None:
    """Folding two halves apart and merging them equals folding the whole (the partial list keeps row order)."""
    model = _model()
    frame = _fault("duplicates")
    first, second = frame.iloc[:150], frame.iloc[150:]
    merged = _streamed(model, first, reference, 40).merge(_streamed(model, second, reference, 40))
    whole = _streamed(model, frame, reference, 300)
    assert [(r.success, repr(r.result)) for r in merged.suite.results()] == [
        (r.success, repr(r.result)) for r in whole.suite.results()
    ]


def test_two_models_concurrently_match_serial_and_run_no_gx(
    reference: ModelProfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hourly path never calls GX's validator, so GX's suite-parameter race cannot fire in it."""
    import great_expectations.validator.v1_validator as v1

    contexts = [_context(_model(f"m{i}"), _fault(case), reference) for i, case in enumerate(["nulls", "duplicates"])]
    serial = [evaluate_completeness(c) for c in contexts]

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the hourly completeness run called GX's validator")

    monkeypatch.setattr(v1.Validator, "__init__", refuse)
    outcome: list[Any] = [None, None]
    barrier = threading.Barrier(2)

    def work(i: int) -> None:
        barrier.wait()
        outcome[i] = evaluate_completeness(contexts[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcome == serial


@pytest.mark.slow
def test_two_gx_validations_at_once_are_serialised(reference: ModelProfile) -> None:
    """GX's own validation (the reference the tests compare with) is safe from two threads at once:
    GX 1.24's suite-parameter parser raised ``push_first() missing 'toks'`` when two ran together."""
    cases = ["nulls", "outside_window"]
    contexts = [_context(_model(f"g{i}"), _fault(case), reference) for i, case in enumerate(cases)]
    serial = [gx_results(c) for c in contexts]
    for _ in range(3):
        outcome: list[Any] = [None, None]
        errors: list[BaseException] = []
        barrier = threading.Barrier(2)

        def work(i: int, into: list[Any] = outcome, failed: list[Any] = errors, start: Any = barrier) -> None:
            start.wait()
            try:
                into[i] = gx_results(contexts[i])
            except BaseException as exc:  # reported below
                failed.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        assert outcome == serial


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "expect_column_median_to_be_between", "kwargs": {"column": "age", "min_value": 1}},
         "expect_column_median_to_be_between is not supported: it needs the whole window's rows"),
        ({"type": "expect_column_kl_divergence_to_be_less_than",
          "kwargs": {"column": "age", "partition_object": {"bins": [0, 1], "weights": [1.0]}, "threshold": 0.1}},
         "expect_column_kl_divergence_to_be_less_than is not supported: it needs the whole window's rows"),
        ({"type": "expect_column_values_to_be_between",
          "kwargs": {"column": "age", "min_value": 1, "row_condition": 'region=="north"',
                     "condition_parser": "pandas"}},
         "argument 'row_condition' is not supported: row conditions are not applied to the streamed window"),
    ],
)
def test_an_expectation_that_cannot_stream_is_refused_at_config_load(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"models": [model_entry("loan", "x.loan", quality={"expectations": [spec]})]})
    assert message in str(caught.value)
    assert "supported: expect_column_to_exist" in str(caught.value) or "row_condition" in message
