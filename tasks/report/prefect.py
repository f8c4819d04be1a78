"""Point Prefect at a report: a link artifact (Prefect UI -> Artifacts, or ``prefect artifact inspect KEY``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast
from uuid import UUID


def artifact_key(key: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", key.lower()).strip("-")
    return cleaned or "driftline-report"


def report_link(path_or_url: str | Path) -> str:
    """An ``http(s)://`` URL as given; a local path as an absolute ``file://`` URI."""
    text = str(path_or_url)
    if re.match(r"^https?://", text, re.IGNORECASE):
        return text
    return Path(text).expanduser().resolve().as_uri()


def publish_report_link(key: str, path_or_url: str | Path, description: str | None = None) -> UUID:
    """Create a Prefect link artifact ``key`` pointing at the report; returns the artifact id."""
    from prefect.artifacts import create_link_artifact

    link = report_link(path_or_url)
    artifact_id = create_link_artifact(  # synchronous here: a UUID, not a coroutine
        link=link,
        link_text=Path(link).name if link.startswith("file:") else link,
        key=artifact_key(key),
        description=description or "Driftline report",
    )
    return cast(UUID, artifact_id)
