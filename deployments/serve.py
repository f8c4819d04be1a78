"""Serve Driftline's flows from one long-running process (no work pool needed)."""

from __future__ import annotations

from typing import Any

from driftline.deployments.declared import runner_deployments


def build_deployments(config_path: str, cron: str | None = None) -> list[Any]:
    """The declared deployments (``deployments/declared.py``) for ``config_path``: ``monitor-all`` on
    its hourly UTC cron (or ``cron``), the rest on demand."""
    return runner_deployments(config_path, cron)


def serve_forever(config_path: str, cron: str | None = None) -> None:
    from prefect import serve

    serve(*build_deployments(config_path, cron), limit=4)
