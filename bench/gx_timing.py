"""Where should the completeness expectations run: on the pandas frame, or in PostgreSQL through GX?

Seeds ``bench_gx.predictions`` (1,000,000 rows x 20 columns, all in one hour, binary COPY) in the
test database, then times, as medians of ``--repeat`` runs:

* GX's fixed cost: ``import great_expectations`` (fresh interpreter), an ephemeral context, a pandas
  data source, the suite (plan + GX objects), a PostgreSQL data source with the window's query asset;
* the suite on the pandas frame the flow already holds (``checks.completeness.run_suite``) and the whole
  monitor (``evaluate_completeness``: plan, cached suite, run, results);
* the same suite through GX's SQL data source over a query of the window (work stays in the database).

Both backends must agree on every expectation's success and unexpected count; the script checks it.
The window's read into pandas (``read_rows``) is timed too, for scale: the flow pays it either way.

Usage::

    .venv/bin/python bench/gx_timing.py                 # reuses the seeded table when it matches
    .venv/bin/python bench/gx_timing.py --reseed --rows 200000 --repeat 3

The database is ``--database-url``, else ``$DRIFTLINE_TEST_DATABASE_URL``, else
``postgresql+psycopg://root@127.0.0.1:5432/test``. Takes about 3-4 minutes on 2 cores at 1M rows.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

SCHEMA = "bench_gx"
TABLE = "predictions"
WINDOW_START = datetime(2026, 1, 2, tzinfo=UTC)
WINDOW_END = WINDOW_START + timedelta(hours=1)
NUMERIC = [f"f{i:02d}" for i in range(1, 13)]
CATEGORICAL = ["c1", "c2", "c3", "c4"]
CATEGORIES = {"c1": 5, "c2": 12, "c3": 40, "c4": 3}
DEFAULT_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"
# id, ts, 12 numeric, 4 categorical, prediction, score: 20 columns
PG_TYPES = ["int8", "timestamptz"] + ["float8"] * len(NUMERIC) + ["text"] * len(CATEGORICAL) + ["float8", "float8"]


def _log(message: str) -> None:
    print(message, flush=True)


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    times, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times, value


def _model(reference_start: datetime) -> Any:
    from driftline.config.monitors import parse_config

    entry = {
        "name": "bench",
        "table": f"{SCHEMA}.{TABLE}",
        "timestamp_column": "ts",
        "id_column": "request_id",
        "task": "classification",
        "features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
        "prediction_column": "prediction",
        "score_column": "score",
        "reference": {"start": reference_start.isoformat(), "end": (reference_start + timedelta(days=7)).isoformat()},
    }
    return parse_config({"models": [entry]}).models[0]


def seed(engine: sa.Engine, rows: int, reseed: bool) -> None:
    """The table, unless it already holds exactly ``rows`` rows (binary COPY, the fastest route in)."""
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        exists = connection.execute(sa.text(f"SELECT to_regclass('{SCHEMA}.{TABLE}')")).scalar() is not None
        if exists and not reseed:
            count = connection.execute(sa.text(f"SELECT count(*) FROM {SCHEMA}.{TABLE}")).scalar()
            if count == rows:
                _log(f"seed: reusing {SCHEMA}.{TABLE} ({rows:,} rows)")
                return
        connection.execute(sa.text(f"DROP TABLE IF EXISTS {SCHEMA}.{TABLE}"))
        columns = ", ".join(
            [
                "request_id bigint NOT NULL",
                "ts timestamptz NOT NULL",
                *(f"{c} double precision" for c in NUMERIC),
                *(f"{c} text" for c in CATEGORICAL),
                "prediction double precision",
                "score double precision",
            ]
        )
        connection.execute(sa.text(f"CREATE TABLE {SCHEMA}.{TABLE} ({columns})"))

    started = time.perf_counter()
    rng = np.random.default_rng(42)
    offsets = np.sort(rng.uniform(0, 3600, rows))
    data: list[list[Any]] = [list(range(1, rows + 1)), [WINDOW_START + timedelta(seconds=float(s)) for s in offsets]]
    for i, _ in enumerate(NUMERIC):
        values = rng.normal(100.0 * i, 10.0 + i, rows)
        column: list[Any] = values.tolist()
        if i % 4 == 0:  # a few features with ~1% NULLs
            for j in np.flatnonzero(rng.uniform(size=rows) < 0.01):
                column[j] = None
        data.append(column)
    for name in CATEGORICAL:
        codes = rng.integers(0, CATEGORIES[name], rows)
        labels = np.array([f"{name}_{k}" for k in range(CATEGORIES[name])], dtype=object)
        column = labels[codes].tolist()
        for j in np.flatnonzero(rng.uniform(size=rows) < 0.005):
            column[j] = None
        data.append(column)
    score = rng.uniform(size=rows)
    data.append((score > 0.5).astype(float).tolist())
    data.append(score.tolist())

    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:  # type: ignore[attr-defined]
            with cursor.copy(f"COPY {SCHEMA}.{TABLE} FROM STDIN WITH (FORMAT binary)") as copy:
                copy.set_types(PG_TYPES)
                for row in zip(*data, strict=True):
                    copy.write_row(row)
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE INDEX ON {SCHEMA}.{TABLE} (ts)"))
        connection.execute(sa.text(f"ANALYZE {SCHEMA}.{TABLE}"))
    _log(f"seed: {rows:,} rows x {len(PG_TYPES)} columns in {time.perf_counter() - started:.1f} s (binary COPY)")


def import_seconds(repeat: int) -> tuple[float, list[float]]:
    """``import great_expectations`` in a fresh interpreter (warm file cache)."""
    code = "import time; t = time.perf_counter(); import great_expectations; print(time.perf_counter() - t)"
    times = []
    for _ in range(repeat):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(times), times


def window_query(engine: sa.Engine, model: Any, end: datetime = WINDOW_END) -> str:
    """The window's rows (up to ``end``) as SQL text for GX's query asset (identifiers quoted by SQLAlchemy)."""
    from driftline.tasks.extract import log_table

    table = log_table(model)
    ts = table.c[model.timestamp_column]
    statement = sa.select(*(table.c[c] for c in model.columns())).where(ts >= WINDOW_START, ts < end)
    return str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))


def _memory_mb(field: str) -> float | None:
    """``VmRSS``/``VmHWM`` of this process in MB (Linux), else None."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_peak() -> float | None:
    """Reset the peak-RSS mark (Linux ``clear_refs``); returns the current RSS in MB."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return None
    return _memory_mb("VmRSS")


def _peak_above(baseline: float | None) -> str:
    peak = _memory_mb("VmHWM")
    return "n/a" if baseline is None or peak is None else f"+{peak - baseline:.0f} MB"


def _summary(results: list[Any]) -> dict[int, tuple[bool, Any]]:
    out = {}
    for r in results:
        index = int(r.expectation_config.meta["driftline_index"])
        out[index] = (bool(r.success), (r.result or {}).get("unexpected_count", (r.result or {}).get("observed_value")))
    return out


def frame_vs_sql() -> None:
    """The earlier comparison: GX on the pandas frame vs GX's SQL data source (``--frame-vs-sql``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frame-vs-sql", action="store_true")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small-rows", type=int, default=10_000, help="rows of the 'typical hour' comparison")
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--database-url", default=os.environ.get("DRIFTLINE_TEST_DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args()
    repeat = args.repeat
    total_started = time.perf_counter()

    engine = sa.create_engine(args.database_url)
    with engine.connect() as connection:
        server = connection.execute(sa.text("SHOW server_version")).scalar()
    _log(
        f"machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        f"PostgreSQL {server}; load average {os.getloadavg()[0]:.1f}"
    )
    seed(engine, args.rows, args.reseed)

    measured: dict[str, tuple[float, list[float]]] = {}
    measured["import great_expectations (fresh process)"] = import_seconds(repeat)
    _log(f"import: {measured['import great_expectations (fresh process)'][1]}")

    from driftline.checks import completeness
    from driftline.core.window import Window
    from driftline.stats.model_profile import fit_model_profile, window_model_profile
    from driftline.tasks.context import WindowContext
    from driftline.tasks.extract import read_rows

    model = _model(WINDOW_START - timedelta(days=7))
    started = time.perf_counter()
    frame = read_rows(engine, model, WINDOW_START, WINDOW_END)
    read_seconds = time.perf_counter() - started
    _log(
        f"read_rows: {len(frame):,} rows x {frame.shape[1]} columns in {read_seconds:.1f} s "
        f"({frame.memory_usage(deep=True).sum() / 1e6:.0f} MB in pandas)"
    )
    # The reference: the same distribution (a profile fitted on the window itself; not timed).
    reference = fit_model_profile(frame, model.features.numeric, model.features.categorical)
    window = Window(WINDOW_START, WINDOW_END)
    context = WindowContext(
        model=model, window=window, frame=frame, reference=reference, current=window_model_profile(frame, reference)
    )
    parameters = completeness.window_parameters(context)
    kinds = completeness.value_kinds(frame, model.features.categorical)

    # -- fixed costs ----------------------------------------------------------------------------
    import great_expectations  # noqa: F401  (its import is timed above, in fresh processes)

    contexts = iter(range(1000))
    measured["ephemeral context"] = _timed(completeness.new_gx_context, repeat)[:2]
    gx_context = completeness.gx_context()

    def pandas_source() -> Any:
        n = next(contexts)
        source = gx_context.data_sources.add_pandas(f"bench_pd_{n}")
        return source.add_dataframe_asset("window").add_batch_definition_whole_dataframe("window")

    measured["pandas data source + asset + batch definition"] = _timed(pandas_source, repeat)[:2]

    def suite() -> Any:
        planned = completeness.plan_expectations(model, reference, kinds)
        return planned, completeness.build_suite(f"bench_{next(contexts)}", planned)[0]

    median, times, (planned, gx_suite) = _timed(suite, repeat)
    measured["suite: plan + GX objects"] = (median, times)
    query = window_query(engine, model)

    def sql_source() -> Any:
        source = gx_context.data_sources.add_postgres(f"bench_pg_{next(contexts)}", connection_string=args.database_url)
        return source.add_query_asset("window", query=query).add_batch_definition_whole_table("window")

    sql_median, sql_times, sql_definition = _timed(sql_source, repeat)
    measured["PostgreSQL data source + query asset + batch definition"] = (sql_median, sql_times)
    _log(f"suite: {len(planned)} expectations")

    # -- the runs -------------------------------------------------------------------------------
    def pandas_run() -> list[Any]:
        return completeness.run_suite(model, frame, gx_suite, parameters)

    def sql_run() -> list[Any]:
        batch = sql_definition.get_batch()
        return list(
            batch.validate(
                gx_suite, result_format=completeness.RESULT_FORMAT, expectation_parameters=parameters
            ).results
        )

    def monitor_run() -> list[Any]:
        return completeness.evaluate_completeness(context)

    baseline = _reset_peak()
    first_pandas = _timed(pandas_run, 1)[0]
    median, times, pandas_results = _timed(pandas_run, repeat)
    memory = {"pandas frame": _peak_above(baseline)}
    measured["pandas frame: GX suite run"] = (median, times)
    _log(f"pandas run: first {first_pandas:.2f} s, then {times}")
    first_monitor = _timed(monitor_run, 1)[0]
    median, times, _ = _timed(monitor_run, repeat)
    measured["pandas frame: evaluate_completeness (plan, cached suite, run, results)"] = (median, times)
    _log(f"monitor run: first {first_monitor:.2f} s, then {times}")
    baseline = _reset_peak()
    first_sql = _timed(sql_run, 1)[0]
    median, times, sql_results = _timed(sql_run, repeat)
    memory["PostgreSQL query asset"] = _peak_above(baseline)
    measured["PostgreSQL query asset: GX suite run"] = (median, times)
    _log(f"SQL run: first {first_sql:.2f} s, then {times}")

    # -- a typical hour: the window's first ~--small-rows rows -----------------------------------
    small_end = WINDOW_START + timedelta(seconds=3600 * args.small_rows / max(len(frame), 1))
    small_frame = frame[frame["ts"] < small_end].reset_index(drop=True)
    small_source = gx_context.data_sources.add_postgres("bench_pg_small", connection_string=args.database_url)
    small_definition = small_source.add_query_asset(
        "window", query=window_query(engine, model, small_end)
    ).add_batch_definition_whole_table("window")

    def small_pandas_run() -> list[Any]:
        return completeness.run_suite(model, small_frame, gx_suite, parameters)

    def small_sql_run() -> list[Any]:
        return list(
            small_definition.get_batch()
            .validate(gx_suite, result_format=completeness.RESULT_FORMAT, expectation_parameters=parameters)
            .results
        )

    small_pandas_run()  # warm-up, as for the full window
    small_sql_run()
    median, times, small_pandas = _timed(small_pandas_run, repeat)
    measured[f"{len(small_frame):,} rows, pandas frame: GX suite run"] = (median, times)
    median, times, small_sql = _timed(small_sql_run, repeat)
    measured[f"{len(small_frame):,} rows, PostgreSQL query asset: GX suite run"] = (median, times)
    if _summary(small_pandas) != _summary(small_sql):
        _log("small window: backends DISAGREE")

    # -- same answers? --------------------------------------------------------------------------
    by_pandas, by_sql = _summary(pandas_results), _summary(sql_results)
    disagree = [
        (planned[i].metric, planned[i].feature, by_pandas.get(i), by_sql.get(i))
        for i in range(len(planned))
        if by_pandas.get(i) != by_sql.get(i)
    ]
    failing = sorted((planned[i].metric, planned[i].feature) for i, (ok, _) in by_pandas.items() if not ok)

    # -- report ---------------------------------------------------------------------------------
    _log("")
    _log(
        f"data: {len(frame):,} rows x {frame.shape[1]} columns in one hour; {len(planned)} expectations; "
        f"median of {repeat}"
    )
    _log(f"| {'step':<72} | median s | runs s |")
    _log(f"|{'-' * 74}|---------:|--------|")
    for name, (median, runs) in measured.items():
        _log(f"| {name:<72} | {median:8.3f} | {', '.join(f'{t:.3f}' for t in runs)} |")
    _log(f"| {'(for scale) read_rows of the window into pandas':<72} | {read_seconds:8.3f} | 1 run |")
    _log("")
    _log(
        f"first runs (not in the medians): pandas {first_pandas:.2f} s, monitor {first_monitor:.2f} s, "
        f"SQL {first_sql:.2f} s"
    )
    _log(f"peak memory of the GX runs above the process's RSS before them: {memory}")
    _log(f"failing expectations (both backends): {failing or 'none'}")
    _log("backends agree on every expectation" if not disagree else f"backends DISAGREE: {disagree}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _log(
        f"peak RSS {rss:.0f} MB (the read included); load average now {os.getloadavg()[0]:.1f}; "
        f"total {time.perf_counter() - total_started:.0f} s"
    )


