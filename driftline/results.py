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


#: For a summary verdict, ``unknown`` ranks lowest: a window whose checks are ok except a few that
#: could not be judged (too few labels in a segment, say) is ``ok``; only if *nothing* could be
#: judged is it ``unknown``. The individual rows keep their own status.
STATUS_SEVERITY = {Status.UNKNOWN: 0, Status.OK: 1, Status.WARNING: 2, Status.ALERT: 3}


def worst(statuses: list[Status]) -> Status:
    """The most severe status (alert > warning > ok > unknown); ``ok`` for an empty list."""
    return max(statuses, key=STATUS_SEVERITY.__getitem__, default=Status.OK)


def finite_or_none(value: float | None) -> float | None:
    """NaN and infinities are not JSON; store them as NULL and keep the reason in details."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class Result:
    """One verdict for one (model, window, kind, metric, feature)."""

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
