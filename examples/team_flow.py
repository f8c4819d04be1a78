"""A platform team's own Prefect flow composed from Driftline's tasks.

It monitors one model for the last hour with the steps of Driftline's one window pipeline
(``driftline.tasks.pipeline``: the same steps the hourly run, the late-label refresh and day/week
merges take), adds its own step (here: a business KPI check written as a monitor), persists
everything in Driftline's results store, and is served on its own schedule:

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
from driftline.tasks.extract import verify_columns_task
from driftline.tasks.monitors import monitors_for, run_monitor_task
from driftline.tasks.pipeline import (
    WindowJob,
    evaluate_window,
    hold_back_alerts_task,
    judging_reference_task,
    read_window_task,
    save_results_task,
    store_hour_profile_task,
    window_reference_task,
)
from driftline.tasks.store import claim_run_task


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
    # One window, as Driftline's own flows describe it: the model, the hour, and how its rows are
    # read (a frame: the team's KPI reads the rows).
    job = WindowJob(model_config, Window.hour_ending(window_end), source="frame")
    started = time.perf_counter()
    claim_run_task(databases.results, model, job.window)
    verify_columns_task(databases.data, model_config)
    choice = window_reference_task(databases, job)
    data = read_window_task(databases, job, choice.profile)
    monitors = [*monitors_for(model_config), FunctionMonitor("approval_rate", Kind.PERFORMANCE, approval_rate)]
    judged_against = judging_reference_task(databases, job, choice.profile)  # seasonal_reference, if configured
    evaluation = evaluate_window(
        job, data, choice, monitors, databases, judged_against=judged_against, run=run_monitor_task
    )
    results = hold_back_alerts_task(databases, job, evaluation.results)
    save_results_task(databases, job, data, results, evaluation.kinds, duration_s=time.perf_counter() - started)
    store_hour_profile_task(databases, job, choice.profile, data)  # the team's hours merge into days too
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
