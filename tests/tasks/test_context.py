"""WindowContext.result: keyword arguments, and the positional form users' monitors were shown."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from driftline.config.monitors import parse_config
from driftline.core.results import Kind, Result, Status
from driftline.core.window import Window
from driftline.stats.model_profile import ModelProfile
from driftline.tasks.context import WindowContext
from tests.conftest import model_entry

WINDOW = Window(datetime(2026, 1, 8, tzinfo=UTC), datetime(2026, 1, 8, 1, tzinfo=UTC))


def _context() -> WindowContext:
    model = parse_config({"models": [model_entry("loan", "t")]}).models[0]
    return WindowContext(model, WINDOW, pd.DataFrame(), None, ModelProfile(features={}, row_count=0))


EXPECTED = Result(
    model="loan",
    window_start=WINDOW.start,
    window_end=WINDOW.end,
    kind=Kind.DATA_QUALITY,
    metric="m",
    feature="income",
    value=0.42,
    threshold=0.5,
    status=Status.OK,
    details={"why": "x"},
)


def test_keywords_build_the_record_of_the_context_model_and_window() -> None:
    built = _context().result(
        kind=Kind.DATA_QUALITY,
        metric="m",
        feature="income",
        value=0.42,
        threshold=0.5,
        status=Status.OK,
        details={"why": "x"},
    )
    assert built == EXPECTED


def test_the_documented_positional_form_still_works_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="by keyword"):
        built = _context().result(Kind.DATA_QUALITY, "m", "income", 0.42, 0.5, Status.OK, {"why": "x"})
    assert built == EXPECTED


def test_mixed_or_incomplete_calls_are_type_errors() -> None:
    context = _context()
    with pytest.raises(TypeError, match="not both"):
        context.result(Kind.DATA_QUALITY, "m", status=Status.OK)
    with pytest.raises(TypeError, match="needs kind, metric and status"):
        context.result(kind=Kind.DATA_QUALITY, metric="m")
