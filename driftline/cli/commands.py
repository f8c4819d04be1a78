"""The ``driftline`` command line: demo, run, results, db upgrade, validate.

Prefect and the flows are imported inside the commands, after the log level is set, so ``--help``
is fast and nothing starts at import time.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from driftline.cli.output import STATUS_STYLE
from driftline.core.errors import DriftlineError
from driftline.deployments.declared import HOURLY_AT_MINUTE_5, WORK_POOL

app = typer.Typer(
    name="driftline",
    help="Model monitoring on Prefect: drift, performance, completeness and health of your prediction log.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="Manage Driftline's results schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
notify_app = typer.Typer(help="Notification channels.", no_args_is_help=True)
app.add_typer(notify_app, name="notify")

console = Console()
error_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="monitors.yaml (default: $DRIFTLINE_CONFIG or ./monitors.yaml)")
]
StartOption = Annotated[str | None, typer.Option("--start", help="ISO 8601 start (inclusive, UTC if no zone)")]
EndOption = Annotated[str | None, typer.Option("--end", help="ISO 8601 end (exclusive)")]
CronOption = Annotated[str, typer.Option("--cron", help="Schedule of monitor-all (UTC)")]


def _print_version(value: bool) -> None:
    if value:
        from driftline import __version__

        console.print(f"driftline {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit"),
    ] = False,
) -> None:
    """Model monitoring on Prefect: drift, performance, completeness and health of your prediction log."""


FailOnOption = Annotated[
    str | None,
    typer.Option(
        "--fail-on",
        help="Exit 3 if any verdict is at least this severe: warning or alert (for CI jobs and cron)",
    ),
]


def _fail_on_level(level: str | None) -> str | None:
    from driftline.core.errors import ConfigError

    if level is not None and level not in ("warning", "alert"):
        raise ConfigError(f"--fail-on must be warning or alert, not {level!r}")
    return level


def _plain(value: object) -> str:
    """Text from a config, the data or an error, escaped so rich prints it as it is: a column named ``[/]``
    must not crash the summary, and ``[link=...]`` must not become a hyperlink."""
    return escape(str(value))


def _fail(message: str) -> None:
    error_console.print(f"[bold red]error:[/] {_plain(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def one_line_errors(command: F) -> F:
    """Print Driftline and database errors as one line and exit 2, instead of a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import sqlalchemy as sa

        try:
            return command(*args, **kwargs)
        except DriftlineError as exc:
            _fail(str(exc))
        except sa.exc.OperationalError as exc:
            _fail(f"database error: {str(exc.orig).strip().splitlines()[0] if exc.orig else exc}")

    return wrapper  # type: ignore[return-value]


def _quiet_prefect(verbose: bool) -> None:
    """Prefect logs every task at INFO; the CLI shows its own progress instead.

    Only Prefect's console handler is quieted: flow- and task-run logs still reach the Prefect API at
    INFO, so runs started from the command line show their logs in the Prefect UI."""
    if not verbose and "PREFECT_LOGGING_LEVEL" not in os.environ:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # A PREFECT_HOME that cannot be created gets Driftline's one-line error (with the fix) instead.
    warnings.filterwarnings("ignore", message="Failed to create the Prefect home directory")
    # Prefect's client retries a dead API with 2, 4, 8, 16, 32 s waits per request: a lost API held one
    # window ~4 minutes. Two retries (6 s) ride out a blip; after that the run goes on without Prefect.
    os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", "2")


def _quiet_run_failures(verbose: bool) -> None:
    """One line per failed window on the console; Prefect's tracebacks only with --verbose (they are
    always in the flow run's logs on the Prefect API)."""
    if not verbose:
        from driftline.cli.prefect_api import quiet_run_failures

        quiet_run_failures()


class _PrefectLink:
    """The run's Prefect API: checked before each window; once lost, the rest runs without Prefect."""

    def __init__(self, verbose: bool = False) -> None:
        from driftline.cli.prefect_api import ensure_api

        self.verbose = verbose
        self.url, self.up = ensure_api(lambda line: error_console.print(line, highlight=False, markup=False))
        self.lost_at: str | None = None
        self.without: int = 0
        if not self.up:
            self.lose("the start")

    def check(self) -> bool:
        from driftline.cli.prefect_api import api_is_healthy

        if self.up and not api_is_healthy(self.url):
            self.up = False
        return self.up

    def lose(self, where: str) -> None:
        if self.lost_at is None:
            error_console.print(
                f"Prefect API unreachable ({self.url}) at {where}: monitoring goes on without Prefect",
                highlight=False,
                markup=False,
            )
            if not self.verbose:  # its retry warnings and worker errors would repeat for every window
                import logging

                for name in ("prefect", "prefect._internal", "prefect.events"):
                    logging.getLogger(name).setLevel(logging.CRITICAL)
        self.up = False
        self.lost_at = self.lost_at or where
        from driftline.tasks.events import prefect_offline

        prefect_offline(True)  # events go straight to the outbox instead of a doomed connection per window


