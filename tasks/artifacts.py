"""What a person sees in the Prefect UI: one table artifact per model and window."""

from __future__ import annotations

import re

from prefect import task
from prefect.artifacts import create_table_artifact

from driftline.core.results import Result, Status, window_verdict
from driftline.core.window import Window
from driftline.tasks._prefect import NO_RETRIES


def artifact_key(model: str) -> str:
    """Prefect keys allow lowercase letters, digits and dashes only."""
    return "driftline-" + re.sub(r"[^a-z0-9-]", "-", model.lower())


def summary_rows(results: list[Result]) -> list[dict[str, object]]:
    """Non-ok results first (most severe first), then the rest; values rounded for reading."""
    order = {Status.ALERT: 0, Status.WARNING: 1, Status.UNKNOWN: 2, Status.OK: 3}
    ranked = sorted(results, key=lambda r: (order[r.status], str(r.kind), r.feature or "", r.metric))
    return [
        {
            "status": str(r.status),
            "kind": str(r.kind),
            "feature": r.feature or "",
            "metric": r.metric,
            "value": None if r.value is None else round(r.value, 4),
            "threshold": None if r.threshold is None else round(r.threshold, 4),
            "reason": str(r.details.get("reason", "")),
        }
        for r in ranked
    ]


def publish_summary(model: str, window: Window, results: list[Result], report: str | None = None) -> str:
    """Create the table artifact (its description links the report when there is one); returns its key."""
    key = artifact_key(model)
    verdict = window_verdict(results)
    description = f"Driftline {model} {window.label()}: {verdict} ({len(results)} results)"
    if report:
        link = report if report.startswith(("http://", "https://")) else f"file://{report}"
        description += f" · [report]({link})"
    create_table_artifact(key=key, table=summary_rows(results), description=description)
    return key


publish_summary_task = task(publish_summary, name="publish-summary", **NO_RETRIES)
