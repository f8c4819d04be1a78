"""A platform team's own Prefect flow composed from Driftline's tasks.

It monitors one model for the last hour with Driftline's steps, adds its own step (here: a
business KPI check written as a monitor), persists everything in Driftline's results store, and is
served on its own schedule:

    DRIFTLINE_DATABASE_URL=postgresql+psycopg://... python examples/team_flow.py --config monitors.yaml --model loan
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime

from prefect import flow, get_run_logger, task

from driftline.config.monitors import load_config
from driftline.core.results import Kind, Result, Status
from driftline.core.window import Window
from driftline.storage.connections import open_databases
from driftline.tasks.context import FunctionMonitor, WindowContext
from driftline.tasks.extract import read_rows_task, verify_columns_task
from driftline.tasks.monitors import monitors_for, run_monitor_task
from driftline.tasks.profiles import ensure_reference_task, profile_window_task
from driftline.tasks.store import claim_run_task, save_window_task


def approval_rate(context: WindowContext) -> list[Result]:
    """The team's KPI: share of positive predictions, alert below 20%."""
    frame = context.frame
    if frame.empty:
        return [
            context.result(
                kind=Kind.PERFORMANCE,
                metric="approval_rate",
                feature=None,
                value=None,
                threshold=0.2,
                status=Status.UNKNOWN,
                details={"reason": "no rows"},
            )
        ]
    rate = float((frame[context.model.prediction_column] > 0.5).mean())
    return [
        context.result(
            kind=Kind.PERFORMANCE,
            metric="approval_rate",
            feature=None,
            value=rate,
            threshold=0.2,
            status=Status.ALERT if rate < 0.2 else Status.OK,
            details={"rows": len(frame)},
        )
    ]


@task
def notify_team(model: str, results: list[Result]) -> int:
    alerts = [r for r in results if r.status == Status.ALERT]
    get_run_logger().info("%s: %d alerts", model, len(alerts))
    return len(alerts)


@flow(name="team-loan-monitoring")
def team_monitoring(config_path: str, model: str, window_end: datetime | None = None) -> int:
    config = load_config(config_path)
    model_config = config.model(model)
    databases = open_databases(config)
    window = Window.hour_ending(window_end)
    started = time.perf_counter()
    claim_run_task(databases.results, model, window)
    verify_columns_task(databases.data, model_config)
    reference = ensure_reference_task(databases.data, databases.results, model_config, window)
    frame = read_rows_task(databases.data, model_config, window.start, window.end)
    current = profile_window_task(frame, reference, model_config)
    context = WindowContext(model_config, window, frame, reference, current, databases.data, databases.results)
    monitors = [*monitors_for(model_config), FunctionMonitor("approval_rate", Kind.PERFORMANCE, approval_rate)]
    results = [r for monitor in monitors for r in run_monitor_task(monitor, context)]
    save_window_task(
        databases.results, model, window, results, {m.kind for m in monitors}, len(frame), time.perf_counter() - started
    )
    return notify_team(model, results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--serve", action="store_true", help="serve hourly at minute 20 instead of running once")
    args = parser.parse_args()
    if args.serve:
        team_monitoring.serve(
            name="team-loan-hourly", cron="20 * * * *", parameters={"config_path": args.config, "model": args.model}
        )
    else:
        team_monitoring(args.config, args.model)
