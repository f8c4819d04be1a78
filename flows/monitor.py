"""The hourly monitoring flows: one model and window, all models, a backfill."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from driftline.core.errors import DriftlineError
from driftline.core.results import Kind, Status, awaits_labels, window_verdict
from driftline.core.settings import load_settings
from driftline.core.window import Window, hourly_windows
from driftline.storage.connections import load_run_config, open_databases
from driftline.storage.runs import RunHeartbeat, mark_failed
from driftline.tasks._prefect import is_transient
from driftline.tasks.artifacts import publish_summary_task
from driftline.tasks.extract import verify_columns_task
from driftline.tasks.labels import refresh_late_labels_task, window_label_checksum_task
from driftline.tasks.monitors import monitors_for, run_monitor_task
from driftline.tasks.notify import react_task
from driftline.tasks.pipeline import (
    WindowJob,
    evaluate_window,
    hold_back_alerts_task,
    judging_reference_task,
    read_window,
    read_window_task,
    save_results,
    save_results_task,
    store_hour_profile_task,
    window_reference,
    window_reference_task,
)
from driftline.tasks.reporting import refresh_report_task
from driftline.tasks.store import claim_run_task


def _logger() -> Any:
    """The run's logger inside Prefect; a plain logger when the CLI monitors without Prefect."""
    try:
        return get_run_logger()
    except Exception:
        import logging

        return logging.getLogger("driftline.flows")


def _run_name() -> str:
    parameters = flow_run.parameters
    end = parameters.get("window_end")
    return f"{parameters.get('model')}@{end if end else 'last-hour'}"


@flow(name="monitor-model", flow_run_name=_run_name, log_prints=False)
def monitor_model(
    model: str,
    window_end: datetime | None = None,
    config_path: str | None = None,
    rejudge_with_latest_reference: bool = False,
) -> dict[str, Any]:
    """Monitor one model for the hour ``[window_end - 1h, window_end)`` (default: the last full hour).

    The window is judged against the reference version in effect at its start;
    ``rejudge_with_latest_reference`` judges it against the newest version instead (an explicit choice)."""
    return monitor_window(model, window_end, config_path, rejudge_with_latest_reference=rejudge_with_latest_reference)


