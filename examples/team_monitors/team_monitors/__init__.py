"""Example Driftline monitors (docs/monitors.md): one reads the window's rows, one only its profile.

``positive_rate`` is registered by dotted path (``path: team_monitors:positive_rate``);
``NullBudget`` by the entry point this package declares (``entry_point: null_budget``).
"""

from __future__ import annotations

from driftline.core.results import Kind, Result, Status
from driftline.tasks.context import WindowContext


def positive_rate(context: WindowContext) -> list[Result]:
    """Share of rows predicted positive (prediction >= ``cutoff``), alert outside ``[low, high]``.

    Reads ``context.frame``: the window's rows are loaded for it. An empty window is ``unknown``.
    """
    low = float(context.parameters.get("low", 0.05))
    high = float(context.parameters.get("high", 0.95))
    cutoff = float(context.parameters.get("cutoff", 0.5))
    predictions = context.frame[context.model.prediction_column].astype(float).dropna()
    if predictions.empty:
        return [
            context.result(
                kind=Kind.DATA_QUALITY,
                metric="positive_rate",
                feature=None,
                value=None,
                threshold=None,
                status=Status.UNKNOWN,
                details={"reason": "no predictions"},
            )
        ]
    rate = float((predictions >= cutoff).mean())
    status = Status.OK if low <= rate <= high else Status.ALERT
    threshold = low if rate < low else high
    details = {"low": low, "high": high, "cutoff": cutoff, "rows": int(predictions.size)}
    return [
        context.result(
            kind=Kind.DATA_QUALITY,
            metric="positive_rate",
            feature=None,
            value=rate,
            threshold=threshold,
            status=status,
            details=details,
        )
    ]


class NullBudget:
    """Share of NULLs per feature against a budget, from the window's profile alone.

    ``reads_rows = False`` promises Driftline this monitor never touches ``context.frame``: when every
    monitor of a model says so, the window is profiled as it streams and never held in memory.
    """

    kind = Kind.DATA_QUALITY
    reads_rows = False

    def __init__(self, budget: float = 0.05) -> None:
        self.budget = budget

    def __call__(self, context: WindowContext) -> list[Result]:
        rows = context.current.row_count
        results = []
        for feature, _ in context.model.features.items():
            profile = context.current.features.get(feature)
            if profile is None or rows == 0:
                results.append(
                    context.result(
                        kind=self.kind,
                        metric="null_share",
                        feature=feature,
                        value=None,
                        threshold=self.budget,
                        status=Status.UNKNOWN,
                        details={"reason": "no profile"},
                    )
                )
                continue
            share = profile.nulls / rows
            status = Status.ALERT if share > self.budget else Status.OK
            results.append(
                context.result(
                    kind=self.kind,
                    metric="null_share",
                    feature=feature,
                    value=share,
                    threshold=self.budget,
                    status=status,
                    details={"rows": rows},
                )
            )
        return results
