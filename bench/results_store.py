"""The results store at a year's size: 200 models x 8,760 hourly windows, written and queried.

Creates its own database (default ``dl_bench_results`` on the local server), migrates it with
Driftline's own Alembic migrations, then:

1. measures ``save_window`` (one more hourly window of one model, through ``driftline/storage/results.py``) on the
   empty store;
2. bulk-fills a year of results inside PostgreSQL (``generate_series`` over hours x models joined to a
   template of 24 realistic windows from :func:`driftline.tasks.report.synthetic.synthetic_results`: a
   20-feature model, 15 numeric + 5 categorical, default metrics, completeness, performance, concept
   drift and operational rows = 110 rows per window), in time order as hourly runs would write it, plus
   the run log (one row per model-window);
3. measures, at that size, ``save_window`` again (new windows and reruns), the queries users run —
   ``load_results`` for a model's last week (``driftline results``), the report's ``load_report_data``,
   every Grafana panel and variable query of ``deployments/grafana/driftline.json``, the latest
   verdict per model — with EXPLAIN (ANALYZE, BUFFERS) of each;
4. if the installed migrations go beyond the schema measured, upgrades (timing the migration on the
   populated store) and measures everything again, side by side.

    .venv/bin/python bench/results_store.py                  # a year: ~193M rows, ~105 GB of disk
    .venv/bin/python bench/results_store.py --hours 4380     # half a year, as measured in docs/scale.md
    .venv/bin/python bench/results_store.py --keep           # keep the database afterwards

Half a year (96M rows, 53 GB) took about 22 minutes to fill on the 2-core machine. Numbers are medians over
``--repeats`` distinct models (so each repetition reads a model's rows that no earlier repetition
touched); fleet-wide queries that scan the whole table run once. Plans go to ``--plans``. At head, the
``window_start`` indexes of migration 0005 are then dropped and rebuilt to measure with/without/with
side by side (writes and a one-day prune).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from driftline.core.results import Kind, Result
from driftline.core.window import Window
from driftline.stats.registry import ColumnKind
from driftline.storage.engine import dispose_all
from driftline.storage.migrate import current_revision, head_revision, upgrade
from driftline.storage.results import load_results, save_window
from driftline.storage.runs import claim_run
from driftline.tasks.report.synthetic import synthetic_results

SERVER = "postgresql+psycopg://root@127.0.0.1:5432/postgres"
START = datetime(2025, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
NUMERIC = [f"num_{i:02d}" for i in range(15)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
FEATURES: list[tuple[str, ColumnKind]] = [(n, "numeric") for n in NUMERIC] + [(c, "categorical") for c in CATEGORICAL]
TEMPLATE_SLOTS = 24
BASELINE_REVISION = "0004"
GRAFANA = Path(__file__).resolve().parent.parent / "deployments" / "grafana" / "driftline.json"


def model_name(i: int) -> str:
    return f"model_{i:03d}"


# --- the database --------------------------------------------------------------------------------


def create_database(name: str) -> str:
    admin = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(SERVER).set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    dispose_all()
    admin = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def sizes(engine: sa.Engine) -> dict[str, Any]:
    """Rows and on-disk sizes (heap incl. TOAST, each index) of results and runs."""
    out: dict[str, Any] = {}
    with engine.connect() as connection:
        for table in ("results", "runs"):
            rows = connection.execute(sa.text(f"SELECT count(*) FROM driftline.{table}")).scalar_one()
            heap = connection.execute(sa.text(f"SELECT pg_table_size('driftline.{table}')")).scalar_one()
            indexes = connection.execute(
                sa.text(
                    "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
                    "WHERE indrelid = CAST(:t AS regclass) ORDER BY 1"
                ),
                {"t": f"driftline.{table}"},
            ).all()
            out[table] = {
                "rows": rows,
                "table_bytes": heap,
                "indexes": {name: size for name, size in indexes},
                "total_bytes": heap + sum(size for _, size in indexes),
            }
    return out


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


# --- the fill ------------------------------------------------------------------------------------


def load_template(engine: sa.Engine) -> int:
    """24 windows of a 20-feature model's real-shaped results; drift in 5 features from slot 20 on."""
    results, _runs = synthetic_results(
        "template",
        FEATURES,
        START,
        TEMPLATE_SLOTS,
        drift_from=20,
        drifting=NUMERIC[:3] + CATEGORICAL[:2],
        unlabelled_last=0,
        seed=7,
    )
    from driftline.storage.results import _result_values

    rows = []
    for order, result in enumerate(results):
        values = _result_values(result)
        slot = int((result.window_start - START) / HOUR)
        rows.append({**values, "slot": slot, "ord": order, "details": json.dumps(values["details"])})
    with engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE IF EXISTS public.bench_template"))
        connection.execute(
            sa.text(
                "CREATE TABLE public.bench_template (slot int, ord int, kind text, metric text, feature text, "
                "value float8, threshold float8, status text, details jsonb)"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO public.bench_template VALUES "
                "(:slot, :ord, :kind, :metric, :feature, :value, :threshold, :status, CAST(:details AS jsonb))"
            ),
            rows,
        )
    return len(results) // TEMPLATE_SLOTS


