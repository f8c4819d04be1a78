"""Reports people look at: one self-contained HTML file per model and period, and a Prefect link to it.

``write_report(results_engine, config, model, start, end, out)`` writes the file (see
:mod:`driftline.tasks.report.html`); ``publish_report_link(key, path_or_url)`` points a Prefect link
artifact at it. The batch comparison's report is :func:`driftline.tasks.compare.compare_report`.
"""

from driftline.tasks.report.html import ReportError, render_report, write_report
from driftline.tasks.report.prefect import publish_report_link

__all__ = ["ReportError", "publish_report_link", "render_report", "write_report"]
