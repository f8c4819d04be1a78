"""``driftline demo``: seed the demo log, monitor its day hour by hour, print what happened."""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from driftline.cli.demo import DAY_END, DAY_START, demo_config, seed_demo
from driftline.config.monitors import parse_config
from driftline.core.results import Kind, Result, Status, window_verdict
from driftline.core.settings import load_settings
from driftline.core.window import hourly_windows
from driftline.storage.connections import EMBEDDED_PREFIX, open_databases


def run_demo(home: Path | None, console: Console, progress_console: Console) -> None:
    settings = load_settings()
    base = (home or settings.home).expanduser().resolve() / "demo"
    base.mkdir(parents=True, exist_ok=True)
    embedded = settings.database_url is None
    raw = demo_config(f"{EMBEDDED_PREFIX}{base / 'pgdata'}" if embedded else None)
    config_file = base / "monitors.yaml"
    config_file.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    config = parse_config(raw, str(config_file))

    started = time.perf_counter()
    where = f"embedded PostgreSQL in {base / 'pgdata'}" if embedded else "the database in DRIFTLINE_DATABASE_URL"
    console.print(f"[bold]Driftline demo[/] - using {escape(where)}")
    databases = open_databases(config)
    counts = seed_demo(databases.data)
    console.print(
        f"seeded {counts['loan']:,} loan and {counts['eta']:,} eta predictions "
        f"(reference week {config.models[0].reference.start:%Y-%m-%d}..{DAY_START:%Y-%m-%d}, "
        f"then the monitored day {DAY_START:%Y-%m-%d})"
    )

    from driftline.flows.monitor import monitor_all
    from driftline.storage.results import load_results

    windows = list(hourly_windows(DAY_START, DAY_END))
    failures: list[str] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=progress_console,
        transient=True,
    ) as progress:
        bar = progress.add_task("monitoring", total=len(windows))
        for number, window in enumerate(windows, 1):
            progress.update(bar, description=f"monitor-all {window.label()}")
            began = time.perf_counter()
            outcome = monitor_all(window.end, str(config_file))
            failures += [f"{m} {window.label()}: {why}" for m, why in outcome["failed"].items()]
            if not progress_console.is_terminal:  # cron, CI, a pipe: one line per window instead of a bar
                verdicts = [f"{m}={o['status']}" for m, o in outcome["succeeded"].items()]
                verdicts += [f"{m}=failed" for m in outcome["failed"]]
                progress_console.print(
                    f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} [{number}/{len(windows)}] monitor-all {window.label()} "
                    f"{' '.join(verdicts)} ({time.perf_counter() - began:.1f} s)",
                    highlight=False,
                    markup=False,
                    soft_wrap=True,
                )
            progress.advance(bar)

    for model in config.models:
        rows = load_results(databases.results, model.name, DAY_START, DAY_END)
        console.print(_summary_table(model.name, rows))
    for failure in failures:
        console.print(f"[bold magenta]failed[/] {escape(failure)}")

    from driftline.tasks.report import write_report

    reports = []
    for model in config.models:
        reports.append(
            write_report(
                databases.results,
                config,
                model.name,
                DAY_START,
                DAY_END,
                base / f"report-{model.name}.html",
                data_engine=databases.data,
            )
        )
    elapsed = time.perf_counter() - started
    console.print(f"\nMonitored {len(windows)} hours x {len(config.models)} models in {elapsed:.0f} s.")
    console.print("[bold]Where to look next[/]")
    for path in reports:
        console.print(
            f"  open {escape(str(path))}   (offline HTML report: verdict heatmap, distributions, performance, health)"
        )
    console.print(
        f"  driftline results --config {escape(str(config_file))} --model loan "
        f"--start {DAY_START:%Y-%m-%dT12:00Z} --end {DAY_START:%Y-%m-%dT14:00Z} --format table"
    )
    console.print(
        f"  driftline results --config {escape(str(config_file))} --model eta --kind data_drift --format json"
    )
    console.print(
        f"  driftline run --config {escape(str(config_file))} --start {DAY_START:%Y-%m-%dT00:00Z} "
        f"--end {DAY_END:%Y-%m-%dT00:00Z}   (a rerun replaces, never duplicates)"
    )
    console.print(
        "  Prefect UI: start `prefect server start`, set PREFECT_API_URL, rerun - each window leaves "
        "a 'driftline-<model>' artifact"
    )


def _describe_hour(results: list[Result]) -> tuple[str, str]:
    """Verdict and what was flagged in one hour, e.g. ``income (psi 0.41); concept: score``."""
    verdict = window_verdict(results)
    flagged = [r for r in results if r.status in (Status.ALERT, Status.WARNING)]
    by_feature: dict[str, list[Result]] = defaultdict(list)
    for r in flagged:
        if r.kind == Kind.DATA_DRIFT and r.feature:
            by_feature[r.feature].append(r)
    parts = []
    for feature, rows in sorted(by_feature.items(), key=lambda kv: -max(r.value or 0 for r in kv[1])):
        shown = next((r for r in rows if r.metric == "psi"), rows[0])
        parts.append(f"{feature} ({shown.metric} {shown.value:.2f})" if shown.value is not None else feature)
    labels = {
        Kind.CONCEPT_DRIFT: "concept",
        Kind.PERFORMANCE: "performance",
        Kind.DATA_QUALITY: "quality",
        Kind.OPERATIONAL: "health",
    }
    for kind, label in labels.items():
        names = []
        for r in flagged:
            if r.kind != kind:
                continue
            metric = r.metric.removeprefix("expect_column_values_to_").removeprefix("expect_")
            names.append(
                f"{metric}({r.feature})" if r.feature and kind != Kind.CONCEPT_DRIFT else (r.feature or metric)
            )
        if names:
            parts.append(f"{label}: {', '.join(dict.fromkeys(names))}")
    if any(r.metric == "row_count" and r.value == 0 for r in results):
        parts.append("no rows logged in this hour")
    return str(verdict), "; ".join(parts)


def _summary_table(model: str, results: list[Result]) -> Table:
    styles = {"ok": "green", "warning": "yellow", "alert": "bold red", "unknown": "dim"}
    table = Table(title=f"{escape(model)}: one day, hour by hour", title_justify="left")
    table.add_column("hour (UTC)")
    table.add_column("rows", justify="right")
    table.add_column("verdict")
    table.add_column("what was flagged (drift: by how much)")
    by_hour: dict[object, list[Result]] = defaultdict(list)
    for r in results:
        by_hour[r.window_start].append(r)
    for start in sorted(by_hour):
        hour = by_hour[start]
        rows = next((r.value for r in hour if r.metric == "row_count"), None)
        verdict, what = _describe_hour(hour)
        table.add_row(
            f"{start:%m-%d %H:%M}",
            "" if rows is None else f"{rows:.0f}",
            f"[{styles[verdict]}]{verdict}[/]",
            escape(what),
        )
    return table