def _warn_loudly(warnings: list[str]) -> None:
    for warning in warnings:
        error_console.print(
            f"[bold yellow on red] WARNING [/] [bold]{_plain(warning)}[/]", highlight=False, soft_wrap=True
        )


@app.command()
@one_line_errors
def validate(
    config: ConfigOption = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Check monitors.yaml only: no database connection")
    ] = False,
) -> None:
    """Check a deployment before its first run and list every problem at once (exit 2 if any).

    By default: monitors.yaml, both databases, each model's table, columns and their types, user
    monitors, and the reference's row count. --offline checks the file only."""
    from driftline.cli.checkup import check_deployment
    from driftline.storage.connections import config_path

    checkup = check_deployment(config_path(config), offline=offline)
    if checkup.problems:
        error_console.print(
            f"[bold red]{len(checkup.problems)} problem(s)[/] in {_plain(checkup.source)}:",
            highlight=False,
            soft_wrap=True,
        )
        for problem in checkup.problems:
            error_console.print(f"  - {problem}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(2)
    assert checkup.config is not None
    for model in checkup.config.models:
        fact = checkup.facts.get(model.name, "monitors.yaml only (--offline)")
        console.print(
            f"[green]ok[/] {_plain(model.name)}: {_plain(model.table)} ({model.task}, "
            f"{len(model.features.numeric)} numeric, {len(model.features.categorical)} categorical) - {_plain(fact)}",
            highlight=False,
            soft_wrap=True,
        )


@app.command()
@one_line_errors
def init(
    table: Annotated[str, typer.Option("--table", "-t", help="The prediction log: table or schema.table")],
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="PostgreSQL URL (default: $DRIFTLINE_DATABASE_URL)")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the config")] = Path("monitors.yaml"),
    name: Annotated[str | None, typer.Option("--name", help="Model name (default: from the table name)")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists")] = False,
) -> None:
    """Write a commented monitors.yaml for a prediction log, guessed from its columns and data.

    Prints every guess (column roles, classifier or regressor, the reference range); the file
    validates as written. Check it, then `driftline validate` and `driftline run`."""
    from sqlalchemy.engine import make_url

    from driftline.cli.output import wide_console
    from driftline.cli.scaffold import scaffold
    from driftline.core.errors import ConfigError
    from driftline.core.settings import load_settings
    from driftline.storage.connections import _resolve
    from driftline.storage.engine import check_connection, get_engine

    settings = load_settings()
    url = database_url or (settings.database_url.get_secret_value() if settings.database_url else None)
    if url is None:
        raise ConfigError("no database: give --database-url or set DRIFTLINE_DATABASE_URL")
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; choose another --out or add --force")
    engine = get_engine(_resolve(url))
    check_connection(engine)
    # The URL goes into the file only when given on the command line and holding no password.
    written_url = database_url if database_url and make_url(_resolve(database_url)).password is None else None
    guess, text = scaffold(engine, table, written_url, name)
    span = f"{guess.first:%Y-%m-%d %H:%M} .. {guess.last:%Y-%m-%d %H:%M} UTC"
    shown = Table(title=f"{_plain(table)}: {guess.total_rows:,} rows, {span}")
    for column in ("column", "role", "because"):
        shown.add_column(column)
    for column, role in guess.roles.items():
        shown.add_row(_plain(column), role, _plain(guess.why.get(column, "")))
    wide_console(console).print(shown)
    assert guess.reference is not None
    start, end = guess.reference
    console.print(
        f"task: {guess.task} ({_plain(guess.task_why)}); reference {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC "
        f"({guess.reference_rows:,} rows)",
        highlight=False,
        soft_wrap=True,
    )
    from driftline.config.monitors import DEFAULT_REFERENCE_MIN_ROWS

    if guess.reference_rows < DEFAULT_REFERENCE_MIN_ROWS:
        error_console.print(
            f"warning: the proposed reference has {guess.reference_rows:,} rows, fewer than reference.min_rows="
            f"{DEFAULT_REFERENCE_MIN_ROWS:,}: widen it (or set reference.min_rows) before the first run",
            highlight=False,
            soft_wrap=True,
        )
    out.write_text(text, encoding="utf-8")
    console.print(
        f"wrote {_plain(out)}; check it, then: driftline validate --config {_plain(out)}",
        highlight=False,
        soft_wrap=True,
    )


@db_app.command("upgrade")
@one_line_errors
def db_upgrade(config: ConfigOption = None) -> None:
    """Create or upgrade the results schema (Alembic migrations)."""
    from driftline.storage.connections import load_run_config, open_databases
    from driftline.storage.migrate import current_revision

    databases = open_databases(load_run_config(config), migrate=True)
    console.print(f"results schema at revision {_plain(current_revision(databases.results))}")


@db_app.command("prune")
@one_line_errors
def db_prune(
    older_than: Annotated[
        str, typer.Option("--older-than", help="Keep hourly windows younger than this: 90d, 12w or 2160h")
    ],
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing")] = False,
) -> None:
    """Delete hourly results, run-log rows and window profiles of older windows (day/week results stay)."""
    from driftline.core.window import last_full_hour_end
    from driftline.storage.connections import load_run_config, open_databases
    from driftline.storage.retention import parse_age, prune

    age = parse_age(older_than)
    databases = open_databases(load_run_config(config), migrate=True)
    cutoff = last_full_hour_end() - age
    pruned = prune(databases.results, cutoff, dry_run=dry_run)
    console.print(
        f"{'would delete' if dry_run else 'deleted'} {pruned.results:,} hourly results, {pruned.runs:,} run-log "
        f"rows and {pruned.window_profiles:,} window profiles of windows before {cutoff:%Y-%m-%d %H:%M} UTC",
        highlight=False,
    )


def _windows(start: str | None, end: str | None) -> list[Any]:
    from driftline.core.errors import ConfigError
    from driftline.core.window import Window, hourly_windows, last_full_hour_end

    if start is None and end is None:
        return [Window.hour_ending(None)]
    if start is None:
        raise ConfigError("--end needs --start")
    return list(hourly_windows(start, end or last_full_hour_end()))


@app.command()
@one_line_errors
def run(
    config: ConfigOption = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model")] = None,
    start: StartOption = None,
    end: EndOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's logs")] = False,
    resolution: Annotated[
        str, typer.Option("--resolution", help="hour; or day/week: data drift merged from stored hourly profiles")
    ] = "hour",
    fail_on: FailOnOption = None,
    rejudge_with_latest_reference: Annotated[
        bool,
        typer.Option(
            "--rejudge-with-latest-reference",
            help="Judge every window against the newest reference version, not the one in effect at its start",
        ),
    ] = False,
) -> None:
    """Monitor every hourly window in [start, end) (default: the last full hour). Reruns replace results.

    Each window is judged against the reference version in effect at its start, so rerunning history
    reproduces its stored verdicts; --rejudge-with-latest-reference re-judges it against the newest
    version instead (and stores that). With --resolution day or week, judge whole days or weeks from
    the hourly profiles the hourly runs stored (no rows are reread).

    Exit codes: 0 done; 1 a window failed; 2 bad config, database or table; 3 --fail-on met."""
    fail_on = _fail_on_level(fail_on)
    _quiet_prefect(verbose)
    from driftline.storage.connections import config_path, load_run_config, open_databases
    from driftline.tasks.extract import verify_columns
    from driftline.tasks.monitors import monitors_for

    path = config_path(config)
    loaded = load_run_config(path)
    models = [loaded.model(model)] if model else list(loaded.models)
    if resolution != "hour":
        verdicts = _run_periods(
            [m.name for m in models], resolution, start, end, str(path.resolve()), rejudge_with_latest_reference
        )
        _exit_if_flagged(verdicts, fail_on)
        return
    windows = _windows(start, end)
    databases = open_databases(loaded)
    for model_config in models:
        verify_columns(databases.data, model_config)
        monitors_for(model_config)  # user monitors import now: a bad path is a one-line error, not N failed hours
    _quiet_run_failures(verbose)
    prefect = _PrefectLink(verbose)
    from datetime import UTC, datetime

    began = datetime.now(UTC)
    outcomes = _run_windows(
        [m.name for m in models], windows, str(path.resolve()), prefect, rejudge_with_latest_reference
    )
    from driftline.flows.monitor import record_failures

    by_start = {w.start.isoformat(): w for w in windows}
    record_failures(
        loaded, [(o["model"], by_start[o["window_start"]], str(o["failed"])) for o in outcomes if o["failed"]], began
    )
    if prefect.up:  # once per run: the events sent are read back from the API (else resent by the next run)
        from driftline.tasks.notify import confirm_run_events

        events = confirm_run_events(databases.results, outcomes)
        if events["unconfirmed"]:
            error_console.print(
                f"{events['unconfirmed']} Prefect event(s) not yet stored by the API: kept in the outbox, "
                "the next run checks and sends them again",
                highlight=False,
                markup=False,
            )
    _print_outcomes(outcomes)
    failed = sum(1 for o in outcomes if o["failed"])
    if prefect.lost_at is not None:
        error_console.print(
            f"Prefect API unreachable ({prefect.url}) from {prefect.lost_at} on: {prefect.without} of "
            f"{len(outcomes)} windows ran without Prefect. Their results are stored and the run log is up to "
            "date, but they have no Prefect flow run or artifact; their events wait in the outbox for the next "
            "run that reaches Prefect.",
            highlight=False,
            markup=False,
        )
    if failed:
        error_console.print(
            f"{failed} of {len(outcomes)} windows failed (one line each above); full tracebacks: rerun with "
            "--verbose, or see the flow runs' logs in Prefect.",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(1)
    _exit_if_flagged([o["status"] for o in outcomes], fail_on)


def _exit_if_flagged(statuses: list[str], fail_on: str | None) -> None:
    """Exit with :data:`FAIL_ON_EXIT_CODE` when ``--fail-on`` is given and a verdict reaches it."""
    from driftline.cli.output import FAIL_ON_EXIT_CODE, at_or_above

    if fail_on is None:
        return
    flagged = at_or_above([{"status": s} for s in statuses], fail_on)
    if flagged:
        error_console.print(
            f"--fail-on {fail_on}: {len(flagged)} verdict(s) at {fail_on} or worse; exit {FAIL_ON_EXIT_CODE}",
            highlight=False,
        )
        raise typer.Exit(FAIL_ON_EXIT_CODE)


def _run_periods(
    models: list[str],
    resolution: str,
    start: str | None,
    end: str | None,
    config_file: str,
    rejudge_with_latest_reference: bool = False,
) -> list[str]:
    from driftline.core.errors import ConfigError
    from driftline.flows.monitor import monitor_period

    if start is None or end is None:
        raise ConfigError(f"--resolution {resolution} needs --start and --end")
    table = Table(title=f"Driftline run ({resolution})")
    for column in ("model", "period start (UTC)", "hours merged", "rows", "verdict"):
        table.add_column(column)
    verdicts: list[str] = []
    for name in models:
        for period_start, o in monitor_period(
            name, resolution, start, end, config_file, rejudge_with_latest_reference
        ).items():
            table.add_row(
                _plain(name),
                period_start[:10],
                str(o["hours"]),
                str(o["rows"]),
                f"[{STATUS_STYLE.get(o['status'], '')}]{o['status']}[/]",
            )
            verdicts.append(o["status"])
    console.print(table)
    return verdicts


def _run_windows(
    models: list[str],
    windows: list[Any],
    config_file: str,
    prefect: _PrefectLink,
    rejudge_with_latest_reference: bool = False,
) -> list[dict[str, Any]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    outcomes: list[dict[str, Any]] = []
    jobs = [(m, w) for w in windows for m in models]
    # Not on a terminal (cron, Kubernetes, CI): no progress bar, one log line per window instead.
    log_lines = not error_console.is_terminal
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=error_console,
        disable=len(jobs) < 2,
        transient=True,
    ) as progress:
        bar = progress.add_task("monitoring", total=len(jobs))
        for number, (name, window) in enumerate(jobs, 1):
            progress.update(bar, description=f"{_plain(name)} {window.label()}")
            began = time.monotonic()
            outcome = _monitor_one(name, window, config_file, prefect, rejudge_with_latest_reference)
            outcomes.append(outcome)
            if log_lines:
                error_console.print(
                    window_log_line(outcome, window, number, len(jobs), time.monotonic() - began),
                    highlight=False,
                    markup=False,
                    soft_wrap=True,
                )
            elif outcome["failed"]:  # one line per failed window; the traceback is in Prefect's logs
                progress.console.print(
                    f"[bold magenta]failed[/] {_plain(name)} {window.label()}: "
                    f"{_plain(_first_line(outcome['failed']))}",
                    highlight=False,
                    soft_wrap=True,
                )
            progress.advance(bar)
    return outcomes


def window_log_line(outcome: dict[str, Any], window: Any, number: int, total: int, seconds: float) -> str:
    """``2026-03-03T12:00:05Z [3/24] loan 2026-03-03T11:00Z..12:00Z rows=1000 verdict=alert alerts=income (1.2 s)``."""
    from datetime import UTC, datetime

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = "" if outcome.get("rows") is None else f" rows={outcome['rows']}"
    if outcome.get("failed"):
        tail = f" failed: {_first_line(outcome['failed'])}"
    else:
        alerts = outcome.get("alerts") or []
        tail = f" verdict={outcome['status']}" + (f" alerts={','.join(alerts)}" if alerts else "")
    return f"{now} [{number}/{total}] {outcome['model']} {window.label()}{rows}{tail} ({seconds:.1f} s)"


def _first_line(message: Any) -> str:
    """A failure as one line (a database error's SQL and parameters follow on later lines)."""
    return (str(message).strip().splitlines() or [""])[0]


def _monitor_one(
    name: str, window: Any, config_file: str, prefect: _PrefectLink, rejudge_with_latest_reference: bool = False
) -> dict[str, Any]:
    """One window as a Prefect flow run; without Prefect (same steps, same database writes) once the API
    is gone, so losing Prefect never stops monitoring."""
    from driftline.flows.monitor import _state_message, monitor_model, monitor_window

    def failed(message: str) -> dict[str, Any]:
        return {
            "model": name,
            "window_start": window.start.isoformat(),
            "rows": None,
            "status": "failed",
            "alerts": [],
            "failed": message,
        }

    if prefect.check():
        try:
            state = monitor_model(name, window.end, config_file, rejudge_with_latest_reference, return_state=True)
        except Exception as exc:  # the engine could not even record the run: the API went away mid-window
            state, crash = None, f"{type(exc).__name__}: {exc}"
        if state is not None and state.is_completed():
            return {**state.result(), "failed": None}
        if prefect.check():  # Prefect is fine: the window itself failed
            return failed(_state_message(state) if state is not None else crash)
        prefect.lose(window.label())
    else:
        prefect.lose(window.label())
    prefect.without += 1
    try:  # idempotent: a window half-done by the lost flow run is replaced
        outcome = monitor_window(
            name,
            window.end,
            config_file,
            as_tasks=False,
            rejudge_with_latest_reference=rejudge_with_latest_reference,
        )
        return {**outcome, "failed": None}
    except Exception as exc:
        from driftline.core.errors import DriftlineError

        return failed(str(exc) if isinstance(exc, DriftlineError) else f"{type(exc).__name__}: {exc}")


def _unknown_note(outcome: dict[str, Any]) -> str:
    """For an ``unknown`` window: which checks could not be judged (the first five)."""
    names = outcome.get("unknown") or []
    if outcome.get("status") != "unknown" or not names:
        return ""
    return "not judged: " + ", ".join(names[:5]) + (f" (+{len(names) - 5})" if len(names) > 5 else "")


def _print_outcomes(outcomes: list[dict[str, Any]]) -> None:
    table = Table(title="Driftline run", show_lines=False)
    for column in ("model", "window start (UTC)", "rows", "verdict", "alerts"):
        table.add_column(column)
    for o in outcomes:
        status = o["status"]
        table.add_row(
            _plain(o["model"]),
            o["window_start"][:16].replace("T", " "),
            str(o.get("rows", "")),
            f"[{STATUS_STYLE.get(status, '')}]{status}[/]",
            _plain(o["failed"] or ", ".join(o.get("alerts", [])) or _unknown_note(o)),
        )
    console.print(table)


@app.command()
@one_line_errors
def results(
    model: Annotated[str, typer.Option("--model", "-m", help="Model name")],
    config: ConfigOption = None,
    start: StartOption = None,
    end: EndOption = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Windows starting in the last 24h, 7d or 2w (instead of --start)")
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Every stored window (no default range)")] = False,
    kind: Annotated[
        str | None, typer.Option("--kind", help="data_drift, concept_drift, performance, data_quality or operational")
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="Only these statuses: ok, warning, alert, unknown (repeat, or comma-separate)"),
    ] = None,
    output_format: Annotated[str, typer.Option("--format", "-f", help="table, json, jsonl or csv")] = "table",
    resolution: Annotated[str, typer.Option("--resolution", help="hour, day or week")] = "hour",
) -> None:
    """Print stored results of one model for windows starting in [start, end).

    Without --start, --since or --all: the 24 hours up to the model's latest stored window (said on
    stderr). The table shows each flagged row's reason (details.reason) when there is one; piped, it is
    printed at full width."""
    from datetime import UTC, datetime, timedelta

    from driftline.cli.output import FORMATS, SEVERITY, results_table, wide_console, write_records
    from driftline.config.monitors import parse_duration
    from driftline.core.errors import ConfigError
    from driftline.core.results import Kind
    from driftline.core.window import parse_instant
    from driftline.storage.connections import load_run_config, open_databases
    from driftline.storage.results import latest_window_end, load_results

    if output_format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, not {output_format!r}")
    if resolution not in ("hour", "day", "week"):
        raise ConfigError(f"--resolution must be hour, day or week, not {resolution!r}")
    if kind is not None and kind not in {k.value for k in Kind}:
        raise ConfigError(f"--kind must be one of {', '.join(k.value for k in Kind)}, not {kind!r}")
    statuses = {part.strip() for value in status or [] for part in value.split(",") if part.strip()}
    unknown_statuses = sorted(statuses - set(SEVERITY))
    if unknown_statuses:
        raise ConfigError(f"--status must be ok, warning, alert or unknown, not {', '.join(unknown_statuses)}")
    if since is not None and start is not None:
        raise ConfigError("give --since or --start, not both")
    loaded = load_run_config(config)
    loaded.model(model)
    databases = open_databases(loaded)
    begin = parse_instant(start) if start else None
    stop = parse_instant(end) if end else None
    if since is not None:
        try:
            begin = datetime.now(UTC) - parse_duration(since)
        except ValueError as exc:
            raise ConfigError(f"--since: {exc}") from None
    elif begin is None and not everything:
        latest = stop or latest_window_end(databases.results, model, resolution)
        if latest is not None:
            begin = latest - timedelta(hours=24)
            error_console.print(
                f"windows starting {begin:%Y-%m-%d %H:%M} UTC or later (the last 24 h of results); "
                "--since, --start or --all for others",
                highlight=False,
            )
    rows = load_results(databases.results, model, begin, stop, kind, resolution)
    records = [r.as_record() for r in rows]
    if statuses:
        records = [r for r in records if r["status"] in statuses]
    if output_format != "table":
        write_records(records, output_format, sys.stdout)
        return
    wide_console(console).print(results_table(records, f"{model}: {len(records)} results"))


@app.command()
@one_line_errors
def backtest(
    model: Annotated[str, typer.Option("--model", "-m", help="Model name")],
    start: Annotated[str, typer.Option("--start", help="ISO 8601 start (inclusive, UTC if no zone)")],
    end: Annotated[str, typer.Option("--end", help="ISO 8601 end (exclusive)")],
    config: ConfigOption = None,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="A candidate setting, key=value (dotted key, YAML value); repeat"),
    ] = None,
) -> None:
    """Re-judge stored windows with candidate settings; print per kind how many windows would warn or alert.

    Reads only Driftline's stored profiles and results, never the prediction log: tune thresholds on
    history before they go live. Example: --set drift.alpha=0.005 --set performance.default_tolerance.alert=0.2
    """
    from driftline.core.errors import ConfigError
    from driftline.core.window import parse_instant
    from driftline.storage.connections import config_path, load_run_config, open_databases
    from driftline.tasks.backtest import candidate_config, run_backtest

    path = config_path(config)
    loaded = load_run_config(path)
    current = loaded.model(model)
    candidate = candidate_config(path, model, list(settings or []))
    begin, stop = parse_instant(start), parse_instant(end)
    if not begin < stop:
        raise ConfigError("--start must be before --end")
    databases = open_databases(loaded)
    outcome = run_backtest(databases.results, current, candidate, begin, stop)
    title = f"{model}: {outcome.windows} stored windows, {begin:%Y-%m-%d %H:%M} .. {stop:%Y-%m-%d %H:%M} UTC"
    table = Table(title=title)
    for column in ("kind", "windows", "warning now", "alert now", "warning candidate", "alert candidate"):
        table.add_column(column)
    for kind in sorted(set(outcome.current) | set(outcome.candidate)):
        now, then = outcome.current.get(kind), outcome.candidate.get(kind)
        table.add_row(
            kind,
            str(max(now.windows if now else 0, then.windows if then else 0)),
            str(now.warning if now else 0),
            str(now.alert if now else 0),
            str(then.warning if then else 0),
            str(then.alert if then else 0),
        )
    console.print(table)
    for note in outcome.notes:
        console.print(f"note: {note}", highlight=False)


