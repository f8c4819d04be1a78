"""The bench's push-down profile (bench/pushdown.py, measured in bench/window_scale.py) equals the
client-side profile exactly: NULL/NaN/+-Infinity, integer and float categories, a joined label and the
regression residual."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bench.pushdown import pushdown_window_profile
from driftline.config.monitors import RESIDUAL, parse_config
from driftline.core.window import Window
from driftline.stats.profile import CategoricalProfile
from driftline.tasks.extract import read_rows
from driftline.tasks.profiles import fit_reference, profile_window
from tests.conftest import DAY, model_entry
from tests.tasks.test_streaming import ROWS, T0, assert_same_profile


def test_pushdown_profile_equals_the_whole_frames(engine: sa.Engine, awkward_log: dict[str, Any]) -> None:
    model = awkward_log["model"]
    window = Window(T0, T0 + timedelta(hours=1))
    frame = read_rows(engine, model, window.start, window.end)
    reference = fit_reference(frame, model)
    pushed = pushdown_window_profile(engine, model, window, reference)
    assert pushed is not None
    assert_same_profile(pushed, profile_window(frame, reference, model))
    grade = pushed.features["grade"]
    assert isinstance(grade, CategoricalProfile)
    assert set(grade.counts) == {"1", "2", "2.5", "inf", "-inf", "1e+20", "0.1", "-3", "1.5e-07", "12345.678"}
    # A shifted window on the same reference, and an empty one.
    later = Window(T0 + timedelta(minutes=30), T0 + timedelta(minutes=90))
    pushed_later = pushdown_window_profile(engine, model, later, reference)
    assert pushed_later is not None and 0 < pushed_later.row_count < ROWS
    assert_same_profile(
        pushed_later, profile_window(read_rows(engine, model, later.start, later.end), reference, model)
    )
    empty = Window(T0 - timedelta(hours=1), T0)
    pushed_empty = pushdown_window_profile(engine, model, empty, reference)
    whole_empty = profile_window(read_rows(engine, model, empty.start, empty.end), reference, model)
    assert pushed_empty is not None and pushed_empty.row_count == whole_empty.row_count == 0
    for name, feature in pushed_empty.features.items():
        assert feature.to_json() == whole_empty.features[name].to_json(), name


def test_pushdown_matches_on_a_labelled_classifier_and_a_regressor(engine: sa.Engine, loan_log: dict[str, Any]) -> None:
    """Float predictions and labels as categories (classifier), the derived residual (regressor)."""
    window = Window(DAY + timedelta(hours=14), DAY + timedelta(hours=15))
    for entry in (
        model_entry("loan", loan_log["table"]),
        model_entry("loan_reg", loan_log["table"], task="regression", score_column=None),
    ):
        model = parse_config({"models": [entry]}).models[0]
        reference = fit_reference(read_rows(engine, model, DAY - timedelta(hours=48), DAY), model)
        pushed = pushdown_window_profile(engine, model, window, reference)
        assert pushed is not None
        whole = profile_window(read_rows(engine, model, window.start, window.end), reference, model)
        assert pushed.row_count == whole.row_count == 200
        assert (RESIDUAL in pushed.features) == (model.task == "regression")
        for name, feature in pushed.features.items():
            theirs = whole.features[name]
            mine_json, their_json = feature.to_json(), theirs.to_json()
            for key in ("total", "total_sq"):
                assert mine_json.pop(key, 0.0) == pytest.approx(their_json.pop(key, 0.0), rel=1e-9, abs=1e-6)
            assert mine_json == their_json, (model.name, name)
