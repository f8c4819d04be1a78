"""The result record: the narrow row every monitor produces and every consumer reads.

Public contract (extend, never break): ``model, window_start, window_end, kind, metric, feature,
value, threshold, status, details``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    DATA_DRIFT = "data_drift"
    CONCEPT_DRIFT = "concept_drift"
    PERFORMANCE = "performance"
    DATA_QUALITY = "data_quality"
    OPERATIONAL = "operational"


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ALERT = "alert"
    UNKNOWN = "unknown"


#: Severity for combining the metrics of one check (a feature's KS, PSI, ...) and for notification
#: levels: ``unknown`` ranks lowest, so one metric that cannot be computed does not mask the others.
STATUS_SEVERITY = {Status.UNKNOWN: 0, Status.OK: 1, Status.WARNING: 2, Status.ALERT: 3}

#: The rank of a *window's* verdict: alert > warning > unknown > ok. A window is ``ok`` only when every
#: check it could judge now was ``ok``; a check that could not be judged (no finite score, too few rows,
#: a statistic that is not finite, a monitor that raised) makes it ``unknown`` unless something is a
#: warning or an alert. Before, ``unknown`` ranked below ``ok`` and a model scoring +inf everywhere
#: was summarised as ``ok`` (#19). See :func:`window_verdict` for the rows that wait for labels.
WINDOW_RANK = {Status.OK: 0, Status.UNKNOWN: 1, Status.WARNING: 2, Status.ALERT: 3}

#: Concept-drift targets that need labels (``details.target``).
_LABEL_TARGETS = frozenset({"label", "residual", "relation"})


def awaits_labels(result: Result) -> bool:
    """Whether an ``unknown`` of this row only means "the labels are not in yet": performance rows
    (segments included) and label, residual and label-rate concept rows. Labels arrive late by design
    and the late-label refresh judges these rows again. A monitor that raised never counts as waiting."""
    if result.metric.startswith("monitor:"):
        return False
    if result.kind == Kind.PERFORMANCE:
        return True
    return result.kind == Kind.CONCEPT_DRIFT and result.details.get("target") in _LABEL_TARGETS


def worst(statuses: list[Status]) -> Status:
    """The most severe status (alert > warning > ok > unknown); ``ok`` for an empty list.

    For the metrics of one check. A window's overall verdict is :func:`window_verdict`."""
    return max(statuses, key=STATUS_SEVERITY.__getitem__, default=Status.OK)


def window_verdict(results: list[Result]) -> Status:
    """A window's overall verdict: alert > warning > unknown > ok (:data:`WINDOW_RANK`); ``ok`` for none.

    An ``unknown`` that only waits for labels (:func:`awaits_labels`) does not make the window
    ``unknown`` — or every hour would be, until its labels arrive. Everything else does."""
    counted = [r.status for r in results if not (r.status == Status.UNKNOWN and awaits_labels(r))]
    if not counted and results:
        return Status.UNKNOWN  # nothing but label-waiting rows: nothing was judged
    return max(counted, key=WINDOW_RANK.__getitem__, default=Status.OK)


def finite_or_none(value: float | None) -> float | None:
    """NaN and infinities are not JSON; store them as NULL and keep the reason in details."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True, kw_only=True)
class Result:
    """One verdict for one (model, window, kind, metric, feature).

    Built with keyword arguments only (``Result(model=..., window_start=..., ...)``), or inside a
    monitor with :meth:`WindowContext.result <driftline.tasks.context.WindowContext.result>`, which
    fills in the model and window: ten positional values are too easy to swap.
    """

    model: str
    window_start: datetime
    window_end: datetime
    kind: Kind
    metric: str
    feature: str | None
    value: float | None
    threshold: float | None
    status: Status
    details: dict[str, Any] = field(default_factory=dict)
    #: ``hour`` for the hourly windows; ``day``/``week`` for windows merged from hourly profiles.
    resolution: str = "hour"

    def as_record(self) -> dict[str, Any]:
        """The JSON record of ``driftline results --format json``."""
        return {
            "model": self.model,
            "window_start": self.window_start.isoformat().replace("+00:00", "Z"),
            "window_end": self.window_end.isoformat().replace("+00:00", "Z"),
            "kind": str(self.kind),
            "metric": self.metric,
            "feature": self.feature,
            "value": finite_or_none(self.value),
            "threshold": finite_or_none(self.threshold),
            "status": str(self.status),
            "details": self.details,
            "resolution": self.resolution,
        }