def store_references(engine: sa.Engine, models: int) -> None:
    """One fitted reference profile per model (what the report and the model list read), as runs store it."""
    import numpy as np

    from driftline.config.monitors import parse_config
    from driftline.storage.profiles import store_reference
    from driftline.tasks.profiles import fit_reference
    from driftline.tasks.report.synthetic import sample_frame

    names = [model_name(i) for i in range(models)]
    config = parse_config({"models": [model_config(m) for m in names]})
    reference_start = datetime(2024, 12, 1, tzinfo=UTC)
    frame = sample_frame(np.random.default_rng(3), NUMERIC, CATEGORICAL, 5000, reference_start, timedelta(days=7))
    profile = fit_reference(frame, config.model(names[0]))
    for name in names:
        model = config.model(name)
        store_reference(engine, name, model.reference_definition(), Window(reference_start, reference_start
                                                                           + timedelta(days=7)), profile)


FILL = sa.text(
    """
    INSERT INTO driftline.results
        (model, window_start, window_end, kind, metric, feature, value, threshold, status, details,
         resolution, computed_at)
    SELECT format('model_%s', lpad(m::text, 3, '0')),
           CAST(:t0 AS timestamptz) + h * interval '1 hour',
           CAST(:t0 AS timestamptz) + (h + 1) * interval '1 hour',
           t.kind, t.metric, t.feature, t.value, t.threshold, t.status, t.details, 'hour',
           CAST(:t0 AS timestamptz) + (h + 1) * interval '1 hour' + interval '5 minutes'
    FROM generate_series(CAST(:h0 AS int), CAST(:h1 AS int) - 1) AS h
    CROSS JOIN LATERAL generate_series(0, CAST(:models AS int) - 1) AS m
    CROSS JOIN LATERAL (
        SELECT * FROM public.bench_template WHERE slot = (h + m) % 24 ORDER BY ord
    ) AS t
    """
)

FILL_RUNS = sa.text(
    """
    INSERT INTO driftline.runs
        (model, window_start, window_end, status, row_count, duration_s, attempts, labelled_rows,
         labels_checked_at, started_at, finished_at)
    SELECT format('model_%s', lpad(m::text, 3, '0')),
           CAST(:t0 AS timestamptz) + h * interval '1 hour',
           CAST(:t0 AS timestamptz) + (h + 1) * interval '1 hour',
           'succeeded', 400, 0.45, 1, 380,
           CAST(:t0 AS timestamptz) + (h + 1) * interval '1 hour' + interval '5 minutes',
           CAST(:t0 AS timestamptz) + (h + 1) * interval '1 hour' + interval '5 minutes',
           CAST(:t0 AS timestamptz) + (h + 1) * interval '1 hour' + interval '5 minutes'
    FROM generate_series(CAST(:h0 AS int), CAST(:h1 AS int) - 1) AS h
    CROSS JOIN LATERAL generate_series(0, CAST(:models AS int) - 1) AS m
    """
)


