"""Validity of the values themselves: numbers that are not numbers, scores that are not probabilities.

Rows (kind ``data_quality``), every hour:

* ``non_numeric_share`` — per numeric feature and numeric target: the share of the window's rows
  whose value is text that does not parse as a number (``"n/a"``, ``""``, ``"12,5"``). Before, such
  values became NaN without a trace and drift was judged on the rest.
* ``non_finite_share`` — per score and numeric prediction: the share of rows that are ±inf; with no
  finite value at all (every row ±inf, NaN, NULL or text) the row is an ``alert`` whatever the share.
* ``out_of_range_share`` — a classifier's score: the share of its finite values outside [0, 1].

Levels: ``ok`` at 0, ``warning`` above 0, ``alert`` from :data:`ALERT_SHARE` (1%). The data-drift and
concept-drift rows of a column with at least that share of text are ``unknown`` with the reason
(:func:`unparsed_reasons`): drift is never judged silently on the values that happened to parse.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from driftline.config.monitors import ModelConfig
from driftline.core.results import Kind, Result, Status
from driftline.stats.checks import ScoreRangeState
from driftline.stats.model_profile import ModelProfile, numeric_values
from driftline.stats.profile import NumericProfile
from driftline.stats.verdict import Threshold
from driftline.tasks.context import WindowContext

#: A share at or above this is an alert; any share above 0 is a warning.
ALERT_SHARE = 0.01


#: Warning from the smallest positive share on (``share > 0``), alert from :data:`ALERT_SHARE`.
SHARE_LEVELS = Threshold(math.nextafter(0.0, 1.0), ALERT_SHARE, None)


def share_status(share: float) -> Status:
    return SHARE_LEVELS.judge(share)


def _percent(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 else f"{share:.2%}"


def unparsed_reasons(current: ModelProfile, columns: list[str]) -> dict[str, str]:
    """Why a column's drift is not judged: at least :data:`ALERT_SHARE` of its values are not numbers."""
    reasons = {}
    for column in columns:
        profile = current.features.get(column)
        if not isinstance(profile, NumericProfile) or not profile.unparsed or not current.row_count:
            continue
        share = profile.unparsed / current.row_count
        if share >= ALERT_SHARE:
            reasons[column] = (
                f"{_percent(share)} of the window's values ({profile.unparsed} of {current.row_count}) are not "
                "numbers; drift is not judged on the rest (see data_quality non_numeric_share)"
            )
    return reasons


def _targets(model_config: ModelConfig) -> list[str]:
    """Columns a model emits whose values must be finite numbers: the score, a regressor's prediction."""
    columns = [model_config.score_column] if model_config.score_column else []
    if model_config.task == "regression":
        columns.append(model_config.prediction_column)
    return columns


def evaluate_validity(context: WindowContext) -> list[Result]:
    """The rows described in the module docstring; a window without rows gives ``unknown`` with the reason."""
    model, current = context.model, context.current
    rows = current.row_count
    numeric = [c for c, kind in model.features.items() + model.target_columns() if kind == "numeric"]
    results: list[Result] = []

    def add(metric: str, column: str, share: float | None, status: Status, details: dict[str, Any]) -> None:
        base = {"warning": 0.0, "alert": ALERT_SHARE, "rows": rows}
        results.append(
            context.result(
                kind=Kind.DATA_QUALITY,
                metric=metric,
                feature=column,
                value=share,
                threshold=ALERT_SHARE,
                status=status,
                details=base | details,
            )
        )

    for column in numeric:
        profile = current.features.get(column)
        if not rows or not isinstance(profile, NumericProfile):
            add("non_numeric_share", column, None, Status.UNKNOWN, {"reason": _no_values(rows)})
            continue
        share = profile.unparsed / rows
        details: dict[str, Any] = {"unparsed_values": profile.unparsed}
        if profile.unparsed:
            details["reason"] = f"{_percent(share)} of the values ({profile.unparsed} of {rows}) are not numbers"
        add("non_numeric_share", column, share, share_status(share), details)

    for column in _targets(model):
        profile = current.features.get(column)
        if not rows or not isinstance(profile, NumericProfile):
            add("non_finite_share", column, None, Status.UNKNOWN, {"reason": _no_values(rows)})
            continue
        infinite = profile.pos_inf + profile.neg_inf
        share = infinite / rows
        details = {
            "pos_inf": profile.pos_inf,
            "neg_inf": profile.neg_inf,
            "null_or_nan": profile.nulls,
            "unparsed_values": profile.unparsed,
            "finite_values": profile.n,
        }
        status = share_status(share)
        if profile.n == 0:
            status = Status.ALERT
            details["reason"] = f"no finite value in {rows} rows (±inf, NaN, NULL or text)"
        elif infinite:
            details["reason"] = f"{_percent(share)} of the rows ({infinite} of {rows}) are ±inf"
        add("non_finite_share", column, share, status, details)

    if model.task == "classification" and model.score_column:
        results.append(_score_range(context))
    return results


#: Key of the window's score-range state in ``ModelProfile.states``.
SCORE_RANGE_STATE = "score_range"


def score_range_state(frame: Any, model: ModelConfig) -> ScoreRangeState:
    """The score-range state of some rows of a window (a block or all of them)."""
    score = model.score_column
    return ScoreRangeState.of(numeric_values(frame[score]) if score and score in frame else np.empty(0))


def _score_range(context: WindowContext) -> Result:
    """Share of the finite scores outside [0, 1] (a classifier's score is a probability)."""
    score = context.model.score_column
    assert score is not None
    base: dict[str, Any] = {"warning": 0.0, "alert": ALERT_SHARE, "range": [0.0, 1.0]}
    state = context.current.states.get(SCORE_RANGE_STATE) if isinstance(context.current, ModelProfile) else None
    if not isinstance(state, ScoreRangeState):
        # Not folded with the window's profile (a caller's own context): count on the frame now.
        state = score_range_state(context.frame, context.model)
    if state.finite == 0:
        reason = "no finite score in this window" if state.rows else "no rows in this window"
        return context.result(
            kind=Kind.DATA_QUALITY,
            metric="out_of_range_share",
            feature=score,
            value=None,
            threshold=ALERT_SHARE,
            status=Status.UNKNOWN,
            details=base | {"reason": reason},
        )
    outside = state.outside
    share = outside / state.finite
    details = base | {
        "outside": outside,
        "finite_values": state.finite,
        "minimum": state.minimum,
        "maximum": state.maximum,
    }
    if outside:
        details["reason"] = f"{_percent(share)} of the scores ({outside} of {state.finite}) are outside [0, 1]"
    return context.result(
        kind=Kind.DATA_QUALITY,
        metric="out_of_range_share",
        feature=score,
        value=share,
        threshold=ALERT_SHARE,
        status=share_status(share),
        details=details,
    )


def _no_values(rows: int) -> str:
    return "no rows in this window" if not rows else "column is not in the reference profile"
