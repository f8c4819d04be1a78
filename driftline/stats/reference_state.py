"""What the built-in monitors fit on the reference besides its per-column profiles, typed; pure, no I/O.

A :class:`ReferenceState` is stored with the reference profile (``ModelProfile.fitted``, JSON key
``fitted``) and read by attribute: concept drift's :class:`~driftline.stats.concept.ScoreCalibration`,
performance's :class:`ReferencePerformance`, the estimator of ``performance_estimation``; in memory
only, the definition key the reference was stored under and, for a seasonal reference, its
:class:`SeasonalProvenance`. Users' monitors have one free-form slot of their own, ``user``.

References stored before this type (an untyped ``extras`` dict) load through
:meth:`ReferenceState.from_legacy_extras`: the built-ins' keys become these fields, any other key
goes to ``user`` so nothing stored is lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline.stats.concept import ScoreCalibration

#: The keys built-ins wrote into the old untyped ``extras`` dict.
_LEGACY_CALIBRATION, _LEGACY_PERFORMANCE, _LEGACY_ESTIMATOR = "calibration", "performance", "estimation"
#: In-memory keys of the old dict, never meant to be stored (dropped if found).
_LEGACY_IN_MEMORY = frozenset({"_definition", "seasonal"})


@dataclass(frozen=True)
class ReferencePerformance:
    """The reference's realised performance on its labelled rows (``tasks/performance.py::
    reference_performance``): the overall ``metrics`` (undefined ones ``None``), the ``sampling`` the
    overall tests need (counts and standard deviations; empty before version 2, read as exact), and
    per feature its segments' ``segment_metric`` with what their variance needs."""

    version: int
    task: str | None
    label_column: str | None = None
    positive_label: Any = None
    rows: int = 0
    labelled_rows: int = 0
    label_coverage: float | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    sampling: dict[str, Any] = field(default_factory=dict)
    segment_metric: str | None = None
    min_segment_labels: int | None = None
    #: ``{feature: {"column_kind": ..., "segments": {name: {"rows", "labelled_rows", "value", ...}}}}``.
    segments: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "task": self.task,
            "label_column": self.label_column,
            "positive_label": self.positive_label,
            "rows": self.rows,
            "labelled_rows": self.labelled_rows,
            "label_coverage": self.label_coverage,
            "metrics": dict(self.metrics),
            "sampling": dict(self.sampling),
            "segment_metric": self.segment_metric,
            "min_segment_labels": self.min_segment_labels,
            "segments": dict(self.segments),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReferencePerformance:
        """Any stored version: keys a version lacks take their defaults (version 1 had no ``sampling``)."""
        coverage = data.get("label_coverage")
        minimum = data.get("min_segment_labels")
        return cls(
            version=int(data.get("version") or 1),
            task=data.get("task"),
            label_column=data.get("label_column"),
            positive_label=data.get("positive_label"),
            rows=int(data.get("rows") or 0),
            labelled_rows=int(data.get("labelled_rows") or 0),
            label_coverage=None if coverage is None else float(coverage),
            metrics=dict(data.get("metrics") or {}),
            sampling=dict(data.get("sampling") or {}),
            segment_metric=data.get("segment_metric"),
            min_segment_labels=None if minimum is None else int(minimum),
            segments=dict(data.get("segments") or {}),
        )

    @classmethod
    def coerce(cls, value: ReferencePerformance | Mapping[str, Any] | None) -> ReferencePerformance | None:
        """The typed form of a caller's reference performance (its JSON form is accepted too)."""
        if value is None or isinstance(value, ReferencePerformance):
            return value
        return cls.from_json(value)


@dataclass(frozen=True)
class SeasonalProvenance:
    """Where a seasonal reference came from: the same hour ``every`` day/week over the ``last`` N,
    the stored ``hours`` and ``rows`` merged, and whether they were ``used`` (enough rows) or the
    fitted reference stood in. In memory only; written into drift results' ``details``."""

    every: str
    last: int
    hours: int
    rows: int
    used: bool

    def as_details(self) -> dict[str, Any]:
        return {"every": self.every, "last": self.last, "hours": self.hours, "rows": self.rows, "used": self.used}


@dataclass(frozen=True)
class ReferenceState:
    """Everything fitted on the reference beyond per-column profiles, one typed field per built-in.

    Empty for window profiles. ``definition`` and ``seasonal`` are in memory only (never stored).
    """

    #: Concept drift (label rate per score bin) and the performance calibration test; classifiers with
    #: a score and a label only.
    calibration: ScoreCalibration | None = None
    #: The realised performance monitor's reference; models with a label only.
    performance: ReferencePerformance | None = None
    #: ``performance_estimation``'s fitted estimator: its own versioned JSON form
    #: (``tasks/estimation.py``, ``ESTIMATOR_VERSION``); None when the model cannot have one.
    estimator: dict[str, Any] | None = None
    #: The one free-form slot, for users' monitors only (JSON-ready values, stored with the reference).
    #: Built-ins never read or write it.
    user: dict[str, Any] = field(default_factory=dict)
    #: In memory: the reference definition hash the profile was stored under (window profiles are keyed by it).
    definition: str | None = None
    #: In memory: set on a seasonal reference (``tasks/profiles.py::seasonal_reference``).
    seasonal: SeasonalProvenance | None = None

    def is_empty(self) -> bool:
        """Nothing that is stored (the in-memory fields aside)."""
        return self.calibration is None and self.performance is None and self.estimator is None and not self.user

    def to_json(self) -> dict[str, Any]:
        """The stored form: only the stored fields that are set."""
        data: dict[str, Any] = {}
        if self.calibration is not None:
            data["calibration"] = self.calibration.to_json()
        if self.performance is not None:
            data["performance"] = self.performance.to_json()
        if self.estimator is not None:
            data["estimator"] = dict(self.estimator)
        if self.user:
            data["user"] = dict(self.user)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReferenceState:
        calibration, performance = data.get("calibration"), data.get("performance")
        return cls(
            calibration=None if calibration is None else ScoreCalibration.from_json(calibration),
            performance=None if performance is None else ReferencePerformance.from_json(performance),
            estimator=data.get("estimator"),
            user=dict(data.get("user") or {}),
        )

    @classmethod
    def from_legacy_extras(cls, extras: Mapping[str, Any]) -> ReferenceState:
        """A reference stored with the old untyped ``extras`` dict: ``calibration``, ``performance`` and
        ``estimation`` become typed fields; in-memory keys are dropped; any other key is kept in ``user``."""
        known = {_LEGACY_CALIBRATION, _LEGACY_PERFORMANCE, _LEGACY_ESTIMATOR} | _LEGACY_IN_MEMORY
        return cls.from_json(
            {
                "calibration": extras.get(_LEGACY_CALIBRATION),
                "performance": extras.get(_LEGACY_PERFORMANCE),
                "estimator": extras.get(_LEGACY_ESTIMATOR) or None,
                "user": {k: v for k, v in extras.items() if k not in known},
            }
        )

    def legacy_extras(self) -> dict[str, Any]:
        """The old ``extras`` dict's shape, for users' monitors written against it (read-only view)."""
        data: dict[str, Any] = dict(self.user)
        if self.calibration is not None:
            data[_LEGACY_CALIBRATION] = self.calibration.to_json()
        if self.performance is not None:
            data[_LEGACY_PERFORMANCE] = self.performance.to_json()
        if self.estimator is not None:
            data[_LEGACY_ESTIMATOR] = dict(self.estimator)
        if self.seasonal is not None:
            data["seasonal"] = self.seasonal.as_details()
        return data
