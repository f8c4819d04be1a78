"""The hourly monitoring flows: one model and window, all models, a backfill."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from driftline.connections import load_run_config, open_databases
from driftline.context import WindowContext
from driftline.errors import DriftlineError
from driftline.results import Status, worst
from driftline.tasks.artifacts import publish_summary_task
from driftline.tasks.extract import read_rows_task, verify_columns_task
from driftline.tasks.labels import labelled_in, refresh_late_labels_task
from driftline.tasks.monitors import monitors_for, run_monitor_task
from driftline.tasks.profiles import ensure_reference_task, profile_window_task
from driftline.tasks.store import claim_run_task, mark_failed, save_window_task
from driftline.window import Window, hourly_windows


def _run_name() -> str:
    parameters = flow_run.parameters
    end = parameters.get("window_end")
    return f"{parameters.get('model')}@{end if end else 'last-hour'}"


@flow(name="monitor-model", flow_run_name=_run_name, log_prints=False)
def monitor_model(model: str, window_end: datetime | None = None, config_path: str | None = None) -> dict[str, Any]:
    """Monitor one model for the hour ``[window_end - 1h, window_end)`` (default: the last full hour)."""
    logger = get_run_logger()
    config = load_run_config(config_path)
    model_config = config.model(model)
    window = Window.hour_ending(window_end)
    databases = open_databases(config)
    started = time.perf_counter()
    claim_run_task(databases.results, model, window, str(flow_run.id) if flow_run.id else None)
    try:
        verify_columns_task(databases.data, model_config)
        reference = ensure_reference_task(databases.data, databases.results, model_config, window)
        frame = read_rows_task(databases.data, model_config, window.start, window.end)
        current = profile_window_task(frame, reference, model_config)
        context = WindowContext(
            model_config, window, frame, reference, current, databases.data, databases.results, logger=logger
        )
        monitors = monitors_for(model_config)
        results = [r for monitor in monitors for r in run_monitor_task(monitor, context)]
        kinds = {m.kind for m in monitors} | {r.kind for r in results}
        save_window_task(databases.results, model, window, results, kinds, len(frame), time.perf_counter() - started,
                         labelled_in(frame, model_config))
    except Exception as exc:
        # Record the failure in the run log, then let Prefect mark the run Failed too.
        message = str(exc) if isinstance(exc, DriftlineError) else f"{type(exc).__name__}: {exc}"
        mark_failed(databases.results, model, window, message)
        raise
    refreshed = refresh_late_labels_task(databases.data, databases.results, model_config, reference, window, logger)
    if refreshed:
        logger.info("late labels: re-evaluated %d earlier windows", len(refreshed))
    publish_summary_task(model, window, results)
    counts = {s.value: sum(1 for r in results if r.status == s) for s in Status}
    verdict = worst([r.status for r in results])
    logger.info("%s %s: %s rows, verdict %s, %s", model, window.label(), len(frame), verdict, counts)
    return {
        "model": model,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "rows": len(frame),
        "status": str(verdict),
        "counts": counts,
        "alerts": sorted({r.feature or r.metric for r in results if r.status == Status.ALERT}),
        "refreshed_windows": refreshed,
    }


@flow(name="monitor-all")
def monitor_all(window_end: datetime | None = None, config_path: str | None = None) -> dict[str, Any]:
    """Every configured model for one hour. A failing model is reported as failed; the others still run."""
    logger = get_run_logger()
    config = load_run_config(config_path)
    outcome: dict[str, Any] = {"succeeded": {}, "failed": {}}
    for model in config.models:
        state = monitor_model(model.name, window_end, config_path, return_state=True)
        if state.is_completed():
            outcome["succeeded"][model.name] = state.result()
        else:
            outcome["failed"][model.name] = _state_message(state)
            logger.error("model %s failed: %s", model.name, outcome["failed"][model.name])
    return outcome


@flow(name="backfill")
def backfill(model: str, start: datetime, end: datetime, config_path: str | None = None) -> dict[str, Any]:
    """``monitor_model`` for every hour in ``[start, end)``; failed hours are listed, not fatal."""
    outcome: dict[str, Any] = {"succeeded": [], "failed": {}}
    for window in hourly_windows(start, end):
        state = monitor_model(model, window.end, config_path, return_state=True)
        if state.is_completed():
            outcome["succeeded"].append(state.result())
        else:
            outcome["failed"][window.end.isoformat()] = _state_message(state)
    return outcome


def _state_message(state: Any) -> str:
    try:
        state.result()
    except Exception as exc:  # the model's own error, as recorded in its run log
        return str(exc) if isinstance(exc, DriftlineError) else f"{type(exc).__name__}: {exc}"
    return state.message or state.name
