"""The performance-estimation monitor on frames: fit, fold (streamed and merged), evaluate, react."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftline.config.monitors import RESIDUAL, parse_config
from driftline.core.results import Kind, Result, Status
from driftline.core.window import Window
from driftline.tasks.estimation import (
    ESTIMATION,
    attach_realised,
    estimate_results,
    reacting,
)
from driftline.tasks.performance import compute_metrics
from driftline.tasks.profiles import fit_reference, profile_window
from tests.conftest import model_entry

WINDOW = Window(datetime(2026, 3, 3, 9, tzinfo=UTC), datetime(2026, 3, 3, 10, tzinfo=UTC))


def _model(**overrides: Any) -> Any:
    return parse_config({"models": [model_entry("loan", "loan_predictions", **overrides)]}).models[0]


def _classifier_rows(n: int, seed: int, income_mean: float = 50_000, flip: bool = False) -> pd.DataFrame:
    """Income drives the score; the score is calibrated (label ~ Bernoulli(score)) unless ``flip``."""
    rng = np.random.default_rng(seed)
    income = rng.normal(income_mean, 15_000, n)
    score = 1 / (1 + np.exp(-(income - 50_000) / 10_000))
    truth = 1 - score if flip else score
    return pd.DataFrame(
        {
            "income": income,
            "age": rng.integers(18, 80, n).astype(float),
            "region": rng.choice(["north", "south", "east"], n),
            "prediction": (score > 0.5).astype(float),
            "score": score,
            "label": (rng.uniform(size=n) < truth).astype(float),
            "latency_ms": rng.gamma(3, 10, n),
        }
    )


def _by_metric(results: list[Result]) -> dict[tuple[str, str | None], Result]:
    return {(r.metric, r.feature): r for r in results}


@pytest.fixture(scope="module")
def classifier() -> tuple[Any, Any]:
    model = _model()
    return model, fit_reference(_classifier_rows(20_000, 1), model)


def test_reference_carries_the_estimator_and_its_own_estimates(classifier: tuple[Any, Any]) -> None:
    _, reference = classifier
    estimator = reference.fitted.estimator
    assert estimator["task"] == "classification" and len(estimator["calibrator"]["levels"]) >= 10
    realised = reference.fitted.performance.metrics
    for metric in ("roc_auc", "accuracy", "precision", "recall", "f1"):
        # The reference's own estimate is close to its realised metric (the score is calibrated).
        assert estimator["reference"][metric]["value"] == pytest.approx(realised[metric], abs=0.02), metric
    assert estimator["calibration"]["poor"] is False
    assert set(estimator["reference_segments"]) == {"income", "age", "region"}


def test_estimate_follows_the_truth_when_the_input_mix_shifts(classifier: tuple[Any, Any]) -> None:
    model, reference = classifier
    # Incomes move towards the decision boundary: more uncertain scores, lower accuracy, no labels.
    window = _classifier_rows(3_000, 2, income_mean=50_000)
    window["income"] = 50_000 + (window["income"] - 50_000) * 0.3
    window["score"] = 1 / (1 + np.exp(-(window["income"] - 50_000) / 10_000))
    window["prediction"] = (window["score"] > 0.5).astype(float)
    rng = np.random.default_rng(3)
    truth = (rng.uniform(size=len(window)) < window["score"]).astype(float)
    window["label"] = np.nan  # not arrived
    results = _by_metric(estimate_results(model, WINDOW, reference, profile_window(window, reference, model)))
    realised = compute_metrics("classification", truth, window["prediction"], window["score"])
    for metric in ("roc_auc", "accuracy", "precision", "recall", "f1"):
        result = results[(f"estimated_{metric}", None)]
        low, high = result.details["band"]
        assert low <= realised[metric] <= high, (metric, realised[metric], result.details["band"])
    accuracy = results[("estimated_accuracy", None)]
    assert accuracy.status == Status.ALERT and accuracy.value < 0.6
    assert "before labels" in accuracy.details["reason"]
    assert accuracy.details["reference_value"] > 0.7 and accuracy.value < accuracy.threshold


def test_unchanged_window_is_ok_and_per_segment_results_exist(classifier: tuple[Any, Any]) -> None:
    model, reference = classifier
    window = _classifier_rows(2_000, 4)
    results = estimate_results(model, WINDOW, reference, profile_window(window, reference, model))
    assert {r.status for r in results} == {Status.OK}
    segment = _by_metric(results)[("estimated_segment_roc_auc", "region")]
    assert segment.details["segments_compared"] == 3 and segment.details["band"][0] < segment.value


def test_concept_drift_is_not_seen_by_the_estimate(classifier: tuple[Any, Any]) -> None:
    """The documented limit: the score-label relation flips, the scores do not move, the estimate stays."""
    model, reference = classifier
    window = _classifier_rows(3_000, 5, flip=True)
    realised = compute_metrics("classification", window["label"], window["prediction"], window["score"])
    estimate = _by_metric(estimate_results(model, WINDOW, reference, profile_window(window, reference, model)))
    assert realised["accuracy"] < 0.3
    assert estimate[("estimated_accuracy", None)].value > 0.7  # the reference accuracy, 0.73
    assert estimate[("estimated_accuracy", None)].status == Status.OK


def test_streamed_blocks_merge_to_the_whole_window(classifier: tuple[Any, Any]) -> None:
    model, reference = classifier
    window = _classifier_rows(5_000, 6)
    whole = profile_window(window, reference, model)
    blocks = [profile_window(window.iloc[i : i + 1_300], reference, model) for i in range(0, 5_000, 1_300)]
    merged = blocks[0]
    for block in blocks[1:]:
        merged = merged.merge(block)
    assert merged.states[ESTIMATION].overall.tolist() == whole.states[ESTIMATION].overall.tolist()
    a = estimate_results(model, WINDOW, reference, merged)
    b = estimate_results(model, WINDOW, reference, whole)
    assert [(r.metric, r.feature, r.value) for r in a] == [(r.metric, r.feature, r.value) for r in b]


def test_too_few_rows_and_no_estimator_are_unknown(classifier: tuple[Any, Any]) -> None:
    model, reference = classifier
    small = profile_window(_classifier_rows(50, 7), reference, model)
    results = estimate_results(model, WINDOW, reference, small)
    assert {r.status for r in results} == {Status.UNKNOWN}
    assert "fewer than performance.estimation.min_rows=100" in results[0].details["reason"]
    unscored = _model(score_column=None)
    assert estimate_results(unscored, WINDOW, reference, small) == []


def _regression_rows(n: int, seed: int, heavy_share: float = 0.2) -> pd.DataFrame:
    """Errors are larger in the 'west' region: a shift of the mix towards it raises the MAE."""
    rng = np.random.default_rng(seed)
    region = np.where(rng.uniform(size=n) < heavy_share, "west", "east")
    income = rng.normal(50_000, 10_000, n)
    prediction = 20 + income / 10_000
    noise = np.where(region == "west", 6.0, 1.0)
    truth = prediction + rng.normal(0, noise)
    return pd.DataFrame(
        {
            "income": income,
            "age": rng.integers(18, 80, n).astype(float),
            "region": region,
            RESIDUAL: truth - prediction,  # as the extract adds it
            "prediction": prediction,
            "score": np.nan,
            "label": truth,
            "latency_ms": 10.0,
        }
    )


def test_regression_loss_model_follows_a_shift_towards_harder_rows() -> None:
    model = _model(task="regression", score_column=None)
    reference = fit_reference(_regression_rows(20_000, 8), model)
    assert "absolute_loss" in reference.fitted.estimator
    window = _regression_rows(3_000, 9, heavy_share=0.7)
    realised = compute_metrics("regression", window["label"], window["prediction"])
    window["label"] = window[RESIDUAL] = np.nan
    results = _by_metric(estimate_results(model, WINDOW, reference, profile_window(window, reference, model)))
    for metric in ("mae", "rmse"):
        result = results[(f"estimated_{metric}", None)]
        low, high = result.details["band"]
        assert low <= realised[metric] <= high, (metric, realised[metric], result.details["band"])
        assert result.status == Status.ALERT
        # The band holds the loss model's own error from the reference beside the window's sampling error.
        model_error, standard_error = result.details["model_error"], result.details["standard_error"]
        assert 0 < model_error < standard_error  # 20,000 reference rows against a 3,000-row window
        assert high - low == pytest.approx(2 * 1.959964 * np.hypot(standard_error, model_error), rel=1e-5)
    assert results[("estimated_segment_mae", "region")].details["segments_compared"] == 2


def test_realised_sits_beside_the_estimate_and_reaction_follows_config() -> None:
    start, end = WINDOW.start, WINDOW.end
    estimate = Result(
        model="loan",
        window_start=start,
        window_end=end,
        kind=Kind.PERFORMANCE,
        metric="estimated_accuracy",
        feature=None,
        value=0.7,
        threshold=0.6,
        status=Status.ALERT,
        details={"band": [0.65, 0.75]},
    )
    realised = Result(
        model="loan",
        window_start=start,
        window_end=end,
        kind=Kind.PERFORMANCE,
        metric="accuracy",
        feature=None,
        value=0.72,
        threshold=0.6,
        status=Status.OK,
        details={"labelled_rows": 200},
    )
    drift = Result(
        model="loan",
        window_start=start,
        window_end=end,
        kind=Kind.DATA_DRIFT,
        metric="psi",
        feature="income",
        value=0.3,
        threshold=0.25,
        status=Status.ALERT,
        details={},
    )
    attached = attach_realised([estimate, realised, drift])
    assert attached[0].details["realised"] == 0.72 and attached[0].details["within_band"] is True
    assert attached[0].details["labelled_rows"] == 200 and attached[1:] == [realised, drift]
    assert reacting(_model(), attached) == attached  # default: every estimate may react
    silent = _model(performance={"estimation": {"react": []}})
    assert reacting(silent, attached) == attached[1:]
    chosen = _model(performance={"estimation": {"react": ["accuracy"]}})
    assert reacting(chosen, attached) == attached


def test_only_models_that_run_the_estimate_fold_it_and_segments_stay_small(classifier: tuple[Any, Any]) -> None:
    model, reference = classifier
    window = _classifier_rows(1_000, 10)
    state = profile_window(window, reference, model).states[ESTIMATION]
    assert state.overall.shape == (2, 200)  # the calibrated score bins
    assert {cell.shape for cells in state.segments.values() for cell in cells.values()} == {(2, 20)}
    drift_only = _model(monitors=[{"name": "data_drift"}])
    assert profile_window(window, reference, drift_only).states == {}


def test_segment_estimates_sit_beside_the_realised_value_of_the_same_segment() -> None:
    start, end = WINDOW.start, WINDOW.end
    estimate = Result(
        model="loan",
        window_start=start,
        window_end=end,
        kind=Kind.PERFORMANCE,
        metric="estimated_segment_roc_auc",
        feature="region",
        value=0.70,
        threshold=0.6,
        status=Status.OK,
        details={
            "segment": "west",
            "band": [0.65, 0.75],
            "segments": [
                {"segment": "west", "rows": 90, "value": 0.70, "band": [0.65, 0.75]},
                {"segment": "north", "rows": 80, "value": 0.80, "band": [0.76, 0.84]},
                {"segment": "south", "rows": 40, "value": 0.78, "band": [0.70, 0.86]},
            ],
        },
    )
    # The realised monitor judged north the worst; south had too few labels to be compared.
    realised = Result(
        model="loan",
        window_start=start,
        window_end=end,
        kind=Kind.PERFORMANCE,
        metric="segment_roc_auc",
        feature="region",
        value=0.62,
        threshold=0.6,
        status=Status.WARNING,
        details={
            "segment": "north",
            "segment_values": {
                "north": {"value": 0.62, "labelled_rows": 80},
                "west": {"value": 0.71, "labelled_rows": 90},
            },
        },
    )
    other_feature = replace(realised, feature="income")
    attached = attach_realised([estimate, realised, other_feature])
    details = attached[0].details
    assert (details["realised"], details["labelled_rows"], details["within_band"]) == (0.71, 90, True)
    assert details["realised_worst_segment"] == "north" and details["realised_status"] == "warning"
    by_segment = {entry["segment"]: entry for entry in details["segments"]}
    assert (by_segment["north"]["realised"], by_segment["north"]["within_band"]) == (0.62, False)
    assert by_segment["south"]["realised"] is None and by_segment["south"]["within_band"] is None
    assert attached[1:] == [realised, other_feature]
    # Before the labels (no realised segment result) nothing is attached.
    assert attach_realised([estimate]) == [estimate]


def _three_class_rows(n: int, seed: int) -> pd.DataFrame:
    """Classes 0/1/2 from a softmax of income; the score is the probability of class 1 (the positive
    label), the prediction the most probable class, the label drawn from the probabilities."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50_000, 15_000, n)
    z = (income - 50_000) / 10_000
    logits = np.stack([-1.5 * z, 0.8 + 0.0 * z, 1.5 * z], axis=1)
    probability = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    label = (rng.uniform(size=(n, 1)) > probability.cumsum(axis=1)).sum(axis=1)
    return pd.DataFrame(
        {
            "income": income,
            "age": rng.integers(18, 80, n).astype(float),
            "region": rng.choice(["north", "south", "east"], n),
            "prediction": probability.argmax(axis=1).astype(float),
            "score": probability[:, 1],
            "label": label.astype(float),
            "latency_ms": rng.gamma(3, 10, n),
        }
    )


