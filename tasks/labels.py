"""Late labels: recompute past windows whose label coverage changed since they were evaluated."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import task
from sqlalchemy.engine import Engine

from driftline.config import ModelConfig
from driftline.context import WindowContext, run_guarded
from driftline.stats.model_profile import ModelProfile
from driftline.tasks._prefect import IO
from driftline.tasks.extract import labelled_counts, read_rows
from driftline.tasks.monitors import label_dependent_monitors
from driftline.tasks.profiles import ensure_reference, profile_window
from driftline.tasks.store import label_coverage, save_label_refresh
from driftline.window import HOUR, Window


def labelled_in(frame: Any, model: ModelConfig) -> int | None:
    label = model.label_field
    if label is None or label not in frame:
        return None
    return int(frame[label].notna().sum())


def refresh_late_labels(
    data_engine: Engine,
    results_engine: Engine,
    model: ModelConfig,
    reference: ModelProfile | None,
    before: Window,
    logger: Any = None,
) -> list[str]:
    """Re-evaluate performance and concept drift of the windows in the look-back before ``before``
    whose labelled-row count differs from the one their results rest on. Returns their starts (ISO).

    Only windows that already have a succeeded run are refreshed; their data-drift rows are untouched.
    """
    lookback = model.performance.lookback_hours
    if model.label_field is None or lookback == 0 or reference is None or not model.performance.enabled:
        return []
    start = before.start - timedelta(hours=lookback)
    stored = label_coverage(results_engine, model.name, start, before.start)
    if not stored:
        return []
    live = labelled_counts(data_engine, model, start, before.start)
    refreshed = []
    monitors = label_dependent_monitors()
    for window_start in sorted(stored):
        now = live.get(window_start, 0)
        if stored[window_start] == now:
            continue
        window = Window(window_start, window_start + HOUR)
        # A rolling reference may differ for an earlier day; a fixed one is the same stored profile.
        own_reference = (
            ensure_reference(data_engine, results_engine, model, window) if model.reference.rolling else reference
        )
        frame = read_rows(data_engine, model, window.start, window.end)
        current = profile_window(frame, own_reference, model)
        context = WindowContext(model, window, frame, own_reference, current, data_engine, results_engine)
        if logger is not None:
            context.logger = logger
        results = [r for monitor in monitors for r in run_guarded(monitor, context)]
        labelled = labelled_in(frame, model) or 0
        save_label_refresh(results_engine, model.name, window, results, {m.kind for m in monitors}, labelled)
        refreshed.append(window.start.isoformat())
    return refreshed


refresh_late_labels_task = task(refresh_late_labels, name="refresh-late-labels", **IO)
