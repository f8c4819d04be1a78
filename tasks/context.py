"""The window context every monitor receives, and the monitor contract.

A monitor is a callable ``monitor(context) -> list[Result]``. It may read ``context.frame`` (the
window's rows, read on first access and kept), the reference and window profiles, and the engines;
it must not write. A monitor that declares ``reads_rows = False`` promises to work from the profiles
alone: when every monitor of a model does, the window is profiled block by block as it streams in
and never held in memory whole.
A monitor that raises is recorded as an ``unknown`` result of its kind carrying the error; the
window still completes.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd
from sqlalchemy.engine import Engine

from driftline.config.monitors import ModelConfig
from driftline.core.results import Kind, Result, Status
from driftline.core.window import Window
from driftline.stats.model_profile import ModelProfile


class WindowRows:
    """The window's rows, read on first use and then kept (monitors may ask from several threads).

    Built from a DataFrame already in hand, or from a zero-argument loader that reads it.
    """

    def __init__(self, source: pd.DataFrame | Callable[[], pd.DataFrame]) -> None:
        self._frame = source if isinstance(source, pd.DataFrame) else None
        self._load = None if isinstance(source, pd.DataFrame) else source
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._frame is not None

    def get(self) -> pd.DataFrame:
        if self._frame is None:
            with self._lock:
                if self._frame is None:
                    assert self._load is not None
                    self._frame = self._load()
        return self._frame


@dataclass(init=False)
class WindowContext:
    """What a monitor gets for one (model, window).

    ``frame`` is the window's rows (every configured column), read from the database the first time
    a monitor touches it; monitors that work from the profiles (``reference``, ``current``) never
    cause the read. ``current.row_count`` is the window's row count without it.
    """

    model: ModelConfig
    window: Window
    reference: ModelProfile | None
    current: ModelProfile
    data_engine: Engine | None
    results_engine: Engine | None
    parameters: dict[str, Any]
    logger: logging.Logger | logging.LoggerAdapter[Any]
    rows: WindowRows
    reference_version: Any
    reference_reason: str | None

    def __init__(
        self,
        model: ModelConfig,
        window: Window,
        frame: pd.DataFrame | Callable[[], pd.DataFrame] | WindowRows,
        reference: ModelProfile | None,
        current: ModelProfile,
        data_engine: Engine | None = None,
        results_engine: Engine | None = None,
        parameters: dict[str, Any] | None = None,
        logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        *,
        reference_version: Any = None,
        reference_reason: str | None = None,
    ) -> None:
        self.model = model
        self.window = window
        self.rows = frame if isinstance(frame, WindowRows) else WindowRows(frame)
        self.reference = reference
        self.current = current
        self.data_engine = data_engine
        self.results_engine = results_engine
        self.parameters = dict(parameters or {})
        self.logger = logger if logger is not None else logging.getLogger("driftline")
        #: The resolved reference version (``driftline.tasks.references.ReferenceVersion``), if any.
        self.reference_version = reference_version
        #: Why there is no usable reference (warm-up, too few rows, ...): the reason of its ``unknown`` verdicts.
        self.reference_reason = reference_reason

    @property
    def frame(self) -> pd.DataFrame:
        """The window's rows, read on first access."""
        return self.rows.get()

    def with_parameters(self, parameters: dict[str, Any]) -> WindowContext:
        """The same window (and the same rows, read at most once) with one monitor's parameters."""
        return WindowContext(
            self.model,
            self.window,
            self.rows,
            self.reference,
            self.current,
            self.data_engine,
            self.results_engine,
            parameters,
            self.logger,
            reference_version=self.reference_version,
            reference_reason=self.reference_reason,
        )

    def result(
        self,
        *legacy: Any,
        kind: Kind | None = None,
        metric: str | None = None,
        feature: str | None = None,
        value: float | None = None,
        threshold: float | None = None,
        status: Status | None = None,
        details: dict[str, Any] | None = None,
    ) -> Result:
        """The :class:`Result` of this context's model and window: ``context.result(kind=..., metric=...,
        feature=..., value=..., threshold=..., status=..., details=...)``.

        The positional form ``result(kind, metric, feature, value, threshold, status[, details])``, which
        docs/monitors.md showed before keyword arguments, still works for users' monitors, with a
        ``DeprecationWarning``; mixing the two forms, or leaving out ``kind``, ``metric`` or ``status``,
        is a ``TypeError``.
        """
        if legacy:
            names = ("kind", "metric", "feature", "value", "threshold", "status", "details")
            if len(legacy) > len(names) or any(
                given is not None
                for given in (kind, metric, feature, value, threshold, status, details)
            ):
                raise TypeError("context.result: pass its fields by keyword or in the old positional order, not both")
            warnings.warn(
                "context.result with positional arguments is deprecated: pass kind=, metric=, feature=, "
                "value=, threshold=, status=, details= by keyword",
                DeprecationWarning,
                stacklevel=2,
            )
            given = dict(zip(names, legacy, strict=False))
            kind, metric, status = given.get("kind"), given.get("metric"), given.get("status")
            feature, value, threshold = given.get("feature"), given.get("value"), given.get("threshold")
            details = given.get("details")
        if kind is None or metric is None or status is None:
            raise TypeError("context.result needs kind, metric and status")
        return Result(
            model=self.model.name,
            window_start=self.window.start,
            window_end=self.window.end,
            kind=kind,
            metric=metric,
            feature=feature,
            value=value,
            threshold=threshold,
            status=status,
            details=details or {},
        )


