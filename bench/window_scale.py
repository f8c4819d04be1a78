"""One window at 100k, 1M and 5M rows: the COPY floor, three ways to profile it, and the hourly flow.

Seeds ``bench_window.log`` (20 features: 15 numeric of varied shapes with ~1% NULL, 5 categorical
of 3-50 categories; prediction, score, label, latency) with SQL on the server: a 200,000-row
reference hour, then one hour per size, drift injected in x0-x2 (numeric) and c0-c1
(categorical). Each measurement runs in its own Python process, so its peak RSS is its own:

* ``copy``: the floor, ``COPY (window SELECT) TO STDOUT`` through psycopg, bytes discarded;
* ``stream``: ``stream_window_profile`` (COPY -> Arrow block by block -> profile, folded);
* ``pushdown``: ``pushdown_window_profile`` (the profile computed by PostgreSQL);
* ``frame``: ``read_rows`` + ``profile_window`` (the window as one DataFrame, then its profile);
* ``flow-drift``: the ``monitor-model`` flow with ``monitors: [data_drift]`` (read, profile, drift, persist);
* ``flow-all``: the flow with every default monitor (drift, concept, performance, completeness, operational);
* ``flow-streamed``: the flow with every default monitor but completeness: the window streams (no frame);
* ``flow-streamed-as-frame``: the same monitors plus a user monitor that reads rows, so the window is read
  as a frame and every monitor runs on it, as they all did before they streamed (#15);
* ``hourly-drift``, ``hourly-all``: the same windows through ``monitor-all`` (the hourly deployment), which
  runs each model's steps as plain calls inside one task instead of a Prefect task per step.

Times are medians of ``--repeat`` runs after one warm-up run in the same process (imports, GX
and Prefect start-up are outside the timing). Needs PostgreSQL (``--database-url``, default the local
test server; the seed is reused when present).

    .venv/bin/python bench/window_scale.py --sizes 100000 1000000 5000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SCHEMA = "bench_window"
REFERENCE_ROWS = 200_000
REFERENCE_START = datetime(2026, 5, 1, tzinfo=UTC)
METHODS = [
    "copy",
    "stream",
    "pushdown",
    "frame",
    "flow-drift",
    "flow-all",
    "flow-streamed",
    "flow-streamed-as-frame",
    "hourly-drift",
    "hourly-all",
]
#: Every default monitor but completeness (kept to compare with earlier tables: completeness streams too now).
STREAMED_MONITORS = ["data_drift", "concept_drift", "operational", "performance", "validity", "performance_estimation"]
DEFAULT_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"


def window_start(size: int) -> datetime:
    """Each size has its own hour, after the reference."""
    return REFERENCE_START + timedelta(hours={100_000: 2, 1_000_000: 3, 5_000_000: 4}.get(size, 5 + size % 1000))


def _numeric_sql(i: int, drift: bool) -> str:
    normal = "sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())"
    shapes = [
        f"{normal}",
        f"exp({normal})",  # lognormal
        "random() * 100",  # uniform
        "-ln(1 - random()) * 3",  # exponential
        f"CASE WHEN random() < 0.3 THEN {normal} - 4 ELSE {normal} + 2 END",  # bimodal
    ]
    value = f"({shapes[i % len(shapes)]})"
    if drift:
        value = f"({value} * 1.3 + 0.5)"
    return f"CASE WHEN random() < 0.01 THEN NULL ELSE {value} END AS x{i}"


def _categorical_sql(i: int, drift: bool) -> str:
    size = [3, 7, 12, 25, 50][i]
    skew = 1.8 if drift else 1.0  # a skewed draw moves mass to the first categories
    return f"'v' || floor(power(random(), {skew}) * {size})::int AS c{i}"


def seed(engine: Any, sizes: list[int]) -> None:
    import sqlalchemy as sa

    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        present = connection.execute(sa.text("SELECT to_regclass(:name)"), {"name": f"{SCHEMA}.log"}).scalar()
        if present is None:
            columns = ", ".join(
                ["id bigint", "ts timestamptz"]
                + [f"x{i} float8" for i in range(15)]
                + [f"c{i} text" for i in range(5)]
                + ["prediction float8", "score float8", "label float8", "latency_ms float8"]
            )
            connection.execute(sa.text(f"CREATE TABLE {SCHEMA}.log ({columns})"))
        counts = dict(
            connection.execute(
                sa.text(f"SELECT date_trunc('hour', ts AT TIME ZONE 'UTC'), count(*) FROM {SCHEMA}.log GROUP BY 1")
            ).all()
        )
    wanted = [(REFERENCE_START, REFERENCE_ROWS, False)] + [(window_start(n), n, True) for n in sizes]
    for start, rows, drift in wanted:
        if counts.get(start.replace(tzinfo=None)) == rows:
            continue
        started = time.perf_counter()
        select = ", ".join(
            ["g AS id", f"TIMESTAMPTZ '{start.isoformat()}' + (g - 1) * interval '3599 seconds' / {rows} AS ts"]
            + [_numeric_sql(i, drift and i < 3) for i in range(15)]
            + [_categorical_sql(i, drift and i < 2) for i in range(5)]
            + [
                "round(s)::float8 AS prediction",
                "s AS score",
                "(random() < s)::int::float8 AS label",
                "-ln(1 - random()) * 20 AS latency_ms",
            ]
        )
        with engine.begin() as connection:
            connection.execute(
                sa.text(f"DELETE FROM {SCHEMA}.log WHERE ts >= :a AND ts < :b"),
                {"a": start, "b": start + timedelta(hours=1)},
            )
            connection.execute(
                sa.text(
                    f"INSERT INTO {SCHEMA}.log SELECT {select} "
                    f"FROM (SELECT g, random() AS s FROM generate_series(1, {rows}) g) seeds"
                )
            )
        print(f"seeded {rows:,} rows at {start:%H:%M} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE INDEX IF NOT EXISTS log_ts ON {SCHEMA}.log (ts)"))
        connection.execute(sa.text(f"ANALYZE {SCHEMA}.log"))


def model_entry(name: str, monitors: list[str] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "table": f"{SCHEMA}.log",
        "timestamp_column": "ts",
        "id_column": "id",
        "task": "classification",
        "features": {"numeric": [f"x{i}" for i in range(15)], "categorical": [f"c{i}" for i in range(5)]},
        "prediction_column": "prediction",
        "score_column": "score",
        "label_column": "label",
        "latency_column": "latency_ms",
        "reference": {
            "start": REFERENCE_START.isoformat(),
            "end": (REFERENCE_START + timedelta(hours=1)).isoformat(),
        },
    }
    if monitors is not None:
        entry["monitors"] = [{"name": m} for m in monitors]
        if READS_ROWS in monitors:
            entry["monitors"][-1] = {"name": READS_ROWS, "path": "window_scale:touch_rows", "kind": "operational"}
    return entry


READS_ROWS = "touch_rows"


def touch_rows(context: Any) -> list[Any]:
    """A user monitor that reads the window's rows (so the flow reads the window as a frame)."""
    assert len(context.frame) >= 0
    return []


