"""monitor-all over many models, every default monitor on: threads on one machine, or a Dask cluster.

Seeds one prediction log inside PostgreSQL (``INSERT ... SELECT ... FROM generate_series``, no rows
cross the wire): a 20,000-row reference (two hours) shared by every model, then ``--rows`` rows per
model in the monitored hour, each model's own rows (``model_id``). Each model reads the log through
its own view (``bench_many.m0001`` = the reference and model 1's rows), so every model's window is
its own 10,000 rows, read through the index on ``(model_id, ts)``. A classification model with 6
numeric and 2 categorical features, score, label and latency: every default monitor has its input
(data drift, concept drift, operational, performance with segments, performance estimation,
completeness, validity). The seed is reused when its shape matches.

Then ``monitor-all`` runs twice: the first run also fits and stores every reference profile, the
second is the steady state. ``--dask N`` runs the same flow on prefect-dask's ``DaskTaskRunner`` over
a ``distributed.LocalCluster`` of N worker processes (started before the timing, shared by both runs);
without it the flow runs on its default thread runner with ``--concurrency`` threads.
``--profile K`` then monitors K models one after another in this process's main thread, each as
``monitor-all`` does (the steps as plain calls), under pyinstrument, and prints where the time went.

Needs PostgreSQL (``DRIFTLINE_DATABASE_URL``, default the local test server). Without
``PREFECT_API_URL`` a temporary Prefect server is started (``prefect_test_harness``).

    .venv/bin/python bench/many_models.py --models 1000 --rows 10000
    .venv/bin/python bench/many_models.py --models 1000 --rows 10000 --dask 2 --threads-per-worker 2
    .venv/bin/python bench/many_models.py --models 50 --profile 50
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from driftline.storage.engine import get_engine

START = datetime(2026, 2, 1, tzinfo=UTC)
SCHEMA = "bench_many"
REFERENCE_ROWS = 20_000
DEFAULT_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"


def _columns_sql(drift: bool) -> str:
    """The row's values from ``g`` and ``s`` (a uniform draw that drives score and label); SQL only."""
    normal = "sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())"
    shift = " + 0.3" if drift else ""
    numeric = [
        f"({normal}){shift} AS x0",
        f"exp({normal}) AS x1",
        "random() * 100 AS x2",
        "-ln(1 - random()) * 3 AS x3",
        f"CASE WHEN random() < 0.01 THEN NULL ELSE {normal} END AS x4",
        f"({normal}) * 2 AS x5",
    ]
    return ", ".join(
        [
            *numeric,
            "'a' || floor(random() * 5)::int AS a",
            "'b' || floor(random() * 20)::int AS b",
            "round(s)::float8 AS prediction",
            "s AS score",
            "(random() < s)::int::float8 AS label",
            "-ln(1 - random()) * 20 AS latency_ms",
        ]
    )


def _seeded(connection: sa.Connection, models: int, rows: int) -> bool:
    present = connection.execute(sa.text("SELECT to_regclass(:t)"), {"t": f"{SCHEMA}.log"}).scalar()
    if present is None:
        return False
    counts = dict(connection.execute(sa.text(f"SELECT model_id = 0, count(*) FROM {SCHEMA}.log GROUP BY 1")).all())  # noqa: S608 (constant schema)
    views = connection.execute(
        sa.text("SELECT count(*) FROM information_schema.views WHERE table_schema = :s"), {"s": SCHEMA}
    ).scalar()
    return counts.get(True) == REFERENCE_ROWS and counts.get(False) == models * rows and views == models


def seed(engine: sa.Engine, models: int, rows: int) -> float:
    """The log, its index and one view per model; returns the seconds it took (0 when reused)."""
    started = time.perf_counter()
    with engine.begin() as connection:
        if _seeded(connection, models, rows):
            return 0.0
        connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        connection.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
        connection.execute(
            sa.text(
                f"CREATE TABLE {SCHEMA}.log (model_id int, id bigint, ts timestamptz, x0 float8, x1 float8, x2 float8,"
                " x3 float8, x4 float8, x5 float8, a text, b text, prediction float8, score float8, label float8,"
                " latency_ms float8)"
            )
        )
        # The shared reference: two hours before the monitored one.
        connection.execute(
            sa.text(
                f"INSERT INTO {SCHEMA}.log SELECT 0, g, TIMESTAMPTZ '{START.isoformat()}'"
                f" + (g - 1) * interval '7199 seconds' / {REFERENCE_ROWS}, {_columns_sql(False)}"
                f" FROM (SELECT g, random() AS s FROM generate_series(1, {REFERENCE_ROWS}) g) seeds"
            )
        )
        # Every model's hour: model m has rows (m-1)*rows+1 .. m*rows, spread over the hour.
        hour = START + timedelta(hours=2)
        connection.execute(
            sa.text(
                f"INSERT INTO {SCHEMA}.log SELECT (g - 1) / {rows} + 1, g, TIMESTAMPTZ '{hour.isoformat()}'"
                f" + ((g - 1) % {rows}) * interval '3599 seconds' / {rows}, {_columns_sql(True)}"
                f" FROM (SELECT g, random() AS s FROM generate_series(1, {models * rows}) g) seeds"
            )
        )
        connection.execute(sa.text(f"CREATE INDEX log_model_ts ON {SCHEMA}.log (model_id, ts)"))
        for m in range(1, models + 1):
            connection.execute(
                sa.text(f"CREATE VIEW {SCHEMA}.m{m:04d} AS SELECT * FROM {SCHEMA}.log WHERE model_id IN (0, {m})")
            )
        connection.execute(sa.text(f"ANALYZE {SCHEMA}.log"))
    return time.perf_counter() - started