@app.command()
@one_line_errors
def up(
    config: ConfigOption = None,
    port: Annotated[int, typer.Option("--port", help="Prefect server port")] = 4200,
    cron: CronOption = HOURLY_AT_MINUTE_5,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Start the server without its UI")] = False,
    prefect_database: Annotated[
        str, typer.Option("--prefect-database", help="Prefect's own database on the results' PostgreSQL server")
    ] = "prefect",
) -> None:
    """A complete local setup: a Prefect server on PostgreSQL, a process worker, the deployments and automations."""
    worker_log_level = os.environ.get("PREFECT_LOGGING_LEVEL", "INFO")  # before this command quiets itself
    _quiet_prefect(False)
    from driftline.deployments.up import up as start

    outcome = start(
        config,
        port=port,
        ui=not no_ui,
        cron=cron,
        prefect_database=prefect_database,
        worker_log_level=worker_log_level,
    )
    console.print(
        f"Prefect API: {outcome['api_url']}  (server pid {outcome['server_pid']}, worker pid {outcome['worker_pid']})"
    )
    console.print(f"deployments: {_plain(', '.join(outcome['deployments']))}")
    for verb, names in (outcome.get("automations") or {}).items():
        if names:
            console.print(f"automations {verb}: {_plain(', '.join(names))}")
    _warn_loudly(outcome.get("warnings", []))
    console.print(f"Prefect UI: {outcome['api_url'].removesuffix('/api')}")
    console.print(f"export PREFECT_API_URL={outcome['api_url']}   # then `driftline run`, or wait for minute 5")


