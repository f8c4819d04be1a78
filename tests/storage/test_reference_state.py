"""The typed reference state: fitted, stored in PostgreSQL, loaded back equal; references stored in
the old untyped ``extras`` shape still load, into the same typed fields, and judge windows the same."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from driftline.config.monitors import RESIDUAL, ModelConfig, parse_config
from driftline.core.window import Window
from driftline.stats.concept import ScoreCalibration
from driftline.stats.model_profile import ModelProfile
from driftline.stats.reference_state import ReferencePerformance, ReferenceState, SeasonalProvenance
from driftline.storage.profiles import PROFILES, load_reference, store_reference
from driftline.storage.results import json_safe
from driftline.tasks.concept import evaluate_concept
from driftline.tasks.context import WindowContext
from driftline.tasks.estimation import estimate_results
from driftline.tasks.performance import evaluate_performance
from driftline.tasks.profiles import fit_reference, profile_window
from tests.conftest import model_entry, synthetic_rows

T0 = datetime(2026, 6, 1, tzinfo=UTC)
SPAN = Window(T0, T0 + timedelta(hours=6))
WINDOW = Window(T0 + timedelta(hours=6), T0 + timedelta(hours=7))
ROOT = Path(__file__).resolve().parents[2]


def _model(**overrides: Any) -> ModelConfig:
    entry = model_entry("typed", "unused.table", performance={"min_labels": 50}, **overrides)
    return parse_config({"models": [entry]}).models[0]


def _frame(start: datetime, hours: int, seed: int, income_shift: float = 0.0) -> pd.DataFrame:
    frame = pd.DataFrame(synthetic_rows(np.random.default_rng(seed), start, hours, 400, income_shift))
    frame[RESIDUAL] = frame["label"] - frame["prediction"]  # as the extract adds it for a regressor
    return frame


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_fit_store_load_gives_the_same_typed_state(store: sa.Engine, task: str) -> None:
    overrides: dict[str, Any] = {} if task == "classification" else {"task": "regression", "score_column": None}
    model = _model(**overrides)
    fitted = fit_reference(_frame(T0, 6, 1), model)
    state = fitted.fitted
    # Every built-in's state is there, typed.
    assert isinstance(state.performance, ReferencePerformance) and state.performance.task == task
    assert state.performance.labelled_rows == 2400 and state.performance.metrics
    assert state.estimator is not None and state.estimator["task"] == task
    if task == "classification":
        assert isinstance(state.calibration, ScoreCalibration) and sum(state.calibration.counts) == 2400
    else:
        assert state.calibration is None
    assert state.user == {} and state.definition is None and state.seasonal is None

    loaded = store_reference(store, "typed", "def-1", SPAN, fitted)
    assert loaded.fitted == json_round_trip(state)
    assert loaded.features.keys() == fitted.features.keys() and loaded.row_count == fitted.row_count
    # Stored under the typed key, not the old bag.
    with store.connect() as connection:
        raw = connection.execute(sa.select(PROFILES.c.profile).where(PROFILES.c.definition == "def-1")).scalar_one()
    assert "extras" not in raw and set(raw["fitted"]) == {"performance", "estimator"} | (
        {"calibration"} if task == "classification" else set()
    )


def json_round_trip(state: ReferenceState) -> ReferenceState:
    """What the store keeps of a state: its JSON, as PostgreSQL's jsonb returns it."""
    return ReferenceState.from_json(json.loads(json.dumps(json_safe(state.to_json()))))


def test_a_reference_stored_in_the_old_extras_shape_loads_typed_and_judges_the_same(store: sa.Engine) -> None:
    model = _model()
    fitted = fit_reference(_frame(T0, 6, 2), model)
    state = fitted.fitted
    assert state.calibration is not None and state.performance is not None and state.estimator is not None
    # The shape every reference was stored in before the typed state: one untyped dict.
    old_shape = {
        "row_count": fitted.row_count,
        "features": {name: profile.to_json() for name, profile in fitted.features.items()},
        "extras": {
            "calibration": state.calibration.to_json(),
            "performance": state.performance.to_json(),
            "estimation": dict(state.estimator),
            "team_notes": {"owner": "risk"},  # a key no built-in wrote: kept, in the users' slot
        },
    }
    with store.begin() as connection:
        connection.execute(
            sa.insert(PROFILES).values(
                model="typed",
                definition="old",
                reference_start=SPAN.start,
                reference_end=SPAN.end,
                row_count=fitted.row_count,
                profile=json_safe(old_shape),
            )
        )
    old = load_reference(store, "typed", "old")
    assert old is not None
    assert old.fitted.calibration == state.calibration
    assert old.fitted.performance == json_round_trip(state).performance
    assert old.fitted.estimator == json_round_trip(state).estimator
    assert old.fitted.user == {"team_notes": {"owner": "risk"}}

    new = store_reference(store, "typed", "new", SPAN, fitted)
    frame = _frame(WINDOW.start, 1, 3, income_shift=15_000)
    results = []
    for reference in (old, new):
        current = profile_window(frame, reference, model, WINDOW)
        context = WindowContext(model, WINDOW, frame, reference, current)
        records = evaluate_performance(context, reference.fitted.performance) + evaluate_concept(context)
        records += estimate_results(model, WINDOW, reference, current)
        results.append(sorted((r.metric, str(r.feature), r.status, r.value) for r in records))
    assert results[0] == results[1]
    assert any(metric == "label_rate_by_score" for metric, *_ in results[0])
    assert any(metric.startswith("estimated_") and value is not None for metric, _, _, value in results[0])


def test_the_deprecated_extras_view_warns_and_keeps_the_old_shape() -> None:
    calibration = ScoreCalibration((0.5,), (10, 12), (3, 9))
    profile = ModelProfile(
        22,
        fitted=ReferenceState(
            calibration=calibration,
            user={"mine": [1, 2]},
            seasonal=SeasonalProvenance("day", 7, 3, 600, True),
        ),
    )
    with pytest.warns(DeprecationWarning, match="fitted"):
        extras = profile.extras
    assert extras == {
        "mine": [1, 2],
        "calibration": {"edges": [0.5], "counts": [10, 12], "positives": [3, 9]},
        "seasonal": {"every": "day", "last": 7, "hours": 3, "rows": 600, "used": True},
    }
    # In-memory fields are never stored; a window profile stores no fitted state at all.
    stored = ModelProfile.from_json(json.loads(json.dumps(profile.to_json())))
    assert stored.fitted == ReferenceState(calibration=calibration, user={"mine": [1, 2]})
    assert "fitted" not in ModelProfile(5).to_json()
    with pytest.raises(ValueError, match="definition"):
        profile.stored_definition()


def test_no_built_in_reads_the_untyped_extras() -> None:
    """Built-ins read ``fitted``'s typed fields; ``.extras`` is left for users' monitors only."""
    offenders = []
    for folder in ("driftline", "tasks", "checks", "flows", "deployments"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and node.attr == "extras":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
