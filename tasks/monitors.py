"""The built-in monitors, each a plain ``fn(context) -> list[Result]`` behind the one monitor contract."""

from __future__ import annotations

from prefect import task

from driftline.context import FunctionMonitor, Monitor, WindowContext, run_guarded
from driftline.results import Kind, Result
from driftline.tasks._prefect import PURE
from driftline.tasks.concept import evaluate_concept
from driftline.tasks.drift import drift_monitor
from driftline.tasks.operational import evaluate_operational
from driftline.tasks.performance import evaluate_performance


def performance_monitor(context: WindowContext) -> list[Result]:
    reference = context.reference.extras.get("performance") if context.reference else None
    return evaluate_performance(context, reference)


def builtin_monitors() -> list[Monitor]:
    return [
        FunctionMonitor("data_drift", Kind.DATA_DRIFT, drift_monitor),
        FunctionMonitor("concept_drift", Kind.CONCEPT_DRIFT, evaluate_concept),
        FunctionMonitor("operational", Kind.OPERATIONAL, evaluate_operational),
        FunctionMonitor("performance", Kind.PERFORMANCE, performance_monitor),
    ]


def label_dependent_monitors() -> list[Monitor]:
    """What a late-label refresh recomputes for a past window (its data-drift rows stay untouched)."""
    return [
        FunctionMonitor("concept_drift", Kind.CONCEPT_DRIFT, evaluate_concept),
        FunctionMonitor("performance", Kind.PERFORMANCE, performance_monitor),
    ]


def run_monitor(monitor: Monitor, context: WindowContext) -> list[Result]:
    """One monitor, guarded: its exception becomes an ``unknown`` result, never a failed window."""
    return run_guarded(monitor, context)


run_monitor_task = task(run_monitor, name="monitor", task_run_name="monitor-{monitor.name}", **PURE)
