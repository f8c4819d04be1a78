"""Operational health of a window (volume for now)."""

from __future__ import annotations

from prefect import task

from driftline.config import ModelConfig
from driftline.results import Kind, Result, Status
from driftline.tasks._prefect import PURE
from driftline.window import Window


def evaluate_volume(model: ModelConfig, window: Window, row_count: int) -> list[Result]:
    """``row_count``: alert on an empty window, warning below ``drift.min_rows`` (too few to judge drift)."""
    if row_count == 0:
        status, reason = Status.ALERT, "no rows logged in this window"
    elif row_count < model.drift.min_rows:
        status, reason = Status.WARNING, f"fewer rows than min_rows={model.drift.min_rows}"
    else:
        status, reason = Status.OK, None
    details = {"reason": reason} if reason else {}
    return [
        Result(
            model.name,
            window.start,
            window.end,
            Kind.OPERATIONAL,
            "row_count",
            None,
            float(row_count),
            float(model.drift.min_rows),
            status,
            details,
        )
    ]


evaluate_volume_task = task(evaluate_volume, name="evaluate-volume", **PURE)