@app.command()
@one_line_errors
def deploy(
    config: ConfigOption = None,
    pool: Annotated[str, typer.Option("--pool", help="Work pool (process type; created if missing)")] = WORK_POOL,
    cron: CronOption = HOURLY_AT_MINUTE_5,
    no_automations: Annotated[bool, typer.Option("--no-automations", help="Do not (re)apply automations")] = False,
) -> None:
    """Register the declared deployments (monitor-all, backfill, the closed loop) and automations at PREFECT_API_URL."""
    _quiet_prefect(False)
    from driftline.deployments.up import deploy as register

    outcome = register(config, work_pool=pool, cron=cron, automations=not no_automations)
    console.print(f"deployments on pool {_plain(outcome['work_pool'])}: {_plain(', '.join(outcome['deployments']))}")
    for verb, names in (outcome.get("automations") or {}).items():
        if names:
            console.print(f"automations {verb}: {_plain(', '.join(names))}")
    _warn_loudly(outcome.get("warnings", []))


@app.command()
@one_line_errors
def promote(
    model: Annotated[str, typer.Option("--model", "-m", help="Model name")],
    version: Annotated[str, typer.Option("--version", help="The promoted model's version, as your team names it")],
    config: ConfigOption = None,
    reference_start: Annotated[
        str | None, typer.Option("--reference-start", help="New reference start (ISO 8601); with --reference-end")
    ] = None,
    reference_end: Annotated[str | None, typer.Option("--reference-end", help="New reference end (exclusive)")] = None,
    effective_from: Annotated[
        str | None,
        typer.Option("--effective-from", help="Windows starting at or after this are judged against it (default: now)"),
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why; shown in the run, its artifact, the event")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who promotes (default: your user name)")] = None,
    retrain_run_id: Annotated[
        int | None, typer.Option("--retrain-run-id", help="The retrain request this answers (driftline.retrain_runs)")
    ] = None,
) -> None:
    """Promote a model version: a new reference version from --effective-from on, and the
    driftline.retrain.promoted event (CI/CD webhooks fire now). Without a reference range, the new
    model's first hours of traffic become the reference (a warm-up). A run of the `promote` flow."""
    import getpass

    _quiet_prefect(False)
    from driftline.flows.promote import promote as promote_flow
    from driftline.storage.connections import config_path, load_run_config

    path = config_path(config)
    load_run_config(path).model(model)  # a bad config or model name: one line, before any flow run
    state = promote_flow(
        model,
        version,
        reference_start,
        reference_end,
        effective_from,
        note,
        by or getpass.getuser(),
        None if retrain_run_id is None else str(retrain_run_id),
        str(path.resolve()),
        "cli",
        return_state=True,
    )
    if not state.is_completed():
        _fail(f"promotion refused: {state.message}")
    outcome = state.result()
    after, before = outcome["reference"], outcome["previous_reference"]
    console.print(
        f"[green]promoted[/] {model} {version}: reference version {before['version']} -> {after['version']} "
        f"({after['start']} .. {after['end']}{', warm-up on the new traffic' if after['warmup'] else ''}), "
        f"effective from {after['effective_from']}",
        highlight=False,
    )