def monitor_window(
    model: str,
    window_end: datetime | None,
    config_path: str | None,
    as_tasks: bool = True,
    rejudge_with_latest_reference: bool = False,
) -> dict[str, Any]:
    """The steps of one (model, window). Run by the ``monitor-model`` flow with every step a Prefect
    task (visible in the UI), and by ``monitor-all``'s fan-out inside one task per model with the steps
    as plain calls (``as_tasks=False``: a dozen task runs per model cost more than the work itself
    when there are hundreds of models)."""

    def step(t: Any) -> Any:
        return t if as_tasks else t.fn

    logger = _logger()
    config = load_run_config(config_path)
    model_config = config.model(model)
    window = Window.hour_ending(window_end)
    databases = open_databases(config, wait_s=load_settings().db_wait_s)  # an outage at the start is waited out
    started = time.perf_counter()
    lease_s = load_settings().run_lease_s
    step(claim_run_task)(databases.results, model, window, str(flow_run.id) if flow_run.id else None, lease_s)
    heartbeat = RunHeartbeat(databases.results, model, window, lease_s).__enter__()  # a killed run is seen
    try:
        step(verify_columns_task)(databases.data, model_config)
        # The one window pipeline (tasks/pipeline.py), the same steps the refresh, days and weeks and a
        # team's own flow take.
        job = WindowJob(model_config, window, latest_reference=rejudge_with_latest_reference)
        choice = step(window_reference_task)(databases, job)
        reference = choice.profile
        monitors = monitors_for(model_config)
        # Before the rows are read: a label corrected meanwhile is refreshed later, never missed.
        label_checksum = step(window_label_checksum_task)(databases.data, model_config, window)
        # A frame when some monitor reads the rows; else the profile folds as the rows stream by (flat
        # memory), the frame read only if a monitor touches it after all.
        data = step(read_window_task)(databases, job, reference, monitors)
        current = data.current
        judged_against = step(judging_reference_task)(databases, job, reference)
        evaluation = evaluate_window(
            job,
            data,
            choice,
            monitors,
            databases,
            judged_against=judged_against,
            logger=logger,
            run=step(run_monitor_task),
        )
        results = step(hold_back_alerts_task)(databases, job, evaluation.results)
        step(save_results_task)(
            databases,
            job,
            data,
            results,
            evaluation.kinds,
            duration_s=time.perf_counter() - started,
            reference_version=choice.version.version,
            label_checksum=label_checksum,
        )
    except Exception as exc:
        # Record the failure in the run log, then let Prefect mark the run Failed too.
        message = str(exc) if isinstance(exc, DriftlineError) else f"{type(exc).__name__}: {exc}"
        try:
            mark_failed(databases.results, model, window, message)
        except Exception as record_error:  # the database is gone too: say so, keep the window's own error
            logger.error(
                "%s %s not recorded as failed in the run log: %s", model, window.label(), type(record_error).__name__
            )
        raise
    finally:
        heartbeat.__exit__()
    # The window's results are committed and its run log says succeeded: from here on a failing step
    # is a warning in the outcome, never a Failed flow run that contradicts the run log.
    warnings: list[str] = []

    def after_commit(what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            warnings.append(f"{what}: {type(exc).__name__}: {exc}"[:500])
            logger.warning(
                "%s %s: %s failed after the results were stored: %s", model, window.label(), what, type(exc).__name__
            )
            return None

    # Days and weeks are merged from these hourly profiles (driftline run --resolution day).
    after_commit("window profile", step(store_hour_profile_task), databases, job, reference, data)
    # Events and notifications never hold the results hostage (react never raises).
    reaction = (
        after_commit(
            "react",
            step(react_task),
            databases,
            model_config,
            window,
            results,
            str(flow_run.id) if flow_run.id else None,
            defaults=config.notifications,
        )
        or {}
    )
    refreshed = (
        after_commit(
            "late labels",
            step(refresh_late_labels_task),
            databases.data,
            databases.results,
            model_config,
            reference,
            window,
            logger,
            notification_defaults=config.notifications,
        )
        or []
    )
    if refreshed:
        logger.info("late labels: re-evaluated %d earlier windows", len(refreshed))
    report = None
    settings = load_settings()
    if settings.reports_dir is not None:
        report = after_commit(
            "report", step(refresh_report_task), databases.results, databases.data, config, model, window, settings
        )
    if flow_run.id:  # the summary artifact lives on the flow run (none when run without Prefect)
        after_commit("summary artifact", step(publish_summary_task), model, window, results, report)
    counts = {s.value: sum(1 for r in results if r.status == s) for s in Status}
    verdict = window_verdict(results)
    logger.info("%s %s: %s rows, verdict %s, %s", model, window.label(), current.row_count, verdict, counts)
    return {
        "model": model,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "rows": current.row_count,
        "status": str(verdict),
        "reference": choice.version.describe() | ({"reason": choice.reason} if choice.reason else {}),
        "counts": counts,
        "alerts": sorted({r.feature or r.metric for r in results if r.status == Status.ALERT}),
        # What could not be judged: a window is ``unknown`` rather than ``ok`` when nothing worse happened.
        "unknown": sorted(
            {r.feature or r.metric for r in results if r.status == Status.UNKNOWN and not awaits_labels(r)}
        ),
        "refreshed_windows": refreshed,
        "report": report,
        "notifications": {k: reaction.get(k) for k in ("events", "events_queued", "planned", "errors")},
        "warnings": warnings,
    }


#: One model's window as a task, so ``monitor-all`` fans out on the flow's task runner (threads by
#: default; a Dask cluster with ``monitor_all.with_options(task_runner=DaskTaskRunner(...))``).
#: Its inputs are plain strings and a datetime, so it runs on any worker.
def _monitor_window_plain(
    model: str, window_end: datetime | None, config_path: str | None, rejudge_with_latest_reference: bool = False
) -> dict[str, Any]:
    return monitor_window(
        model, window_end, config_path, as_tasks=False, rejudge_with_latest_reference=rejudge_with_latest_reference
    )


#: The window is idempotent, so a transient database error retries the whole model once.
monitor_model_task = task(
    _monitor_window_plain,
    name="monitor-model",
    task_run_name="{model}",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=is_transient,
)

#: Models monitored at once by ``monitor-all``'s default task runner.
DEFAULT_CONCURRENCY = 4


@flow(name="monitor-all", task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_CONCURRENCY))
def monitor_all(
    window_end: datetime | None = None,
    config_path: str | None = None,
    models: list[str] | None = None,
    rejudge_with_latest_reference: bool = False,
) -> dict[str, Any]:
    """Every configured model (or only ``models``, a shard of the fleet) for one hour, concurrently on
    the flow's task runner. A failing model is reported as failed; the others still run. An unknown
    name in ``models`` is a configuration error, raised before any model runs."""
    logger = _logger()
    config = load_run_config(config_path)
    end = Window.hour_ending(window_end).end  # one instant for every model, even across the hour
    names = [model.name for model in config.models] if models is None else [config.model(n).name for n in models]
    began = datetime.now(UTC)
    futures = {name: monitor_model_task.submit(name, end, config_path, rejudge_with_latest_reference) for name in names}
    outcome: dict[str, Any] = {"succeeded": {}, "failed": {}}
    for name, future in futures.items():
        future.wait()
        state = future.state
        if state.is_completed():
            outcome["succeeded"][name] = future.result()
        else:
            outcome["failed"][name] = _state_message(state)
            logger.error("model %s failed: %s", name, outcome["failed"][name])
    window = Window.hour_ending(end)
    record_failures(config, [(name, window, error) for name, error in outcome["failed"].items()], began)
    _confirm_events(config, list(outcome["succeeded"].values()), outcome)
    return outcome


