"""The one window pipeline: the steps every (model, window) goes through, whoever runs it.

The hourly run (``flows/monitor.py::monitor_window``), the late-label refresh
(``tasks/labels.py::refresh_late_labels``), day and week merges (``flows/monitor.py::monitor_period``)
and a platform team's own flow (``examples/team_flow.py``) describe their window with one
:class:`WindowJob` and call the same steps, in this order:

1. :func:`window_reference` — the reference version the window is judged against, and its profile;
2. :func:`read_window` — the window's profile and (lazily) its rows: streamed, read as a frame, the
   stored hourly profiles merged (days, weeks), or the stored hour with its labelled rows re-read
   (the late-label refresh);
3. :func:`judging_reference` — the reference itself, or its seasonal variant (opt-in);
4. :func:`evaluate_window` — the monitors over one ``WindowContext``, the performance family judged
   as one, the realised metric beside each estimate;
5. :func:`hold_back_alerts` — ``alert_after`` persistence (opt-in);
6. :func:`save_results` (or ``save_label_refresh`` for a refresh) and :func:`store_hour_profile`, the
   hourly profile days and weeks merge.

Claiming the window, reacting (events, notifications) and reports stay with the caller: they are
about the run, not the window. Every step is a plain function and a Prefect task (``*_task``), so
a team's flow shows them in the UI and the fan-out of many models runs them as plain calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import reduce
from typing import Any, Literal

from prefect import task

from driftline.config.monitors import ModelConfig
from driftline.core.results import Kind, Result
from driftline.core.window import HOUR, Window
from driftline.stats.concept import RelationState
from driftline.stats.model_profile import ModelProfile
from driftline.stats.performance import WindowPerformance
from driftline.storage.connections import Databases
from driftline.storage.profiles import load_window_profiles, store_window_profile
from driftline.storage.results import save_window
from driftline.tasks._prefect import RETRY_TRANSIENT
from driftline.tasks.context import WindowContext, WindowRows
from driftline.tasks.estimation import attach_realised
from driftline.tasks.extract import read_rows
from driftline.tasks.monitors import reads_rows, run_monitor
from driftline.tasks.performance import PERFORMANCE_STATE, judge_window_performance
from driftline.tasks.persistence import apply_persistence, recent_alert_counts
from driftline.tasks.profiles import (
    CONCEPT_STATE,
    ReferenceChoice,
    choose_reference,
    profile_window,
    seasonal_reference,
    stream_window_profile,
)
from driftline.tasks.relabel import relabelled_profile

#: How a window's data is obtained. ``auto``: a frame when a monitor reads rows, else streamed.
Source = Literal["auto", "stream", "frame", "merged", "labelled"]
Resolution = Literal["hour", "day", "week"]


@dataclass(frozen=True)
class WindowJob:
    """One (model, window) to evaluate: what every step of the pipeline takes.

    ``window`` is an hour (``resolution="hour"``) or a day/week (merged from stored hourly profiles,
    ``source="merged"``). The reference is the version in effect at the window's start (a day's or
    week's: at its first hour), or the newest one (``latest_reference``), or a given version number
    (``reference_version``: a refresh re-judges against the version the stored verdicts rest on).
    ``seasonal``: judge data drift against the seasonal reference when the model configures one.
    """

    model_config: ModelConfig
    window: Window
    resolution: Resolution = "hour"
    source: Source = "auto"
    latest_reference: bool = False
    reference_version: int | None = None
    seasonal: bool = True

    def __post_init__(self) -> None:
        if (self.resolution != "hour") != (self.source == "merged"):
            raise ValueError(f"a {self.resolution} window is read from {self.source!r}: days and weeks only merge")

    @property
    def model(self) -> str:
        return self.model_config.name

    @property
    def reference_hour(self) -> Window:
        """The hour whose reference the window is judged against (a day's or week's first hour)."""
        return self.window if self.resolution == "hour" else Window.hour_ending(self.window.start + HOUR)


@dataclass
class WindowData:
    """The window's profile (with the monitors' folded states) and its rows, read on first use."""

    current: ModelProfile
    rows: WindowRows
    #: Stored hourly profiles merged into a day or week (None for an hour).
    hours: int | None = None
    #: How the data was obtained (``stream``, ``frame``, ``merged``, ``labelled``).
    source: str = "stream"


def window_reference(databases: Databases, job: WindowJob) -> ReferenceChoice:
    """Step 1: the reference version ``job`` is judged against and its profile (fitted once if missing)."""
    return choose_reference(
        databases.data,
        databases.results,
        job.model_config,
        job.reference_hour,
        latest=job.latest_reference,
        version=job.reference_version,
    )


def _not_reread() -> Any:
    raise RuntimeError("a day or week is merged from stored hourly profiles: its rows are not reread")


def read_window(
    databases: Databases, job: WindowJob, reference: ModelProfile | None, monitors: list[Any] | None = None
) -> WindowData:
    """Step 2: the window's profile on the reference's bins, and its rows.

    ``stream`` folds the profile block by block (flat memory; the frame is read only if a monitor
    touches it after all); ``frame`` reads the rows once and profiles that frame (completeness then
    runs on the frame); ``merged`` adds up the stored hourly profiles (days, weeks: no rows);
    ``labelled`` (the late-label refresh) keeps the stored hour and re-reads only its labelled rows
    (:func:`driftline.tasks.relabel.relabelled_profile`), else streams the hour. ``auto`` is
    ``frame`` when one of ``monitors`` reads rows, else ``stream``.
    """
    config, window = job.model_config, job.window
    source = job.source
    if source == "auto":
        source = "frame" if monitors is not None and reads_rows(monitors) else "stream"
    if source == "merged":
        hourly = (
            []
            if reference is None
            else load_window_profiles(
                databases.results, job.model, reference.stored_definition(), reference, window.start, window.end
            )
        )
        merged = reduce(lambda a, b: a.merge(b), hourly) if hourly else ModelProfile(0)
        return WindowData(merged, WindowRows(_not_reread), len(hourly), "merged")
    if source == "frame":
        frame = read_rows(databases.data, config, window.start, window.end)
        return WindowData(profile_window(frame, reference, config), WindowRows(frame), source="frame")

    def rows() -> Any:
        return read_rows(databases.data, config, window.start, window.end)

    if source == "labelled":
        relabelled = relabelled_profile(databases, config, window, reference)
        if relabelled is not None:
            return WindowData(relabelled, WindowRows(rows), source="labelled")
    current = stream_window_profile(databases.data, config, window, reference)
    return WindowData(current, WindowRows(rows), source="stream")


def judging_reference(databases: Databases, job: WindowJob, reference: ModelProfile | None) -> ModelProfile | None:
    """Step 3: what the window is judged against: ``reference``, or with ``seasonal_reference``
    configured the same hour of the day/week over the last N, merged from stored hourly profiles."""
    if not job.seasonal or job.model_config.seasonal_reference is None or reference is None:
        return reference
    return seasonal_reference(databases.results, job.model_config, reference, job.window)


@dataclass
class Evaluation:
    """What :func:`evaluate_window` gives: the results and the context the monitors saw."""

    results: list[Result]
    context: WindowContext
    kinds: set[Kind] = field(default_factory=set)


def evaluate_window(
    job: WindowJob,
    data: WindowData,
    choice: ReferenceChoice,
    monitors: list[Any],
    databases: Databases | None = None,
    *,
    judged_against: ModelProfile | None = None,
    logger: Any = None,
    run: Callable[[Any, WindowContext], list[Result]] = run_monitor,
) -> Evaluation:
    """Step 4: every monitor over one ``WindowContext`` (each guarded: a failure is its own
    ``unknown`` result), the realised and estimated performance judged as one family, and (hours)
    the realised metric put beside each estimate. ``judged_against`` defaults to the choice's
    profile; ``run`` runs one monitor (``run_monitor_task`` to see each in Prefect's UI).

    Results of a day or week carry its resolution and, in ``details``, the hours merged and the
    reference version.
    """
    judged_against = choice.profile if judged_against is None else judged_against
    context = WindowContext(
        job.model_config,
        job.window,
        data.rows,
        judged_against,
        data.current,
        databases.data if databases is not None else None,
        databases.results if databases is not None else None,
        logger=logger,
        reference_version=choice.version,
        reference_reason=choice.reason,
    )
    results = [r for monitor in monitors for r in run(monitor, context)]
    if job.resolution != "hour":
        results = [replace(r, resolution=job.resolution) for r in results]
    # Realised and estimated performance are one family of the window before the estimates get
    # the realised values beside them (days and weeks: judged, without the realised beside them).
    results = judge_window_performance(results, job.model_config)
    if job.resolution == "hour":
        results = attach_realised(results)
    seasonal = judged_against.fitted.seasonal if judged_against is not None else None
    if seasonal is not None:
        for r in results:
            if r.kind in (Kind.DATA_DRIFT, Kind.CONCEPT_DRIFT):
                r.details["seasonal_reference"] = seasonal.as_details()
    if job.resolution != "hour":
        for r in results:
            r.details["hours"] = data.hours
            r.details["reference_version"] = choice.version.version
    kinds = {m.kind for m in monitors} | {r.kind for r in results}
    return Evaluation(results, context, kinds)


def hold_back_alerts(databases: Databases, job: WindowJob, results: list[Result]) -> list[Result]:
    """Step 5 (opt-in ``alert_after``): an alert pages only when it reached the alert level in k of
    the last m hours (counted over the windows before this one); else it is held at warning."""
    if job.model_config.alert_after is None:
        return results
    earlier = recent_alert_counts(databases.results, job.model_config, job.window)
    return apply_persistence(job.model_config, results, earlier)


def labelled_in(frame: Any, model_config: ModelConfig) -> int | None:
    """Labelled rows of a frame; None without a label column."""
    label = model_config.label_field
    if label is None or label not in frame:
        return None
    return int(frame[label].notna().sum())


def labelled_in_profile(profile: ModelProfile, model_config: ModelConfig) -> int | None:
    """``labelled_in`` from a window's profile: the labelled rows its performance or concept state
    counted, else the label's non-null values (the label is profiled as a target column, with a reference)."""
    label = model_config.label_field
    if label is None:
        return None
    for state in (profile.states.get(PERFORMANCE_STATE), profile.states.get(CONCEPT_STATE)):
        if isinstance(state, WindowPerformance):
            return state.overall.labelled if state.label_present else None
        if isinstance(state, RelationState):
            return state.labelled
    feature = profile.features.get(label)
    if feature is None:
        return None
    return profile.row_count - feature.nulls


def labelled_rows(data: WindowData, model_config: ModelConfig) -> int | None:
    """The window's labelled rows: counted on the frame when it was read, else from the profile."""
    if data.rows.loaded:
        return labelled_in(data.rows.get(), model_config)
    return labelled_in_profile(data.current, model_config)


def save_results(
    databases: Databases,
    job: WindowJob,
    data: WindowData,
    results: list[Result],
    kinds: set[Kind],
    *,
    duration_s: float = 0.0,
    reference_version: int | None = None,
    label_checksum: str | None = None,
) -> int:
    """Step 6: replace the window's results of ``kinds`` and mark its run succeeded, in one
    transaction (an hour also records its labelled rows for the late-label refresh)."""
    return save_window(
        databases.results,
        job.model,
        job.window,
        results,
        kinds,
        data.current.row_count,
        duration_s,
        labelled_rows(data, job.model_config) if job.resolution == "hour" else None,
        resolution=job.resolution,
        reference_version=reference_version,
        label_checksum=label_checksum,
    )


def store_hour_profile(databases: Databases, job: WindowJob, reference: ModelProfile | None, data: WindowData) -> None:
    """Step 6: the hour's profile (with its states), which days and weeks merge; none without a reference."""
    if reference is None or job.resolution != "hour":
        return
    store_window_profile(databases.results, job.model, reference.stored_definition(), job.window, data.current)


window_reference_task = task(window_reference, name="reference-profile", **RETRY_TRANSIENT)
read_window_task = task(read_window, name="read-window", **RETRY_TRANSIENT)
judging_reference_task = task(judging_reference, name="judging-reference", **RETRY_TRANSIENT)
hold_back_alerts_task = task(hold_back_alerts, name="alert-persistence", **RETRY_TRANSIENT)
save_results_task = task(save_results, name="persist-window", **RETRY_TRANSIENT)
store_hour_profile_task = task(store_hour_profile, name="store-window-profile", **RETRY_TRANSIENT)