class Monitor(Protocol):
    """``name`` and ``kind`` identify it; calling it evaluates one window."""

    name: str
    kind: Kind

    def __call__(self, context: WindowContext) -> list[Result]: ...


@dataclass(frozen=True)
class FunctionMonitor:
    """Wrap a plain ``fn(context) -> list[Result]`` as a monitor."""

    name: str
    kind: Kind
    fn: Callable[[WindowContext], list[Result]]

    def __call__(self, context: WindowContext) -> list[Result]:
        return self.fn(context)


def _normalise(monitor: Monitor, context: WindowContext, produced: Any) -> list[Result]:
    """Accept ``Result`` objects or dicts with the record's keys; pin them to this model and window."""
    if produced is None:
        return []
    if isinstance(produced, Result | dict):
        produced = [produced]
    results = []
    for item in produced:
        if isinstance(item, dict):
            item = context.result(
                kind=Kind(item.get("kind", monitor.kind)),
                metric=str(item["metric"]),
                feature=item.get("feature"),
                value=item.get("value"),
                threshold=item.get("threshold"),
                status=Status(item.get("status", Status.UNKNOWN)),
                details=dict(item.get("details") or {}),
            )
        if not isinstance(item, Result):
            raise TypeError(f"monitor {monitor.name!r} returned {type(item).__name__}, not a Result")
        if (item.model, item.window_start, item.window_end) != (
            context.model.name,
            context.window.start,
            context.window.end,
        ):
            item = context.result(
                kind=item.kind,
                metric=item.metric,
                feature=item.feature,
                value=item.value,
                threshold=item.threshold,
                status=item.status,
                details=item.details,
            )
        results.append(
            Result(
                model=item.model,
                window_start=item.window_start,
                window_end=item.window_end,
                kind=Kind(item.kind),
                metric=item.metric,
                feature=item.feature,
                value=item.value,
                threshold=item.threshold,
                status=Status(item.status),
                details=item.details,
            )
        )
    return results


def _failed(monitor: Monitor, context: WindowContext, reason: str, error: str) -> list[Result]:
    return [
        context.result(
            kind=monitor.kind,
            metric=f"monitor:{monitor.name}",
            feature=None,
            value=None,
            threshold=None,
            status=Status.UNKNOWN,
            details={"reason": reason, "error": error[:1000]},
        )
    ]


def run_guarded(monitor: Monitor, context: WindowContext, timeout: float | None = None) -> list[Result]:
    """Run one monitor; an exception or a timeout becomes one ``unknown`` result of its kind.

    A timed-out monitor's thread cannot be stopped from outside; it is abandoned (daemon thread)
    and the window completes without it.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["results"] = _normalise(monitor, context, monitor(context))
        except Exception as exc:  # a monitor's failure is its own
            outcome["error"] = exc

    if timeout is None:
        target()
    else:
        worker = threading.Thread(target=target, name=f"monitor-{monitor.name}", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            context.logger.warning("monitor %s timed out after %.0f s", monitor.name, timeout)
            return _failed(monitor, context, f"monitor timed out after {timeout:g} s", "timeout")
    if "error" in outcome:
        exc = outcome["error"]
        context.logger.warning("monitor %s failed: %s: %s", monitor.name, type(exc).__name__, exc)
        return _failed(monitor, context, "monitor raised", f"{type(exc).__name__}: {exc}")
    return _with_reference_reason(list(outcome.get("results", [])), context)


#: Kinds judged against the reference: without a usable one, their ``unknown`` rows carry why.
REFERENCE_KINDS = (Kind.DATA_DRIFT, Kind.CONCEPT_DRIFT, Kind.PERFORMANCE)


def _with_reference_reason(results: list[Result], context: WindowContext) -> list[Result]:
    """``unknown`` rows of a window without a usable reference say why (warm-up, too few rows, ...),
    not just "no reference"; the monitor's own wording stays in ``details['detail']``."""
    reason = context.reference_reason
    if reason is None or context.reference is not None:
        return results
    for result in results:
        if result.status == Status.UNKNOWN and result.kind in REFERENCE_KINDS:
            own = result.details.get("reason")
            result.details["reason"] = reason
            if own and own != reason:
                result.details["detail"] = own
    return results