def filled_hours(engine: sa.Engine) -> int:
    """Hours already filled (each chunk commits results and runs together, so runs tell)."""
    with engine.connect() as connection:
        latest = connection.execute(sa.text("SELECT max(window_start) FROM driftline.runs")).scalar_one()
    return 0 if latest is None else int((latest - START) / HOUR) + 1


def fill(engine: sa.Engine, models: int, hours: int, chunk_hours: int) -> float:
    """Insert ``hours`` x ``models`` windows, one committed statement per ``chunk_hours``; returns seconds.

    Resumes after the last committed chunk, also after the server restarted under it (a shared server
    where other test suites restart PostgreSQL)."""
    began = time.perf_counter()
    h0 = filled_hours(engine)
    while h0 < hours:
        h1 = min(hours, h0 + chunk_hours)
        params = {"t0": START, "h0": h0, "h1": h1, "models": models}
        try:
            with engine.begin() as connection:
                connection.execute(FILL, params)
                connection.execute(FILL_RUNS, params)
        except sa.exc.OperationalError as exc:
            print(f"  chunk [{h0}, {h1}) rolled back ({str(exc.orig).splitlines()[0]}); retrying", flush=True)
            time.sleep(10)
            h0 = filled_hours(engine)
            continue
        elapsed = time.perf_counter() - began
        print(f"  filled hours [{h0}, {h1}) of {hours}: {elapsed:.0f} s", flush=True)
        h0 = h1
    return time.perf_counter() - began


# --- measuring -----------------------------------------------------------------------------------


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


class Capture:
    """The SQL (and parameters) a project function sent, to EXPLAIN exactly that statement."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.statements: list[tuple[str, Any]] = []

    def _listen(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        self.statements.append((statement, parameters))

    def __enter__(self) -> Capture:
        sa.event.listen(self.engine, "before_cursor_execute", self._listen)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._listen)


def explain(engine: sa.Engine, statement: str, parameters: Any = None, rollback: bool = False) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of one statement (in a rolled-back transaction when it writes)."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters or {}).all()
        if rollback:
            connection.rollback()
    return "\n".join(row[0] for row in rows)


def explain_only(engine: sa.Engine, statement: str, parameters: Any = None) -> str:
    """The plan without running it (for statements measured once because they scan the whole table)."""
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters or {}).all()
    return "\n".join(row[0] for row in rows)


def measure_prune(engine: sa.Engine, plans: dict[str, str], label: str) -> dict[str, Any]:
    """`driftline db prune`'s work for the oldest day of windows (what a daily prune deletes)."""
    from driftline.storage.retention import prune

    with engine.connect() as connection:
        oldest = connection.execute(sa.text("SELECT min(window_start) FROM driftline.runs")).scalar_one()
    cutoff = oldest + timedelta(days=1)
    delete = (
        "DELETE FROM driftline.results WHERE window_start >= %(a)s AND window_start < %(b)s AND resolution = 'hour'"
    )
    plans[f"[{label}] prune: one day's DELETE"] = explain_only(engine, delete, {"a": oldest, "b": cutoff})
    began = time.perf_counter()
    pruned = prune(engine, cutoff)
    return {"seconds": round(time.perf_counter() - began, 2), "results": pruned.results, "runs": pruned.runs}


TIME_INDEXES = {
    "results_window_start": "driftline.results",
    "runs_window_start": "driftline.runs",
}