def write_config(path: Path, database_url: str) -> Path:
    import yaml

    document = {
        "database_url": database_url,
        "models": [
            model_entry("bench_drift", ["data_drift"]),
            model_entry("bench_all", None),
            model_entry("bench_streamed", STREAMED_MONITORS),
            model_entry("bench_streamed_frame", [*STREAMED_MONITORS, READS_ROWS]),
        ],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def measure(method: str, size: int, repeat: int, config_path: str, warmup: int = 1) -> dict[str, Any]:
    """Run in a child process: ``warmup`` untimed runs (default one), then ``repeat`` timed runs of ``method``."""
    import sqlalchemy as sa
    from pushdown import pushdown_window_profile  # bench/pushdown.py (the script's folder is on sys.path)

    from driftline.config.monitors import load_config
    from driftline.core.window import Window
    from driftline.storage.connections import open_databases
    from driftline.tasks.extract import read_rows, window_statement
    from driftline.tasks.profiles import ensure_reference, profile_window, stream_window_profile

    config = load_config(config_path)
    model = config.model("bench_drift")
    databases = open_databases(config)
    window = Window(window_start(size), window_start(size) + timedelta(hours=1))
    reference = ensure_reference(databases.data, databases.results, model, window)
    assert reference is not None

    def copy_floor() -> int:
        compiled = window_statement(model, window.start, window.end).compile(dialect=databases.data.dialect)
        raw = databases.data.raw_connection()
        total = 0
        try:
            cursor = raw.cursor()
            with cursor.copy(f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv)", compiled.params) as copy:
                for block in copy:
                    total += len(block)
            raw.rollback()
        finally:
            raw.close()
        return total

    def flow(name: str) -> int:
        from driftline.flows.monitor import monitor_model

        outcome = monitor_model(name, window.end, config_path)
        return int(outcome["rows"])

    def hourly(name: str) -> int:
        from driftline.flows.monitor import monitor_all

        outcome = monitor_all(window.end, config_path, models=[name])
        return int(outcome["succeeded"][name]["rows"])

    runs = {
        "copy": copy_floor,
        "stream": lambda: stream_window_profile(databases.data, model, window, reference).row_count,
        "pushdown": lambda: pushdown_window_profile(databases.data, model, window, reference).row_count,  # type: ignore[union-attr]
        "frame": lambda: (
            profile_window(read_rows(databases.data, model, window.start, window.end), reference, model).row_count
        ),
        "flow-drift": lambda: flow("bench_drift"),
        "flow-all": lambda: flow("bench_all"),
        "flow-streamed": lambda: flow("bench_streamed"),
        "flow-streamed-as-frame": lambda: flow("bench_streamed_frame"),
        "hourly-drift": lambda: hourly("bench_drift"),
        "hourly-all": lambda: hourly("bench_all"),
    }
    run = runs[method]
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(warmup):
        run()  # warm-up: imports, caches, Prefect's temporary server for the flows
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        produced = run()
        seconds.append(time.perf_counter() - started)
    with databases.data.connect() as connection:
        rows = connection.execute(
            sa.text(f"SELECT count(*) FROM {SCHEMA}.log WHERE ts >= :a AND ts < :b"),
            {"a": window.start, "b": window.end},
        ).scalar()
    return {
        "method": method,
        "size": size,
        "rows": rows,
        "produced": produced,
        "median_s": statistics.median(seconds),
        "runs_s": seconds,
        "baseline_rss_mb": baseline_kb / 1024,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (0: the first run is timed)")
    parser.add_argument("--database-url", default=os.environ.get("DRIFTLINE_TEST_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "SIZE", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, size, config_path = args.child
        print(json.dumps(measure(method, int(size), args.repeat, config_path, args.warmup)))
        return

    from driftline.storage.engine import get_engine

    engine = get_engine(args.database_url)
    seed(engine, args.sizes)
    with tempfile.TemporaryDirectory() as home:
        config = write_config(Path(home) / "monitors.yaml", args.database_url)
        # A busy shared machine can take over Prefect's default 20 s to start the temporary API server.
        env = dict(
            os.environ,
            DRIFTLINE_REPORTS_DIR="",
            PREFECT_HOME=str(Path(home) / "prefect"),
            PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        )
        env.pop("DRIFTLINE_CONFIG", None)
        results = []
        for size in args.sizes:
            for method in args.methods:
                load = os.getloadavg()[0]
                child = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--repeat",
                        str(args.repeat),
                        "--warmup",
                        str(args.warmup),
                        "--child",
                        method,
                        str(size),
                        str(config),
                    ],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=False,
                )
                if child.returncode != 0:
                    print(child.stderr[-3000:], file=sys.stderr)
                    results.append({"method": method, "size": size, "error": child.stderr.strip().splitlines()[-1]})
                    continue
                record = json.loads(child.stdout.strip().splitlines()[-1]) | {"load": load}
                results.append(record)
                print(json.dumps(record), file=sys.stderr)
    print(
        f"\n{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; medians of {args.repeat} after {args.warmup} warm-up run(s)\n"
    )
    print("| rows | method | median s | runs s | × COPY floor | peak RSS MB (after imports) | load |")
    print("|---:|---|---:|---|---:|---:|---:|")
    for size in args.sizes:
        floor = next((r["median_s"] for r in results if r["size"] == size and r.get("method") == "copy"), None)
        for record in (r for r in results if r["size"] == size):
            if "error" in record:
                print(f"| {size:,} | {record['method']} | failed: {record['error']} | | | | |")
                continue
            ratio = f"{record['median_s'] / floor:.2f}" if floor else "—"
            runs = ", ".join(f"{s:.2f}" for s in record["runs_s"])
            print(
                f"| {record['rows']:,} | {record['method']} | {record['median_s']:.2f} | {runs} | {ratio} | "
                f"{record['peak_rss_mb']:.0f} ({record['baseline_rss_mb']:.0f}) | {record['load']:.1f} |"
            )


if __name__ == "__main__":
    main()