def _confirm_events(config: Any, outcomes: list[dict[str, Any]], into: dict[str, Any]) -> None:
    """Once per run: wait for the Prefect API to have stored the events the windows sent (an
    acknowledged event can still be lost by a server that dies seconds later)."""
    from driftline.tasks.notify import confirm_run_events

    try:
        into["events"] = confirm_run_events(open_databases(config).results, outcomes)
    except Exception as exc:  # the outbox keeps them for the next run
        into["events"] = {"error": type(exc).__name__}


@flow(name="backfill")
def backfill(
    model: str,
    start: datetime,
    end: datetime,
    config_path: str | None = None,
    rejudge_with_latest_reference: bool = False,
) -> dict[str, Any]:
    """``monitor_model`` for every hour in ``[start, end)``; failed hours are listed, not fatal.

    Each hour is judged against the reference version in effect at its start, so a backfill of
    history reproduces its stored verdicts; ``rejudge_with_latest_reference`` uses the newest version."""
    outcome: dict[str, Any] = {"succeeded": [], "failed": {}}
    began = datetime.now(UTC)
    failed: list[tuple[str, Window, str]] = []
    for window in hourly_windows(start, end):
        state = monitor_model(model, window.end, config_path, rejudge_with_latest_reference, return_state=True)
        if state.is_completed():
            outcome["succeeded"].append(state.result())
        else:
            outcome["failed"][window.end.isoformat()] = _state_message(state)
            failed.append((model, window, outcome["failed"][window.end.isoformat()]))
    config = load_run_config(config_path)
    record_failures(config, failed, began)
    _confirm_events(config, outcome["succeeded"], outcome)
    return outcome


#: How long the end of a run waits for the database to record the windows that failed while it was down.
RECORD_WAIT_S = 30.0