# -- the streamed evaluation against GX (the default mode) ----------------------------------------

METHODS = ("read-blocks", "tallies", "gx-frame", "gx-blocks")


def _child(method: str, database_url: str, reference_path: str) -> dict[str, Any]:
    """One measurement in this (fresh) process: the window's read plus one way of evaluating the suite."""
    import pickle

    from driftline.checks import completeness
    from driftline.core.window import Window
    from driftline.tasks.extract import iter_rows, read_rows

    engine = sa.create_engine(database_url)
    model = _model(WINDOW_START - timedelta(days=7))
    window = Window(WINDOW_START, WINDOW_END)
    with open(reference_path, "rb") as handle:
        reference = pickle.load(handle)
    if method.startswith("gx"):
        import great_expectations  # noqa: F401  (imported before the clock: a once-per-process cost)

        completeness.gx_context()
    after_imports = _memory_mb("VmRSS")
    evaluating = 0.0
    rows = 0
    started = time.perf_counter()
    if method == "gx-frame":
        frame = read_rows(engine, model, window.start, window.end)
        rows = len(frame)
        t = time.perf_counter()
        planned = completeness.plan_expectations(
            model, reference, completeness.value_kinds(frame, model.features.categorical))
        suite, _ = completeness.build_suite("bench", planned)
        results = completeness.run_suite(model, frame, suite, completeness.window_bounds(model, window, frame))
        failing = sorted(str(planned[int(r.expectation_config.meta["driftline_index"])].metric) + ":"
                         + str(planned[int(r.expectation_config.meta["driftline_index"])].feature)
                         for r in results if not r.success)
        evaluating = time.perf_counter() - t
    else:
        fold = None
        suite = None
        blocks = 0
        failing = []
        for block in iter_rows(engine, model, window.start, window.end):
            blocks += 1
            rows += len(block)
            t = time.perf_counter()
            if method == "tallies":
                if fold is None:
                    fold = completeness.begin_completeness(model, reference, window, block)
                fold.fold(block)
            elif method == "gx-blocks":
                if suite is None:
                    planned = completeness.plan_expectations(
                        model, reference, completeness.value_kinds(block, model.features.categorical))
                    suite, _ = completeness.build_suite("bench", planned)
                completeness.run_suite(model, block, suite, completeness.window_bounds(model, window, block))
            evaluating += time.perf_counter() - t
        if fold is not None:
            t = time.perf_counter()
            outcomes = fold.suite.results()
            failing = sorted(f"{p.metric}:{p.feature}" for p, r in zip(fold.planned, outcomes, strict=True)
                             if not r.success)
            evaluating += time.perf_counter() - t
    total = time.perf_counter() - started
    return {"method": method, "rows": rows, "total_s": total, "evaluate_s": evaluating,
            "peak_mb": _memory_mb("VmHWM"), "after_imports_mb": after_imports, "failing": failing}