@notify_app.command("test")
@one_line_errors
def notify_test(
    config: ConfigOption = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model's channels")] = None,
) -> None:
    """Send a test message through every configured channel (Slack, e-mail, webhook) and report each delivery.

    Exit 1 when a delivery failed, 2 when no channel is configured."""
    from driftline.storage.connections import load_run_config
    from driftline.tasks.notify import send_test_messages

    loaded = load_run_config(config)
    if model is not None:
        loaded.model(model)
    deliveries = send_test_messages(loaded, model)
    if not deliveries:
        _fail(
            "no notification channel is configured"
            + (f" for model {model!r}" if model else "")
            + ": set notifications.slack, email or webhook in monitors.yaml"
        )
    table = Table(title="Driftline test messages")
    for column in ("channel", "model", "target", "delivery"):
        table.add_column(column)
    for d in deliveries:
        verdict = "[green]delivered[/]" if d["delivered"] else f"[bold red]failed[/]: {_plain(d['error'])}"
        table.add_row(d["channel"], _plain(d["model"]), _plain(d["target"]), verdict)
    console.print(table)
    if not all(d["delivered"] for d in deliveries):
        raise typer.Exit(1)


@app.command()
@one_line_errors
def down() -> None:
    """Stop the worker and the Prefect server that `driftline up` started."""
    from driftline.deployments.up import down as stop

    for name, stopped in stop().items():
        console.print(f"{_plain(name)}: {'stopped' if stopped else 'not running'}")


