"""monitor-all over many models: 200 models x 10,000 rows in the hour, on the default thread runner.

Seeds one prediction log (10,000 rows per hour: 2 hours of reference, then the monitored hour; 6
numeric and 2 categorical features) and a config of N models over it, then times monitor-all twice:
the first run also fits and stores every reference profile, the second is the steady state. Needs a
PostgreSQL (DRIFTLINE_DATABASE_URL, default the local test server) and a Prefect API (PREFECT_API_URL;
without it Prefect starts a temporary one).

    .venv/bin/python bench/many_models.py --models 200 --concurrency 4
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import sqlalchemy as sa
import yaml

from driftline.storage.engine import get_engine

START = datetime(2026, 2, 1, tzinfo=UTC)
SCHEMA = "bench_many"


def seed(engine: sa.Engine, rows_per_hour: int) -> None:
    rng = np.random.default_rng(5)
    hours = 3
    n = rows_per_hour * hours
    table = sa.Table(
        "log", sa.MetaData(schema=SCHEMA), sa.Column("ts", sa.DateTime(timezone=True), index=True),
        *[sa.Column(f"x{i}", sa.Float) for i in range(6)], sa.Column("a", sa.Text), sa.Column("b", sa.Text),
        sa.Column("prediction", sa.Float), sa.Column("latency_ms", sa.Float),
    )
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        connection.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
        table.create(connection)
    seconds = np.sort(rng.uniform(0, hours * 3600, n))
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor, cursor.copy(f"COPY {SCHEMA}.log FROM STDIN") as copy:
            for i in range(n):
                copy.write_row([START + timedelta(seconds=float(seconds[i])),
                                *[float(v) for v in rng.normal(size=6)],
                                f"a{rng.integers(5)}", f"b{rng.integers(20)}", float(rng.normal()),
                                float(rng.gamma(3, 10))])
        raw.commit()
    finally:
        raw.close()


def config(models: int, path: Path) -> Path:
    entries = [{
        "name": f"model_{i:03d}", "table": f"{SCHEMA}.log", "timestamp_column": "ts", "task": "regression",
        "prediction_column": "prediction", "latency_column": "latency_ms",
        "features": {"numeric": [f"x{j}" for j in range(6)], "categorical": ["a", "b"]},
        "reference": {"start": START.isoformat(), "end": (START + timedelta(hours=2)).isoformat()},
    } for i in range(models)]
    path.write_text(yaml.safe_dump({"models": entries}), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("DRIFTLINE_DATABASE_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    engine = get_engine(os.environ["DRIFTLINE_DATABASE_URL"])
    t0 = time.perf_counter()
    seed(engine, args.rows)
    print(f"seeded {args.rows * 3:,} rows in {time.perf_counter() - t0:.1f} s")
    from prefect.task_runners import ThreadPoolTaskRunner

    from driftline.flows.monitor import monitor_all

    flow = monitor_all.with_options(task_runner=ThreadPoolTaskRunner(max_workers=args.concurrency))
    with tempfile.TemporaryDirectory() as folder:
        path = config(args.models, Path(folder) / "monitors.yaml")
        for label in ("first run (fits references)", "steady state"):
            t0 = time.perf_counter()
            outcome = flow(START + timedelta(hours=3), str(path))
            elapsed = time.perf_counter() - t0
            print(f"{label}: {args.models} models x {args.rows:,} rows, {args.concurrency} threads: {elapsed:.1f} s "
                  f"({len(outcome['succeeded'])} ok, {len(outcome['failed'])} failed)")


if __name__ == "__main__":
    main()
