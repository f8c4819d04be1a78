"""Monitors: the built-in ones and the user's own, all behind the one contract
``monitor(context) -> list[Result]`` (see :mod:`driftline.tasks.context`).

Per model, ``monitors:`` in monitors.yaml lists which run (built-ins by name; user monitors by
``path: package.module:attribute`` or ``entry_point: name`` in the ``driftline.monitors`` group),
with ``params`` and a ``timeout_seconds``. Without the key every built-in runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from prefect import task

from driftline.config.monitors import ModelConfig, MonitorSpec
from driftline.core.errors import ConfigError
from driftline.core.results import Kind, Result
from driftline.stats.model_profile import ModelProfile
from driftline.tasks._prefect import NO_RETRIES
from driftline.tasks.concept import evaluate_concept
from driftline.tasks.context import FunctionMonitor, Monitor, WindowContext, run_guarded
from driftline.tasks.drift import drift_monitor
from driftline.tasks.estimation import MONITOR_NAME as ESTIMATION_MONITOR
from driftline.tasks.estimation import active as estimation_active
from driftline.tasks.estimation import estimation_monitor
from driftline.tasks.operational import OPERATIONAL_STATE, evaluate_operational, evaluate_period_operational
from driftline.tasks.performance import PERFORMANCE_STATE, evaluate_performance
from driftline.tasks.validity import evaluate_validity

ENTRY_POINT_GROUP = "driftline.monitors"


def performance_monitor(context: WindowContext) -> list[Result]:
    reference = context.reference.fitted.performance if context.reference else None
    return evaluate_performance(context, reference)


def completeness_monitor(context: WindowContext) -> list[Result]:
    # Great Expectations takes seconds to import: only when this monitor first runs.
    from driftline.checks.completeness import evaluate_completeness

    return evaluate_completeness(context)


def multivariate_monitor(context: WindowContext) -> list[Result]:
    from driftline.tasks.multivariate import evaluate_multivariate

    return evaluate_multivariate(context)


#: name -> (kind, function, runs by default)
BUILTIN: dict[str, tuple[Kind, Callable[[WindowContext], list[Result]], bool]] = {
    "data_drift": (Kind.DATA_DRIFT, drift_monitor, True),
    "concept_drift": (Kind.CONCEPT_DRIFT, evaluate_concept, True),
    "operational": (Kind.OPERATIONAL, evaluate_operational, True),
    "performance": (Kind.PERFORMANCE, performance_monitor, True),
    ESTIMATION_MONITOR: (Kind.PERFORMANCE, estimation_monitor, True),
    "completeness": (Kind.DATA_QUALITY, completeness_monitor, True),
    "validity": (Kind.DATA_QUALITY, evaluate_validity, True),
    "multivariate_drift": (Kind.DATA_DRIFT, multivariate_monitor, False),
}


@dataclass(frozen=True)
class ConfiguredMonitor:
    """A monitor with the parameters and timeout its spec gives; parameters reach it via the context."""

    name: str
    kind: Kind
    fn: Callable[[WindowContext], Any]
    params: dict[str, Any]
    timeout_seconds: float | None
    #: False: works from the profiles alone and never touches ``context.frame``.
    reads_rows: bool = True

    def __call__(self, context: WindowContext) -> Any:
        return self.fn(context)


#: Built-ins that work from the window's profile alone (no rows): with only these, the window streams.
PROFILE_ONLY = frozenset(
    {"data_drift", "concept_drift", "operational", "performance", "validity", "completeness", ESTIMATION_MONITOR}
)


def reads_rows(monitors: list[ConfiguredMonitor]) -> bool:
    """Whether any of ``monitors`` needs the window's rows (a user's monitor does unless it says
    ``reads_rows = False``)."""
    return any(m.reads_rows for m in monitors)


def _builtin(name: str) -> FunctionMonitor:
    kind, fn, _ = BUILTIN[name]
    return FunctionMonitor(name, kind, fn)


def label_dependent_monitors(model_config: ModelConfig | None = None) -> list[Monitor]:
    """What a late-label refresh recomputes for a past window (its data-drift rows stay untouched).

    The estimated performance too when it runs for ``model``: its rows are of kind ``performance``,
    which the refresh replaces, and the realised metric is put beside each estimate."""
    monitors = [_builtin("concept_drift"), _builtin("performance")]
    if model_config is None or estimation_active(model_config):
        monitors.append(_builtin(ESTIMATION_MONITOR))
    return monitors


def period_monitors(model_config: ModelConfig, reference: ModelProfile | None, merged: ModelProfile) -> list[Monitor]:
    """What a day or week is judged on, from its merged hourly profiles (no rows): data drift; the
    estimated performance when it runs for the model; the realised performance when the hours'
    states carry it (late labels included once refreshed); the latency percentiles and error rate
    when the hours carry the operational state."""
    monitors = [_builtin("data_drift")]
    if estimation_active(model_config):
        monitors.append(_builtin(ESTIMATION_MONITOR))
    if reference is not None and PERFORMANCE_STATE in merged.states:
        monitors.append(_builtin("performance"))
    if reference is not None and model_config.runs_builtin("operational") and OPERATIONAL_STATE in merged.states:
        monitors.append(FunctionMonitor("operational", Kind.OPERATIONAL, evaluate_period_operational))
    return monitors


def _import_path(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    if not attribute:
        module_name, _, attribute = path.rpartition(".")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"monitor path {path!r}: cannot import {module_name!r} ({exc})") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"monitor path {path!r}: {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    return target


def _entry_point(name: str) -> Any:
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        known = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
        raise ConfigError(f"no monitor entry point {name!r} in group {ENTRY_POINT_GROUP!r}; installed: {known}")
    return found[0].load()


def resolve(spec: MonitorSpec) -> ConfiguredMonitor:
    """A monitor from its spec; a class is instantiated with ``params``."""
    if spec.path is None and spec.entry_point is None:
        if spec.name not in BUILTIN:
            raise ConfigError(f"monitor {spec.name!r} is not built in ({', '.join(BUILTIN)}); give path or entry_point")
        kind, fn, _ = BUILTIN[spec.name]
        return ConfiguredMonitor(spec.name, kind, fn, spec.params, spec.timeout_seconds, spec.name not in PROFILE_ONLY)
    target = _import_path(spec.path) if spec.path else _entry_point(str(spec.entry_point))
    if isinstance(target, type):
        target = target(**spec.params)
    if not callable(target):
        raise ConfigError(f"monitor {spec.name!r}: {type(target).__name__} is not callable")
    declared = spec.kind or getattr(target, "kind", None)
    if declared is None:
        raise ConfigError(f"monitor {spec.name!r}: say which kind its results are (kind: data_drift, ...)")
    return ConfiguredMonitor(
        spec.name, Kind(declared), target, spec.params, spec.timeout_seconds, bool(getattr(target, "reads_rows", True))
    )


def monitors_for(model_config: ModelConfig) -> list[ConfiguredMonitor]:
    if model_config.monitors is None:
        return [
            ConfiguredMonitor(name, kind, fn, {}, None, name not in PROFILE_ONLY)
            for name, (kind, fn, default) in BUILTIN.items()
            if default
        ]
    return [resolve(spec) for spec in model_config.monitors]


def run_monitor(monitor: ConfiguredMonitor | Monitor, context: WindowContext) -> list[Result]:
    """One monitor, guarded: its exception or timeout becomes an ``unknown`` result, never a failed window."""
    scoped = context.with_parameters(dict(getattr(monitor, "params", {})))
    return run_guarded(monitor, scoped, getattr(monitor, "timeout_seconds", None))


run_monitor_task = task(run_monitor, name="monitor", task_run_name="monitor-{monitor.name}", **NO_RETRIES)