def write_config(models: int, path: Path, database_url: str) -> Path:
    entries = [
        {
            "name": f"model_{m:04d}",
            "table": f"{SCHEMA}.m{m:04d}",
            "timestamp_column": "ts",
            "id_column": "id",
            "task": "classification",
            "prediction_column": "prediction",
            "score_column": "score",
            "label_column": "label",
            "latency_column": "latency_ms",
            "features": {"numeric": [f"x{j}" for j in range(6)], "categorical": ["a", "b"]},
            "reference": {"start": START.isoformat(), "end": (START + timedelta(hours=2)).isoformat()},
        }
        for m in range(1, models + 1)
    ]  # no ``monitors:`` key: every default monitor runs
    path.write_text(yaml.safe_dump({"database_url": database_url, "models": entries}), encoding="utf-8")
    return path


@contextlib.contextmanager
def prefect_api() -> Iterator[None]:
    """The Prefect API named by PREFECT_API_URL, else a temporary server for this run."""
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@contextlib.contextmanager
def task_runner(args: argparse.Namespace) -> Iterator[tuple[Any, str]]:
    """The runner and its description; a Dask cluster is started here, outside the timed runs."""
    if not args.dask:
        from prefect.task_runners import ThreadPoolTaskRunner

        yield ThreadPoolTaskRunner(max_workers=args.concurrency), f"{args.concurrency} threads"
        return
    from distributed import LocalCluster
    from prefect_dask import DaskTaskRunner

    with LocalCluster(
        n_workers=args.dask, threads_per_worker=args.threads_per_worker, processes=True, dashboard_address=None
    ) as cluster:
        yield (
            DaskTaskRunner(address=cluster.scheduler_address),
            f"Dask LocalCluster, {args.dask} worker processes x {args.threads_per_worker} threads",
        )


def profile_models(config_path: Path, end: datetime, count: int, out: Path | None) -> None:
    """``count`` models one after another in the main thread, as monitor-all runs each, under pyinstrument."""
    from pyinstrument import Profiler

    from driftline.flows.monitor import monitor_window
    from driftline.storage.connections import load_run_config

    names = [m.name for m in load_run_config(str(config_path)).models][:count]
    for name in names:  # warm: imports, engines, caches, and each model's reference fitted and stored
        monitor_window(name, end, str(config_path), as_tasks=False)
    seconds = []
    profiler = Profiler(interval=0.001)
    profiler.start()
    for name in names:
        started = time.perf_counter()
        monitor_window(name, end, str(config_path), as_tasks=False)
        seconds.append(time.perf_counter() - started)
    profiler.stop()
    print(
        f"profiled {count} models in sequence: median {statistics.median(seconds):.3f} s per model, "
        f"total {sum(seconds):.1f} s"
    )
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    if out is not None:
        out.write_text(profiler.output_html(), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--rows", type=int, default=10_000, help="rows per model in the monitored hour")
    parser.add_argument("--concurrency", type=int, default=4, help="threads of the default runner")
    parser.add_argument("--dask", type=int, default=0, metavar="N", help="run on a LocalCluster of N processes")
    parser.add_argument("--threads-per-worker", type=int, default=1)
    parser.add_argument("--runs", nargs="*", default=["first", "steady"], choices=["first", "steady"])
    parser.add_argument("--first", type=int, default=0, metavar="K", help="monitor only the first K seeded models")
    parser.add_argument("--profile", type=int, default=0, metavar="K", help="then profile K models in sequence")
    parser.add_argument("--profile-html", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("DRIFTLINE_DATABASE_URL", DEFAULT_URL)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ["DRIFTLINE_REPORTS_DIR"] = ""  # no HTML report per window (not a default of the hourly run)
    url = os.environ["DRIFTLINE_DATABASE_URL"]
    seconds = seed(get_engine(url), args.models, args.rows)
    print(
        f"seed: {args.models} models x {args.rows:,} rows + {REFERENCE_ROWS:,} reference rows: "
        + (f"{seconds:.1f} s" if seconds else "reused"),
        flush=True,
    )
    end = START + timedelta(hours=3)
    with tempfile.TemporaryDirectory() as folder, prefect_api():
        monitored = args.first or args.models
        path = write_config(monitored, Path(folder) / "monitors.yaml", url)
        if "first" in args.runs or "steady" in args.runs:
            from driftline.flows.monitor import monitor_all

            with task_runner(args) as (runner, described):
                flow = monitor_all.with_options(task_runner=runner)
                for label in args.runs:
                    load = os.getloadavg()
                    t0 = time.perf_counter()
                    outcome = flow(end, str(path))
                    elapsed = time.perf_counter() - t0
                    failed = outcome["failed"]
                    print(
                        f"{label}: {monitored} models x {args.rows:,} rows, {described}: {elapsed:.1f} s "
                        f"({elapsed / monitored:.3f} s/model; {len(outcome['succeeded'])} ok, {len(failed)} "
                        f"failed; load before {load[0]:.1f}, after {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
                    if failed:
                        print(f"  first failure: {next(iter(failed.items()))}", file=sys.stderr)
        if args.profile:
            profile_models(path, end, args.profile, args.profile_html)


if __name__ == "__main__":
    main()