def measure_time_indexes(engine: sa.Engine, first_hour: int, models: list[str]) -> list[dict[str, Any]]:
    """With, without, with again the window_start indexes of 0005, in the same conditions: save_window of
    new windows and a prune of the next oldest day in each round; the rebuild is timed too."""
    from driftline.storage.retention import prune

    rounds = []
    for i, state in enumerate(("with", "without", "with")):
        if state == "without":
            with engine.begin() as connection:
                for name in TIME_INDEXES:
                    connection.execute(sa.text(f"DROP INDEX driftline.{name}"))
        rebuild = None
        if i == 2:
            began = time.perf_counter()
            with engine.begin() as connection:
                for name, table in TIME_INDEXES.items():
                    connection.execute(sa.text(f"CREATE INDEX {name} ON {table} (window_start)"))
            rebuild = round(time.perf_counter() - began, 1)
        writes = measure_writes(engine, first_hour + i, models, {})
        with engine.connect() as connection:
            oldest = connection.execute(sa.text("SELECT min(window_start) FROM driftline.runs")).scalar_one()
        began = time.perf_counter()
        pruned = prune(engine, oldest + timedelta(days=1))
        rounds.append({
            "indexes": state,
            "load_average": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
            "save_window_new_ms": writes["save_window_new_ms"],
            "save_window_rerun_ms": writes["save_window_rerun_ms"],
            "prune_day_seconds": round(time.perf_counter() - began, 2),
            "pruned_results": pruned.results,
            "rebuild_seconds": rebuild,
        })
        print(f"  time indexes {state}: {rounds[-1]}", flush=True)
    return rounds


def window_results(model: str, window: Window, seed: int) -> list[Result]:
    results, _runs = synthetic_results(model, FEATURES, window.start, 1, seed=seed, unlabelled_last=0)
    return results


def measure_writes(engine: sa.Engine, hour: int, models: list[str], plans: dict[str, str]) -> dict[str, Any]:
    """save_window of one new hourly window (110 rows) per model, then a rerun of the same window."""
    window = Window(START + hour * HOUR, START + (hour + 1) * HOUR)
    kinds = list(Kind)
    new, rerun = [], []
    for i, model in enumerate(models):
        results = window_results(model, window, seed=i)
        claim_run(engine, model, window)
        began = time.perf_counter()
        save_window(engine, model, window, results, kinds, 400, 0.45, labelled_rows=380)
        new.append(time.perf_counter() - began)
        claim_run(engine, model, window)
        began = time.perf_counter()
        with Capture(engine) as captured:
            save_window(engine, model, window, results, kinds, 400, 0.45, labelled_rows=380)
        rerun.append(time.perf_counter() - began)
    delete = next(s for s in captured.statements if s[0].lstrip().upper().startswith("DELETE"))
    plans["save_window: the window's DELETE (a rerun; rolled back)"] = explain(engine, *delete, rollback=True)
    return {
        "save_window_new_ms": median_ms(new),
        "save_window_rerun_ms": median_ms(rerun),
        "save_window_new_max_ms": round(max(new) * 1000, 1),
        "rows_per_window": len(results),
        "n": len(models),
    }


