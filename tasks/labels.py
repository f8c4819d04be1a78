"""Late labels: recompute past windows whose label coverage changed since they were evaluated, and
react to what the labels revealed (events and notifications, as for a fresh window)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import task
from sqlalchemy.engine import Engine

from driftline.config.monitors import ModelConfig
from driftline.config.notifications import NotificationsConfig
from driftline.core.results import STATUS_SEVERITY, Kind, Result, Status, worst
from driftline.core.window import HOUR, Window
from driftline.stats.model_profile import ModelProfile
from driftline.storage.connections import Databases
from driftline.storage.results import load_results, save_label_refresh
from driftline.storage.runs import label_coverage, run_reference_versions, stored_label_checksums
from driftline.tasks._prefect import RETRY_TRANSIENT
from driftline.tasks.extract import label_checksums, labelled_counts
from driftline.tasks.monitors import label_dependent_monitors
from driftline.tasks.notify import react
from driftline.tasks.pipeline import (
    WindowJob,
    evaluate_window,
    hold_back_alerts,
    labelled_rows,
    read_window,
    store_hour_profile,
    window_reference,
)


def worse_kinds(before: list[Result], after: list[Result]) -> set[Kind]:
    """Kinds whose worst status in ``after`` is warning/alert and more severe than in ``before``."""

    def by_kind(results: list[Result]) -> dict[Kind, Status]:
        grouped: dict[Kind, list[Status]] = {}
        for result in results:
            grouped.setdefault(Kind(result.kind), []).append(Status(result.status))
        return {kind: worst(statuses) for kind, statuses in grouped.items()}

    old, new = by_kind(before), by_kind(after)
    return {
        kind
        for kind, status in new.items()
        if status in (Status.WARNING, Status.ALERT)
        and STATUS_SEVERITY[status] > STATUS_SEVERITY[old.get(kind, Status.UNKNOWN)]
    }


def refresh_late_labels(
    data_engine: Engine,
    results_engine: Engine,
    model_config: ModelConfig,
    reference: ModelProfile | None,
    before: Window,
    logger: Any = None,
    *,
    notify: bool = True,
    notification_defaults: NotificationsConfig | None = None,
    flow_run_id: str | None = None,
) -> list[str]:
    """Re-evaluate performance and concept drift of the windows in the look-back before ``before``
    whose labels differ from the ones their results rest on: another labelled-row count, or the same
    count with other labels (the label checksum, :func:`label_checksums`; a window recorded without one
    is compared by count). Returns their starts (ISO).

    Only windows that already have a succeeded run are refreshed; their data-drift rows are untouched.
    Realised and estimated performance are judged as one family, and ``alert_after`` holds a first
    alert back as in the hourly run (counted over the windows before the refreshed one).
    With ``notify``, the kinds of a refreshed window whose status the labels made worse than what was
    stored (e.g. ``unknown`` -> ``alert``) go through ``react`` like a fresh window: an event (what
    the retrain automation listens to) and the incident rules' message. Only those kinds: labels
    trickling in over several hours re-evaluate a window several times, and an unchanged or better
    status says nothing new, while reacting to it again would re-open an incident a newer window has
    resolved and notify the same problem twice.
    """
    lookback = model_config.performance.lookback_hours
    # ``reference`` (the current window's) is not needed: each past window resolves its own.
    if model_config.label_field is None or lookback == 0 or not model_config.performance.enabled:
        return []
    start = before.start - timedelta(hours=lookback)
    stored = label_coverage(results_engine, model_config.name, start, before.start)
    if not stored:
        return []
    live = labelled_counts(data_engine, model_config, start, before.start)
    # Taken before any window is reread: a label changed while it is reread shows up next time.
    live_sums = label_checksums(data_engine, model_config, start, before.start)
    stored_sums = stored_label_checksums(results_engine, model_config.name, start, before.start)
    versions = run_reference_versions(results_engine, model_config.name, start, before.start)
    refreshed = []
    monitors = label_dependent_monitors(model_config)
    databases = Databases(data=data_engine, results=results_engine)
    if notify and flow_run_id is None:
        from prefect.runtime import flow_run

        flow_run_id = str(flow_run.id) if flow_run.id else None  # the monitor run whose refresh found it
    for window_start in sorted(stored):
        now = live.get(window_start, 0)
        recorded_sum = stored_sums.get(window_start)
        same_labels = recorded_sum is None or recorded_sum == live_sums.get(window_start)
        if stored[window_start] == now and same_labels:
            continue
        # The one window pipeline (tasks/pipeline.py): the reference the window's stored verdicts rest on
        # (recorded in the run log), else the version in effect at its start (a promotion since never
        # re-judges it behind anyone's back); judged against that reference itself, never a seasonal one.
        job = WindowJob(
            model_config,
            Window(window_start, window_start + HOUR),
            reference_version=versions.get(window_start),
            source="labelled",
            seasonal=False,
        )
        window = job.window
        choice = window_reference(databases, job)
        # Only the labelled rows are reread, onto the hour's stored profile (tasks/relabel.py); the whole
        # hour streams when that cannot be exact. The label-dependent monitors work from its states.
        data = read_window(databases, job, choice.profile)
        evaluation = evaluate_window(job, data, choice, monitors, databases, logger=logger)
        # The hourly run's persistence, re-applied: labels that reveal a first alert hold it at warning
        # unless it lasted ``alert_after`` of the windows before this one, as a fresh window would.
        results = hold_back_alerts(databases, job, evaluation.results)
        labelled = labelled_rows(data, model_config) or 0
        kinds = {m.kind for m in monitors}
        previous = [
            r for r in load_results(results_engine, model_config.name, window.start, window.end) if r.kind in kinds
        ]
        save_label_refresh(
            results_engine, model_config.name, window, results, kinds, labelled, live_sums.get(window_start)
        )
        # The hour's stored profile now carries the late labels: days and weeks merge them.
        store_hour_profile(databases, job, choice.profile, data)
        refreshed.append(window.start.isoformat())
        worse = worse_kinds(previous, results) if notify else set()
        if worse:
            # After the save, as in the hourly flow: react never raises and never holds results back.
            react(
                databases,
                model_config,
                window,
                [r for r in results if r.kind in worse],
                flow_run_id,
                defaults=notification_defaults,
            )
    return refreshed


def window_label_checksum(data_engine: Engine, model_config: ModelConfig, window: Window) -> str | None:
    """The window's label checksum (:func:`label_checksums`); None without labels."""
    return label_checksums(data_engine, model_config, window.start, window.end).get(window.start)


window_label_checksum_task = task(window_label_checksum, name="label-checksum", **RETRY_TRANSIENT)
refresh_late_labels_task = task(refresh_late_labels, name="refresh-late-labels", **RETRY_TRANSIENT)