@app.command()
@one_line_errors
def report(
    model: Annotated[str, typer.Option("--model", "-m", help="Model name")],
    config: ConfigOption = None,
    start: StartOption = None,
    end: EndOption = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file (or a folder for a generated name)")] = Path(
        "report.html"
    ),
    url_base: Annotated[str | None, typer.Option("--url-base", help="Where reports are published (for links)")] = None,
) -> None:
    """Write one self-contained, offline HTML report of a model over [start, end).

    Default: the 7 days up to the model's latest stored window (the clock's last full hour if it has none)."""
    from datetime import timedelta

    from driftline.core.window import last_full_hour_end, parse_instant
    from driftline.storage.connections import load_run_config, open_databases
    from driftline.tasks.report import write_report

    loaded = load_run_config(config)
    loaded.model(model)
    databases = open_databases(loaded)
    if end:
        stop = parse_instant(end)
    else:  # the model's latest results, not the clock: a log replayed or monitored late still shows
        from driftline.storage.results import latest_window_end

        stop = latest_window_end(databases.results, model) or last_full_hour_end()
    begin = parse_instant(start) if start else stop - timedelta(days=7)
    if not (start and end):
        error_console.print(f"report period {begin:%Y-%m-%d %H:%M} .. {stop:%Y-%m-%d %H:%M} UTC", highlight=False)
    path = write_report(databases.results, loaded, model, begin, stop, out, url_base, data_engine=databases.data)
    console.print(f"report written: {_plain(path)}")