def grafana_queries(model: str, start: datetime, end: datetime) -> dict[str, str]:
    """Every SQL of the dashboard (panels and variables) with Grafana's macros filled in as it does."""
    dashboard = json.loads(GRAFANA.read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            found[f"variable ${variable['name']}"] = variable["query"]
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            if target.get("rawSql"):
                found[f"panel: {panel['title']}"] = target["rawSql"]
    features = ", ".join(f"'{name}'" for name, _ in FEATURES)
    metrics = "'ks', 'wasserstein', 'psi', 'jensen_shannon', 'chi_square', 'unseen_share'"
    time_filter = f"window_start BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'"
    # Not in the dashboard: its two per-model variables bounded by the dashboard's time range.
    for variable in ("feature", "metric"):
        found[f"variable ${variable} within the time range (alternative)"] = (
            f"SELECT DISTINCT {variable} FROM driftline.results WHERE model = ${{model:sqlstring}} "
            "AND kind = 'data_drift' AND feature IS NOT NULL AND $__timeFilter(window_start) ORDER BY 1"
        )
    out = {}
    for name, sql in found.items():
        sql = (
            sql.replace("${model:sqlstring}", f"'{model}'")
            .replace("${feature:sqlstring}", features)
            .replace("${metric:sqlstring}", metrics)
            .replace("$__timeFilter(window_start)", time_filter)
        )
        out[name] = sql
    return out


LATEST_NAIVE = """
SELECT r.model, max(CASE r.status WHEN 'alert' THEN 3 WHEN 'warning' THEN 2 WHEN 'unknown' THEN 1 ELSE 0 END)
FROM driftline.results r
JOIN (SELECT model, max(window_start) AS latest FROM driftline.results WHERE resolution = 'hour' GROUP BY model) l
  ON l.model = r.model AND r.window_start = l.latest AND r.resolution = 'hour'
GROUP BY r.model ORDER BY 1
"""

# The same answer, one index descent per model: the models come from the (small) reference profiles.
LATEST_PER_MODEL = """
SELECT m.model, w.latest, w.worst
FROM (SELECT DISTINCT model FROM driftline.reference_profiles) m
CROSS JOIN LATERAL (
    SELECT r.window_start AS latest,
           max(CASE r.status WHEN 'alert' THEN 3 WHEN 'warning' THEN 2 WHEN 'unknown' THEN 1 ELSE 0 END) AS worst
    FROM driftline.results r
    WHERE r.model = m.model AND r.resolution = 'hour'
      AND r.window_start = (SELECT max(window_start) FROM driftline.results
                            WHERE model = m.model AND resolution = 'hour')
    GROUP BY r.window_start
) w ORDER BY 1
"""

# `SELECT DISTINCT model FROM driftline.results` as a loose index scan (one descent per model).
DISTINCT_MODELS_SKIP = """
WITH RECURSIVE m AS (
    (SELECT model FROM driftline.results ORDER BY model LIMIT 1)
    UNION ALL
    SELECT (SELECT model FROM driftline.results WHERE model > m.model ORDER BY model LIMIT 1)
    FROM m WHERE m.model IS NOT NULL
)
SELECT model FROM m WHERE model IS NOT NULL
"""


# A fleet-wide question with no model in it: what alerted anywhere in the last 24 hours.
ALERTS_LAST_DAY = """
SELECT model, kind, count(*) AS alerts
FROM driftline.results
WHERE window_start >= CAST('{start}' AS timestamptz) AND window_start < CAST('{end}' AS timestamptz)
  AND resolution = 'hour' AND status = 'alert'
GROUP BY 1, 2 ORDER BY 3 DESC
"""


def timed_sql(engine: sa.Engine, sql: str) -> tuple[float, int]:
    with engine.connect() as connection:
        began = time.perf_counter()
        rows = connection.exec_driver_sql(sql).all()
        return time.perf_counter() - began, len(rows)


def measure_reads(
    engine: sa.Engine, end: datetime, models: list[str], plans: dict[str, str], fleet_repeats: int
) -> dict[str, Any]:
    """A model's last week through load_results, the report and the dashboard; fleet-wide queries."""
    from driftline.config.monitors import parse_config
    from driftline.tasks.report.data import load_report_data

    start = end - timedelta(days=7)
    out: dict[str, Any] = {}
    samples: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    config = parse_config({"models": [model_config(m) for m in models]})
    for model in models:
        began = time.perf_counter()
        rows = load_results(engine, model, start, end)
        samples.setdefault("load_results: last week (driftline results)", []).append(time.perf_counter() - began)
        counts["load_results: last week (driftline results)"] = len(rows)
        began = time.perf_counter()
        data = load_report_data(engine, config.model(model), start, end)
        samples.setdefault("load_report_data: last week (driftline report)", []).append(time.perf_counter() - began)
        counts["load_report_data: last week (driftline report)"] = len(data.results)
        for name, sql in grafana_queries(model, start, end).items():
            if name == "variable $model":
                continue  # fleet-wide: below
            seconds, n = timed_sql(engine, sql)
            samples.setdefault(f"grafana {name}", []).append(seconds)
            counts[f"grafana {name}"] = n
    for name, values in samples.items():
        out[name] = {"median_ms": median_ms(values), "max_ms": round(max(values) * 1000, 1), "rows": counts[name]}
    model = models[0]
    with Capture(engine) as captured:
        load_results(engine, model, start, end)
    plans["load_results: last week"] = explain(engine, *captured.statements[-1])
    for name, sql in grafana_queries(model, start, end).items():
        plans[f"grafana {name}"] = explain(engine, sql)
    fleet = {
        "grafana variable $model (SELECT DISTINCT model FROM results)": grafana_queries(model, start, end)[
            "variable $model"
        ],
        "the same as a loose index scan (recursive CTE)": DISTINCT_MODELS_SKIP,
        "latest verdict per model: GROUP BY over all results": LATEST_NAIVE,
        "latest verdict per model: one index descent per model (LATERAL)": LATEST_PER_MODEL,
        "alerts of all models in the last 24 hours": ALERTS_LAST_DAY.format(start=end - timedelta(days=1), end=end),
    }
    for name, sql in fleet.items():
        runs = [timed_sql(engine, sql)]
        if runs[0][0] < 10:  # a whole-table scan is measured once
            runs += [timed_sql(engine, sql) for _ in range(fleet_repeats - 1)]
        out[name] = {
            "median_ms": median_ms([r[0] for r in runs]),
            "max_ms": round(max(r[0] for r in runs) * 1000, 1),
            "rows": runs[0][1],
            "n": len(runs),
        }
        plans[name] = explain(engine, sql) if runs[0][0] < 10 else explain_only(engine, sql)
    return out


def model_config(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "table": "bench.predictions",
        "timestamp_column": "ts",
        "task": "classification",
        "features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
        "prediction_column": "prediction",
        "score_column": "score",
        "label_column": "label",
        "latency_column": "latency_ms",
        "reference": {"start": "2024-12-01T00:00:00Z", "end": "2024-12-08T00:00:00Z"},
    }


def measure_cli(url: str, end: datetime, models: list[str]) -> dict[str, Any]:
    """`driftline results --format json` for a model's last week, as a user runs it (a new process)."""
    start = end - timedelta(days=7)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "monitors.yaml"
        config.write_text(yaml.safe_dump({"database_url": url, "models": [model_config(m) for m in models]}))
        wall = []
        for model in models:
            command = [
                str(Path(sys.executable).parent / "driftline"), "results", "--config", str(config),
                "--model", model, "--start", start.isoformat(), "--end", end.isoformat(), "--format", "json",
            ]
            began = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            wall.append(time.perf_counter() - began)
            records = len(json.loads(done.stdout))
    return {"median_ms": median_ms(wall), "max_ms": round(max(wall) * 1000, 1), "rows": records, "n": len(models)}


# --- the run -------------------------------------------------------------------------------------


def measure_all(
    engine: sa.Engine, label: str, write_hour: int, end: datetime, args: argparse.Namespace, plans: dict[str, str]
) -> dict[str, Any]:
    rng = random.Random(f"{label}-{args.seed}")
    names = [model_name(i) for i in range(args.models)]
    writers = rng.sample(names, min(args.repeats, len(names)))
    readers = rng.sample(names, min(args.repeats, len(names)))
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"[{label}] load average {' '.join(load)}; measuring writes", flush=True)
    out: dict[str, Any] = {"load_average": " ".join(load), "revision": current_revision(engine)}
    section_plans: dict[str, str] = {}
    out["writes"] = measure_writes(engine, write_hour, writers, section_plans)
    print(f"[{label}] measuring reads", flush=True)
    out["reads"] = measure_reads(engine, end, readers, section_plans, args.fleet_repeats)
    for name, plan in section_plans.items():
        plans[f"[{label}] {name}"] = plan
    return out