def test_multiclass_model_estimates_the_positive_class_one_vs_rest_and_not_accuracy() -> None:
    """Accuracy over three classes is not a function of the positive class's score: unknown, with the
    reason. Precision, recall and F1 of the positive class are, and follow scikit-learn's realised
    values (simulated labels, 5,000 rows)."""
    model = _model()
    reference = fit_reference(_three_class_rows(20_000, 21), model)
    window = _three_class_rows(5_000, 22)
    realised = compute_metrics("classification", window["label"], window["prediction"], window["score"], 1)
    window["label"] = np.nan
    results = _by_metric(estimate_results(model, WINDOW, reference, profile_window(window, reference, model)))
    accuracy = results[("estimated_accuracy", None)]
    assert accuracy.status == Status.UNKNOWN and accuracy.value is None and "3 classes" in accuracy.details["reason"]
    for metric in ("precision", "recall", "f1", "roc_auc"):
        result = results[(f"estimated_{metric}", None)]
        low, high = result.details["band"]
        assert low <= realised[metric] <= high, (metric, realised[metric], result.details["band"])
        assert result.status == Status.OK


def test_regression_design_counts_stream_and_an_older_state_keeps_the_sampling_band() -> None:
    """Blocks fold to the whole window's loss-model design counts; a state folded before they were kept
    (no ``design``) still gets its estimate, with the sampling error alone and ``model_error`` None."""
    model = _model(task="regression", score_column=None)
    reference = fit_reference(_regression_rows(5_000, 12), model)
    window = _regression_rows(1_000, 13, heavy_share=0.5)
    window["label"] = window[RESIDUAL] = np.nan
    whole = profile_window(window, reference, model)
    blocks = profile_window(window.iloc[:300], reference, model).merge(
        profile_window(window.iloc[300:], reference, model)
    )
    np.testing.assert_allclose(blocks.states[ESTIMATION].design, whole.states[ESTIMATION].design)
    streamed = _by_metric(estimate_results(model, WINDOW, reference, blocks))[("estimated_mae", None)]
    assert streamed.details["model_error"] > 0
    older = replace(whole, states={ESTIMATION: replace(whole.states[ESTIMATION], design=None)})
    result = _by_metric(estimate_results(model, WINDOW, reference, older))[("estimated_mae", None)]
    assert result.details["model_error"] is None and result.value == pytest.approx(streamed.value)
    low, high = result.details["band"]
    assert high - low == pytest.approx(2 * 1.959964 * result.details["standard_error"], rel=1e-5)
