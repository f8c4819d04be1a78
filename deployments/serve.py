"""Serve Driftline's flows from one long-running process (no work pool needed)."""

from __future__ import annotations

from typing import Any

from prefect.schedules import Cron

from driftline.deployments.up import closed_loop_deployments
from driftline.flows.monitor import backfill, monitor_all

HOURLY_AT_MINUTE_5 = "5 * * * *"


def build_deployments(config_path: str, cron: str = HOURLY_AT_MINUTE_5) -> list[Any]:
    """``monitor-all`` on an hourly UTC cron, an on-demand ``backfill``, and the closed loop's
    ``retrain-request``, ``retrain`` and ``promote``, all for ``config_path``."""
    return [
        monitor_all.to_deployment(
            name="monitor-all",
            schedules=[Cron(cron, timezone="UTC")],
            parameters={"config_path": config_path},
            description="Every configured model for the hour that just ended.",
        ),
        backfill.to_deployment(
            name="backfill",
            parameters={"config_path": config_path},
            description="One model over [start, end) hour by hour.",
        ),
        *closed_loop_deployments(config_path),
    ]


def serve_forever(config_path: str, cron: str = HOURLY_AT_MINUTE_5) -> None:
    from prefect import serve

    serve(*build_deployments(config_path, cron), limit=4)