def report(label: str, measured: dict[str, Any]) -> None:
    print(f"\n== {label} (revision {measured['revision']}, load {measured['load_average']})")
    writes = measured["writes"]
    print(
        f"  save_window, {writes['rows_per_window']} rows: new window {writes['save_window_new_ms']} ms, "
        f"rerun {writes['save_window_rerun_ms']} ms (median of {writes['n']}; "
        f"max new {writes['save_window_new_max_ms']} ms)"
    )
    for name, value in measured["reads"].items():
        print(f"  {value['median_ms']:>10} ms  (max {value['max_ms']:>9} ms, {value['rows']:>6} rows)  {name}")
    if "cli" in measured:
        cli = measured["cli"]
        print(f"  {cli['median_ms']:>10} ms  (max {cli['max_ms']:>9} ms, {cli['rows']:>6} rows)  driftline results "
              f"--format json, last week, a new process each (median of {cli['n']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="dl_bench_results", help="created (dropped first) on the local server")
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--hours", type=int, default=8760, help="hourly windows per model (8,760 = a year)")
    parser.add_argument("--chunk-hours", type=int, default=24, help="hours per committed fill statement")
    parser.add_argument("--repeats", type=int, default=25, help="models measured (each a distinct one)")
    parser.add_argument("--fleet-repeats", type=int, default=3, help="repetitions of the fleet-wide queries")
    parser.add_argument("--cli-repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="keep and resume an existing fill (no empty-store run)")
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--plans", type=Path, default=Path(tempfile.gettempdir()) / "results_store_plans.txt")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements here")
    args = parser.parse_args()

    url = sa.make_url(SERVER).set(database=args.database).render_as_string(hide_password=False)
    if not args.reuse:
        url = create_database(args.database)
    from driftline.storage.engine import get_engine

    engine = get_engine(url)
    plans: dict[str, str] = {}
    measured: dict[str, Any] = {"models": args.models, "hours": args.hours}
    try:
        if not args.reuse:
            upgrade(engine, BASELINE_REVISION)
            end = START + timedelta(days=7)
            measured["empty store"] = {"writes": measure_writes(engine, 0, [model_name(i) for i in range(
                min(args.repeats, args.models))], plans), "revision": BASELINE_REVISION}
            with engine.begin() as connection:
                connection.execute(sa.text("TRUNCATE driftline.results, driftline.runs"))
        elif current_revision(engine) is None:
            upgrade(engine, BASELINE_REVISION)
        per_window = load_template(engine)
        store_references(engine, args.models)
        print(f"filling {args.models} models x {args.hours} hours x {per_window} rows", flush=True)
        measured["fill_seconds"] = round(fill(engine, args.models, args.hours, args.chunk_hours), 1)
        began = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("VACUUM ANALYZE driftline.results"))
            connection.execute(sa.text("VACUUM ANALYZE driftline.runs"))
        measured["vacuum_analyze_seconds"] = round(time.perf_counter() - began, 1)
        end = START + args.hours * HOUR
        label = f"before (schema {current_revision(engine)})"
        measured["sizes before"] = sizes(engine)
        measured[label] = measure_all(engine, label, args.hours, end, args, plans)
        report(label, measured[label])
        if current_revision(engine) != head_revision():
            print(f"upgrading the populated store to {head_revision()}", flush=True)
            began = time.perf_counter()
            upgrade(engine)
            measured["migration_seconds"] = round(time.perf_counter() - began, 1)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(sa.text("ANALYZE driftline.results"))
            label = f"after (schema {current_revision(engine)})"
            measured["sizes after"] = sizes(engine)
            measured[label] = measure_all(engine, label, args.hours + 1, end, args, plans)
        names = random.Random(args.seed).sample([model_name(i) for i in range(args.models)], args.cli_repeats)
        measured[label]["cli"] = measure_cli(url, end, names)
        report(label, measured[label])
        if current_revision(engine) == head_revision():
            measured[label]["prune_oldest_day"] = prune_day = measure_prune(engine, plans, label)
            print(f"  driftline db prune of the oldest day: {prune_day}")
            measured["time indexes side by side"] = measure_time_indexes(
                engine, args.hours + 2, random.Random(args.seed + 1).sample(
                    [model_name(i) for i in range(args.models)], min(args.repeats, args.models))
            )
    finally:
        args.plans.write_text("\n\n".join(f"### {k}\n{v}" for k, v in plans.items()) + "\n", encoding="utf-8")
        if args.json:
            args.json.write_text(json.dumps(measured, indent=2, default=str), encoding="utf-8")
        if not args.keep:
            drop_database(args.database)
    print(json.dumps({k: v for k, v in measured.items() if k.startswith(("sizes", "empty", "fill", "vacuum", "time",
                                                                          "migration"))}, indent=1, default=str))


if __name__ == "__main__":
    main()
