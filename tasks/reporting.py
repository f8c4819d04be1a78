"""The per-run report step: rewrite the model's report and link it from the Prefect UI (opt-in).

Set ``DRIFTLINE_REPORTS_DIR`` (and ``DRIFTLINE_REPORTS_URL`` where that folder is published) and
every hourly run rewrites ``<dir>/<model>.html`` over the last 7 days and creates a link artifact
``driftline-<model>-report``. Slack messages link to it through ``notifications.report_url``.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import task
from sqlalchemy.engine import Engine

from driftline.config.monitors import MonitorsConfig
from driftline.core.settings import Settings
from driftline.core.window import Window
from driftline.tasks._prefect import NO_RETRIES

REPORT_PERIOD = timedelta(days=7)


def report_location(settings: Settings, model: str) -> str | None:
    """Where the model's report is read: the published URL, else the file path; ``None`` when off."""
    if settings.reports_dir is None:
        return None
    if settings.reports_url:
        return f"{settings.reports_url.rstrip('/')}/{model}.html"
    return str((settings.reports_dir / f"{model}.html").expanduser().resolve())


def refresh_report(
    results_engine: Engine, data_engine: Engine, config: MonitorsConfig, model: str, window: Window, settings: Settings
) -> str | None:
    """Rewrite the report and publish its link; returns the link, or ``None`` when reports are off.

    A report that cannot be written is logged by the caller and never fails the window."""
    from driftline.tasks.report import publish_report_link, write_report

    location = report_location(settings, model)
    if location is None or settings.reports_dir is None:
        return None
    folder = settings.reports_dir.expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    write_report(
        results_engine,
        config,
        model,
        window.end - REPORT_PERIOD,
        window.end,
        folder / f"{model}.html",
        settings.reports_url,
        data_engine=data_engine,
    )
    publish_report_link(f"driftline-{model}-report", location, f"Driftline {model}: last 7 days to {window.label()}")
    return location


refresh_report_task = task(refresh_report, name="refresh-report", **NO_RETRIES)
