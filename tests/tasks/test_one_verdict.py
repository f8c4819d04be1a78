"""One verdict per feature (#16): the primary statistic decides, the rest inform; one family per window."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from driftline.config.monitors import parse_config
from driftline.core.results import Status
from driftline.core.window import Window
from driftline.stats.model_profile import fit_model_profile, window_model_profile
from driftline.tasks.drift import evaluate_drift

WINDOW = Window(datetime(2026, 1, 8, tzinfo=UTC), datetime(2026, 1, 8, 1, tzinfo=UTC))


def model(**drift):
    return parse_config(
        {
            "models": [
                {
                    "name": "m",
                    "table": "t",
                    "timestamp_column": "ts",
                    "task": "regression",
                    "prediction_column": "p",
                    "features": {"numeric": ["x", "y"], "categorical": ["c"]},
                    "reference": {"start": "2026-01-01", "end": "2026-01-08"},
                    "drift": drift,
                }
            ]
        }
    ).models[0]


def frames(rng, n_ref, n_win, x_shift=0.0, c_weights=(0.5, 0.3, 0.2)):
    def draw(n, shift, weights):
        return pd.DataFrame(
            {
                "x": rng.normal(shift, 1, n),
                "y": rng.exponential(1, n),
                "c": rng.choice(np.array(["a", "b", "z"], dtype=object), n, p=list(weights)),
            }
        )

    return draw(n_ref, 0.0, (0.5, 0.3, 0.2)), draw(n_win, x_shift, c_weights)


def judged(config, ref_frame, win_frame):
    reference = fit_model_profile(ref_frame, ["x", "y"], ["c"])
    return evaluate_drift(config, WINDOW, reference, window_model_profile(win_frame, reference))


def test_only_the_primary_statistic_carries_a_verdict() -> None:
    rng = np.random.default_rng(1)
    results = judged(model(), *frames(rng, 50_000, 2_000, x_shift=0.5))
    x = {r.metric: r for r in results if r.feature == "x"}
    assert x["wasserstein"].details["primary"] and x["wasserstein"].status is Status.ALERT
    for name in ("ks", "psi", "jensen_shannon"):
        assert x[name].status is Status.OK and x[name].details["informational"], name
    assert x["ks"].details["informational_level"] == "alert"  # what it alone would have said, kept
    reason = x["wasserstein"].details["reason"]
    assert reason.startswith("x: Wasserstein 0.") and "(alert)" in reason and "2,000 rows vs 50,000 reference" in reason
    assert x["wasserstein"].details["warning"] == 0.1 and x["wasserstein"].details["alert"] == 0.2
    assert x["wasserstein"].details["alert_alpha"] == 0.001


def test_an_informational_metric_crossing_alone_raises_nothing() -> None:
    """Regression (#16): the demo's credit_lines alerted because one of four statistics crossed by a
    hair (Wasserstein 0.2032 vs 0.2, p 0.0097) while three were ok. A metric that is not the primary
    (here KS made to cross with a level of 0.0) never flags the feature."""
    rng = np.random.default_rng(2)
    config = model(thresholds={"ks": {"warning": 0.0, "alert": 0.0}})
    results = judged(config, *frames(rng, 20_000, 300))
    assert not [r for r in results if r.status in (Status.WARNING, Status.ALERT)]
    ks = [r for r in results if r.metric == "ks"]
    assert ks and all(r.details["informational_level"] in ("ok", "alert") for r in ks)


@pytest.mark.slow
def test_three_level_categorical_on_unchanged_data_rarely_warns() -> None:
    """Regression (#16): a 3-level column's chi-square warned in 2 of 48 calm 300-row hours."""
    rng = np.random.default_rng(3)
    config = model()
    reference = fit_model_profile(frames(rng, 50_000, 1)[0], ["x", "y"], ["c"])
    flagged = 0
    windows = 300
    for _ in range(windows):
        _, win = frames(rng, 1, 300)
        results = evaluate_drift(config, WINDOW, reference, window_model_profile(win, reference))
        flagged += any(r.status in (Status.WARNING, Status.ALERT) for r in results if r.feature)
    assert flagged / windows <= 0.02


def test_chi_square_reads_on_its_effect_scale_with_cramers_v_and_levels() -> None:
    rng = np.random.default_rng(4)
    results = judged(model(), *frames(rng, 50_000, 2_000, c_weights=(0.2, 0.3, 0.5)))
    (chi,) = [r for r in results if r.feature == "c" and r.metric == "chi_square"]
    assert chi.status is Status.ALERT and chi.threshold == 0.3
    assert chi.details["levels"] == 3 and 0 < chi.details["cramers_v"] < chi.details["cohens_w"]
    assert "chi-square effect w" in chi.details["reason"] and "Cramér's V" in chi.details["reason"]
    assert "over 3 levels" in chi.details["reason"]


def test_primary_can_be_configured() -> None:
    rng = np.random.default_rng(5)
    results = judged(model(primary={"numeric": "psi"}), *frames(rng, 20_000, 1_000, x_shift=1.0))
    x = {r.metric: r for r in results if r.feature == "x"}
    assert x["psi"].details["primary"] and not x["wasserstein"].details["primary"]
    assert x["psi"].status is Status.ALERT and x["wasserstein"].status is Status.OK
