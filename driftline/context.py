"""The window context every monitor receives, and the monitor contract.

A monitor is a callable ``monitor(context) -> list[Result]``. It may read ``context.frame`` (the
window's rows, loaded once), the reference and window profiles, and the engines; it must not write.
A monitor that raises is recorded as an ``unknown`` result of its kind carrying the error; the
window still completes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
from sqlalchemy.engine import Engine

from driftline.config import ModelConfig
from driftline.results import Kind, Result, Status
from driftline.stats.model_profile import ModelProfile
from driftline.window import Window


@dataclass
class WindowContext:
    model: ModelConfig
    window: Window
    frame: pd.DataFrame
    reference: ModelProfile | None
    current: ModelProfile
    data_engine: Engine | None = None
    results_engine: Engine | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    logger: logging.Logger | logging.LoggerAdapter[Any] = field(default_factory=lambda: logging.getLogger("driftline"))

    def result(
        self,
        kind: Kind,
        metric: str,
        feature: str | None,
        value: float | None,
        threshold: float | None,
        status: Status,
        details: dict[str, Any] | None = None,
    ) -> Result:
        """A result for this model and window."""
        return Result(
            self.model.name,
            self.window.start,
            self.window.end,
            kind,
            metric,
            feature,
            value,
            threshold,
            status,
            details or {},
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


def run_guarded(monitor: Monitor, context: WindowContext) -> list[Result]:
    """Run one monitor; an exception becomes one ``unknown`` result of its kind, not a failed window."""
    try:
        return list(monitor(context))
    except Exception as exc:  # a monitor's failure is its own
        context.logger.warning("monitor %s failed: %s: %s", monitor.name, type(exc).__name__, exc)
        return [
            context.result(
                monitor.kind,
                f"monitor:{monitor.name}",
                None,
                None,
                None,
                Status.UNKNOWN,
                {"reason": "monitor raised", "error": f"{type(exc).__name__}: {exc}"[:1000]},
            )
        ]
