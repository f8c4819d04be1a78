"""What a report shows, read from the results store (and optionally the prediction log)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from driftline.config.monitors import ModelConfig
from driftline.core.errors import DriftlineError
from driftline.core.results import Kind, Result
from driftline.core.window import Window, optional_instant
from driftline.stats.model_profile import ModelProfile, window_model_profile
from driftline.storage.profiles import latest_reference_profile, load_reference
from driftline.storage.results import load_results
from driftline.storage.runs import load_runs
from driftline.tasks.extract import read_rows
from driftline.tasks.references import ReferenceVersion, reference_versions, resolve_reference


@dataclass
class ReportData:
    """Everything one report is drawn from."""

    model: ModelConfig
    start: datetime | None
    end: datetime | None
    results: list[Result]
    runs: list[dict[str, Any]] = field(default_factory=list)
    reference: ModelProfile | None = None
    #: Why the reference histograms are missing or come from an older definition, if so.
    reference_note: str | None = None
    #: The window whose rows were re-read to draw window distributions (the period's latest).
    overlay_window: Window | None = None
    overlay: ModelProfile | None = None
    overlay_note: str | None = None
    #: Promoted reference versions in effect during the period (oldest first); none: the configured one only.
    reference_versions: list[ReferenceVersion] = field(default_factory=list)


def reference_profile(
    engine: Engine, model_config: ModelConfig, window_start: datetime | None = None
) -> tuple[ModelProfile | None, str | None]:
    """The reference profile ``window_start``'s window was judged against (``resolve_reference``: the
    version in effect at its start; ``None``: the one in effect now), else the model's most recent
    stored one (with a note). A promoted version is named in the note."""
    if window_start is not None or not model_config.reference.rolling:
        version = resolve_reference(engine, model_config, window_start)
        current = load_reference(
            engine, model_config.name, version.apply(model_config).reference_definition(window_start)
        )
        if current is not None:
            return current, None if version.configured else describe_version(version)
    latest = latest_reference_profile(engine, model_config.name)
    if latest is None:
        return None, "no reference profile is stored for this model yet (a monitor run fits it)"
    profile, reference_start, reference_end = latest
    note = (
        "the stored reference profile was fitted for an earlier configuration "
        f"(reference {reference_start:%Y-%m-%d %H:%M}..{reference_end:%Y-%m-%d %H:%M} UTC)"
    )
    return profile, note


def describe_version(version: ReferenceVersion) -> str:
    """One line: "reference version 2 (model v3), effective from ..: <range> UTC (warm-up)"."""
    model_version = f" (model {version.model_version})" if version.model_version else ""
    effective = f"{version.effective_from:%Y-%m-%d %H:%M}" if version.effective_from else "-"
    warmup = ", the new model's first hours (warm-up)" if version.warmup else ""
    return (
        f"reference version {version.version}{model_version}, effective from {effective} UTC: "
        f"{version.start:%Y-%m-%d %H:%M}..{version.end:%Y-%m-%d %H:%M} UTC{warmup}"
    )


_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)[^@\s]+@")


def redact(text: str) -> str:
    """Hide passwords of URLs that an error message may carry (``scheme://user:***@host``)."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + "***@", text)


def _safe_reason(exc: Exception) -> str:
    """One line, no SQL and no connection string."""
    if isinstance(exc, DriftlineError):
        return str(exc).splitlines()[0]
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else type(exc).__name__
    return redact((text.strip().splitlines() or [type(exc).__name__])[0])


def window_overlay(
    data_engine: Engine, model_config: ModelConfig, reference: ModelProfile, window: Window
) -> tuple[ModelProfile | None, str | None]:
    """Profile of one window's rows on the reference's bins, re-read from the prediction log."""
    try:
        frame = read_rows(data_engine, model_config, window.start, window.end)
    except (DriftlineError, sa.exc.SQLAlchemyError) as exc:
        return None, f"window rows could not be read: {_safe_reason(exc)}"
    present = [c for c in reference.features if c in frame.columns]
    if not present:
        return None, "the window's rows have none of the profiled columns"
    subset = ModelProfile(reference.row_count, {c: reference.features[c] for c in present})
    return window_model_profile(frame, subset), None


def load_report_data(
    results_engine: Engine,
    model_config: ModelConfig,
    start: datetime | str | None,
    end: datetime | str | None,
    data_engine: Engine | None = None,
) -> ReportData:
    """Results, run log and reference profile of one model for windows starting in ``[start, end)``.

    With ``data_engine`` the rows of the period's latest drift window are re-read from the prediction
    log and profiled on the reference's bins, so the report can overlay window and reference
    distributions (window profiles are not stored; only their results are).
    """
    begin, stop = optional_instant(start), optional_instant(end)
    results = load_results(results_engine, model_config.name, begin, stop)
    data = ReportData(
        model=model_config,
        start=begin,
        end=stop,
        results=results,
        runs=load_runs(results_engine, model_config.name, begin, stop),
    )
    drift_windows = [r for r in results if r.kind == Kind.DATA_DRIFT]
    if drift_windows:
        latest = max(drift_windows, key=lambda r: r.window_start)
        data.overlay_window = Window(latest.window_start, latest.window_end)
    # The distributions are drawn against the reference the period's latest window was judged with.
    data.reference, data.reference_note = reference_profile(
        results_engine, model_config, data.overlay_window.start if data.overlay_window else None
    )
    data.reference_versions = [
        v for v in reference_versions(results_engine, model_config) if stop is None or (v.effective_from or stop) < stop
    ]
    if data_engine is None:
        data.overlay_note = "window distributions are not shown: the report was made without the prediction log"
    elif data.reference is None or data.overlay_window is None:
        data.overlay_note = "window distributions need a reference profile and at least one drift window"
    else:
        data.overlay, data.overlay_note = window_overlay(data_engine, model_config, data.reference, data.overlay_window)
    return data