@app.command()
@one_line_errors
def compare(
    reference: Annotated[str, typer.Option("--reference", help="CSV/Parquet file or a SQL query (SELECT ...)")],
    current: Annotated[str, typer.Option("--current", help="CSV/Parquet file or a SQL query (SELECT ...)")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="monitors.yaml with the column roles")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model in --config whose roles to use")] = None,
    output_format: Annotated[str, typer.Option("--format", "-f", help="table, json, jsonl or csv")] = "table",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write an HTML report here")] = None,
    fail_on: FailOnOption = None,
) -> None:
    """Compare two data sets once, with the same statistics and verdicts as the hourly drift.

    A column on one side only is a data_quality alert (metric column_missing). The records' window is
    the current data's first and last timestamp, or null without a timestamp column.
    Exit codes: 0 done; 2 bad input; 3 --fail-on met."""
    fail_on = _fail_on_level(fail_on)
    from driftline.cli.output import FORMATS, results_table, wide_console, write_records
    from driftline.config.monitors import load_config
    from driftline.core.errors import ConfigError
    from driftline.core.settings import load_settings
    from driftline.tasks.compare import compare as compare_frames
    from driftline.tasks.compare import compare_report, load_source

    if output_format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, not {output_format!r}")
    model_config = None
    database = None
    if config is not None:
        loaded = load_config(config)
        model_config = loaded.model(model) if model else loaded.models[0]
        database = loaded.database_url
    settings = load_settings()
    if settings.database_url is not None:
        database = settings.database_url.get_secret_value()
    reference_frame = load_source(reference, database)
    current_frame = load_source(current, database)
    records = compare_frames(reference_frame, current_frame, model_config)
    roles = records.attrs.get("roles", {})
    # Roles go to stderr so that --format json stays one parseable document on stdout.
    error_console.print(_plain("column roles: " + ", ".join(f"{c}={r}" for c, r in roles.items())), highlight=False)
    rows = records.to_dict("records")
    if output_format == "table":
        wide_console(console).print(results_table(rows, f"{len(rows)} results", window=False))
    else:
        write_records(rows, output_format, sys.stdout)
    if out is not None:
        path = compare_report(
            reference_frame, current_frame, out, model_config, reference_name=reference, current_name=current
        )
        error_console.print(f"report written: {_plain(path)}", highlight=False)
    _exit_if_flagged([str(r["status"]) for r in rows], fail_on)


@app.command()
@one_line_errors
def demo(
    home: Annotated[
        Path | None,
        typer.Option("--home", help="Where the demo keeps its data (default: $DRIFTLINE_HOME or ~/.driftline)"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Zero setup: seed a synthetic prediction log for two models and monitor one day of it."""
    _quiet_prefect(verbose)
    from driftline.cli.demo_runner import run_demo
    from driftline.cli.prefect_api import configured_api_url, start_temporary_server

    if not configured_api_url():  # started up front: a clear line, a sensible timeout, a one-line failure
        start_temporary_server(lambda line: error_console.print(line, highlight=False, markup=False))

    run_demo(home, console, error_console)


@app.command()
@one_line_errors
def serve(
    config: ConfigOption = None,
    cron: CronOption = HOURLY_AT_MINUTE_5,
) -> None:
    """Serve monitor-all on an hourly schedule (and backfill on demand) from this process."""
    from driftline.deployments.serve import serve_forever
    from driftline.storage.connections import config_path, load_run_config

    path = config_path(config)
    load_run_config(path)  # fail fast on a bad config
    serve_forever(str(path.resolve()), cron)


if __name__ == "__main__":  # pragma: no cover
    app()