def record_failures(config: Any, failed: list[tuple[str, Window, str]], since: datetime) -> int:
    """After a run: failed windows the run log missed (the database was down as they failed) are
    recorded now that it answers again (waiting for it like a window does). Returns rows written."""
    from driftline.storage.runs import record_unrecorded_failure

    if not failed:
        return 0
    try:
        engine = open_databases(config, wait_s=max(load_settings().db_wait_s, RECORD_WAIT_S)).results
        return sum(record_unrecorded_failure(engine, m, w, error, since) for m, w, error in failed)
    except Exception as exc:  # still down: say so; the next run's claim counts its own attempt
        _logger().error("%d failed window(s) not recorded in the run log: %s", len(failed), type(exc).__name__)
        return 0


def _state_message(state: Any) -> str:
    try:
        state.result()
    except Exception as exc:  # the model's own error, as recorded in its run log
        return str(exc) if isinstance(exc, DriftlineError) else f"{type(exc).__name__}: {exc}"
    return state.message or state.name


def periods(resolution: str, start: datetime | str, end: datetime | str) -> list[Window]:
    """Days (UTC midnight to midnight) or ISO weeks (Monday 00:00 UTC) covering ``[start, end)``."""
    from datetime import timedelta

    from driftline.core.errors import ConfigError
    from driftline.core.window import parse_instant

    if resolution not in ("day", "week"):
        raise ConfigError(f"resolution must be hour, day or week, not {resolution!r}")
    first = parse_instant(start).replace(hour=0, minute=0, second=0, microsecond=0)
    if resolution == "week":
        first -= timedelta(days=first.weekday())
    step = timedelta(days=1 if resolution == "day" else 7)
    stop = parse_instant(end)
    out = []
    while first < stop:
        out.append(Window(first, first + step))
        first += step
    return out


@flow(name="monitor-period")
def monitor_period(
    model: str,
    resolution: str,
    start: datetime,
    end: datetime,
    config_path: str | None = None,
    rejudge_with_latest_reference: bool = False,
) -> dict[str, Any]:
    """Data drift, estimated and realised performance, latency percentiles and error rate of whole
    days or weeks, from the stored hourly window profiles (no rows are reread; a late-label refresh
    re-stores an hour's profile).

    Each period is judged like an hour — same statistics, thresholds and gates — against the
    reference version in effect at its first hour (``rejudge_with_latest_reference``: the newest
    version); only the hours profiled against that same reference are merged (an hour after a
    promotion inside the period is not). Results are stored with ``resolution`` ``day`` or ``week``.
    A week needs one reference for all its hours (a rolling reference changes daily: use ``day``).
    """
    from driftline.core.errors import ConfigError
    from driftline.tasks.monitors import period_monitors

    config = load_run_config(config_path)
    model_config = config.model(model)
    if resolution == "week" and model_config.reference.rolling:
        raise ConfigError(f"model {model!r}: week resolution needs a fixed reference (a rolling one changes daily)")
    databases = open_databases(config)
    outcome: dict[str, Any] = {}
    for period in periods(resolution, start, end):
        # The one window pipeline (tasks/pipeline.py) on a day or week: the stored hours merged, no rows.
        job = WindowJob(
            model_config,
            period,
            resolution,  # "day" or "week": periods() refused anything else
            source="merged",
            latest_reference=rejudge_with_latest_reference,
        )
        choice = window_reference(databases, job)
        data = read_window(databases, job, choice.profile)
        merged = data.current
        monitors = period_monitors(model_config, choice.profile, merged)
        results = evaluate_window(job, data, choice, monitors, databases).results
        save_results(databases, job, data, results, {r.kind for r in results} | {Kind.DATA_DRIFT})
        outcome[period.start.isoformat()] = {
            "hours": data.hours,
            "rows": merged.row_count,
            "status": str(window_verdict(results)),
        }
    return outcome