def main() -> None:
    if "--frame-vs-sql" in sys.argv:
        frame_vs_sql()
        return
    if "--child" in sys.argv:
        import json

        _, _, method, url, reference_path = sys.argv
        print(json.dumps(_child(method, url, reference_path)), flush=True)
        return
    import json
    import pickle
    import tempfile

    parser = argparse.ArgumentParser(description="Completeness on a streamed window: tallies vs GX")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--database-url", default=os.environ.get("DRIFTLINE_TEST_DATABASE_URL", DEFAULT_URL))
    args = parser.parse_args()
    engine = sa.create_engine(args.database_url)
    _log(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
         f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    seed(engine, args.rows, args.reseed)

    from driftline.stats.model_profile import fit_model_profile
    from driftline.tasks.extract import read_rows

    model = _model(WINDOW_START - timedelta(days=7))
    # The reference: a profile of the window's first 200,000 rows (same distribution; not timed).
    sample = read_rows(engine, model, WINDOW_START, WINDOW_START + timedelta(seconds=3600 * 200_000 / args.rows))
    reference = fit_model_profile(sample, model.features.numeric, model.features.categorical)
    del sample
    with tempfile.NamedTemporaryFile(suffix=".pickle", delete=False) as handle:
        pickle.dump(reference, handle)
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in args.methods}
    for round_ in range(args.repeat):  # rounds interleaved, each measurement in its own process
        for method in args.methods:
            done = subprocess.run([sys.executable, __file__, "--child", method, args.database_url, handle.name],
                                  capture_output=True, text=True, check=True)
            runs[method].append(json.loads(done.stdout.strip().splitlines()[-1]))
            _log(f"round {round_ + 1} {method}: {runs[method][-1]}")
    os.unlink(handle.name)
    _log("")
    _log(f"{args.rows:,} rows x 20 columns in one hour, streamed in 8 MB blocks; median of {args.repeat}; "
         f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    _log("| method | read + evaluate s (runs) | evaluating s (runs) | peak RSS MB (after imports) |")
    _log("|---|---:|---:|---:|")
    for method, items in runs.items():
        total = statistics.median(r["total_s"] for r in items)
        evaluate = statistics.median(r["evaluate_s"] for r in items)
        peak = statistics.median(r["peak_mb"] for r in items)
        after = statistics.median(r["after_imports_mb"] for r in items)
        totals = ", ".join(f"{r['total_s']:.2f}" for r in items)
        evaluations = ", ".join(f"{r['evaluate_s']:.2f}" for r in items)
        _log(f"| {method} | {total:.2f} ({totals}) | {evaluate:.2f} ({evaluations}) | {peak:,.0f} ({after:,.0f}) |")
    verdicts = {m: items[0]["failing"] for m, items in runs.items() if m in ("tallies", "gx-frame")}
    if len(verdicts) == 2:
        _log("tallies and GX on the frame fail the same expectations" if len(set(map(tuple, verdicts.values()))) == 1
             else f"tallies and GX DISAGREE: {verdicts}")


if __name__ == "__main__":
    main()
