"""Driftline side by side with Evidently and NannyML, and with the database's own read floor.

One command (from the repository root, with the project installed in .venv)::

    .venv/bin/python bench/peers.py --rows 100000 1000000 [--repeat 3] [--out peers.md]

Seeds, per size N, a prediction log in PostgreSQL (database ``dl_bench_peers`` on
``postgresql://root@127.0.0.1:5432``, created if missing; ``--database-url`` to change): a
200,000-row reference day, then one monitored hour of N rows; 20 features (15 numeric of varied
shapes with ~1% NaN, 5 categorical of 3-50 categories), drift injected in the hour in 5 of them
(n00, n01, n02, c1, c3), plus a score, a prediction and a label. Then it measures, each run in its
own subprocess (medians of ``--repeat`` runs, rounds interleaved so load drifts hit every tool alike):

- **copy**: the read floor — ``COPY (SELECT <the window's columns>) TO STDOUT (FORMAT csv)`` through
  psycopg, bytes discarded (and the same in ``FORMAT binary``);
- **driftline**: the public flow ``monitor_model`` (flows/monitor.py) on the hour, every default
  monitor (read -> data drift, concept drift, operational, performance, completeness -> persist),
  against a local Prefect server; the reference profile is fitted by an untimed first run, as in
  steady state. Imports are timed apart (``process`` row: the child's whole life), and the time of
  each Prefect task is read back from the API;
- **driftline-drift**: the same flow for a second model on the same table whose ``monitors:`` is
  ``[data_drift]`` only — the part the peers do;
- **driftline-baseline** (with ``--baseline DIR``): the ``driftline`` measurement again, run by another
  checkout's code (``DIR/.venv``, e.g. a ``git worktree`` of an earlier commit), so a change is
  measured before and after in the same run, rounds interleaved;
- **evidently**: ``Report([DataDriftPreset()])`` on the same rows in memory, read time (COPY csv ->
  Arrow -> pandas, window and reference) reported apart;
- **nannyml**: ``UnivariateDriftCalculator`` (NannyML's default method, Jensen-Shannon, with a
  constant 0.1 threshold; the hour as one chunk) fitted on the reference and calculated on the
  window, read time apart.

Peak RSS is each child's own high-water mark (``VmHWM``). Driftline runs in ``.venv``; the peers in ``.venv-bench``
(created with ``pip install -e '.[bench]'`` if missing: Evidently 0.7 needs pandas < 3). Prints a
markdown table (and writes it to ``--out``), and which features each tool flagged.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgresql://root@127.0.0.1:5432/dl_bench_peers"
SCHEMA = "bench_peers"
REFERENCE_ROWS = 200_000
REFERENCE_START = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW_START = datetime(2026, 1, 2, tzinfo=UTC)
WINDOW_END = WINDOW_START + timedelta(hours=1)
NUMERIC = [f"n{i:02d}" for i in range(15)]
CATEGORICAL = [f"c{i}" for i in range(5)]
CARDINALITY = [3, 5, 10, 20, 50]
FEATURES = NUMERIC + CATEGORICAL
DRIFTED = ["n00", "n01", "n02", "c1", "c3"]
COLUMNS = ["ts", *FEATURES, "score", "prediction", "label"]
SEED_VERSION = "peers-v2"
MARK = "PEERS-RESULT "
TOOLS = ["copy", "driftline", "driftline-drift", "evidently", "nannyml"]
BASELINE = "driftline-baseline"


# --------------------------------------------------------------------------------------------- data


def _numeric(rng: Any, i: int, n: int, drifted: bool) -> Any:
    import numpy as np

    shape = i % 8
    if shape == 0:
        values = rng.normal(0.5 if drifted else 0.0, 1.0, n)
    elif shape == 1:
        values = rng.lognormal(0.0, 1.0, n) * (1.5 if drifted else 1.0)
    elif shape == 2:
        values = rng.exponential(2.8 if drifted else 2.0, n)
    elif shape == 3:
        values = rng.uniform(0, 10, n)
    elif shape == 4:
        values = rng.poisson(4, n).astype(float)
    elif shape == 5:
        values = rng.standard_t(3, n)
    elif shape == 6:
        values = np.where(rng.uniform(size=n) < 0.3, rng.normal(-2, 0.5, n), rng.normal(2, 1.0, n))
    else:
        values = rng.beta(2, 5, n) * 100
    values[rng.uniform(size=n) < 0.01] = np.nan
    return values


def _categorical(rng: Any, i: int, n: int, drifted: bool) -> Any:
    import numpy as np

    k = CARDINALITY[i]
    weights = 1.0 / np.arange(1, k + 1)
    if drifted and i == 1:  # c1: a fifth of the mass moves from the first category to the last
        weights = weights / weights.sum()
        weights[0] -= 0.2
        weights[-1] += 0.2
    if drifted and i == 3:  # c3: five mid-ranked categories three times as frequent
        weights[5:10] *= 3
    labels = np.array([f"{'abcde'[i]}{j:02d}" for j in range(k)], dtype=object)
    return labels[rng.choice(k, size=n, p=weights / weights.sum())]


def _chunk(rng: Any, n: int, start: datetime, seconds: float, drift: bool) -> Any:
    import numpy as np
    import pyarrow as pa

    offsets = np.sort(rng.uniform(0, seconds, n))
    stamps = np.datetime64(start.replace(tzinfo=None), "us") + (offsets * 1e6).astype("timedelta64[us]")
    arrays: dict[str, Any] = {"ts": pa.array(stamps, type=pa.timestamp("us", tz="UTC"))}
    for i, name in enumerate(NUMERIC):
        arrays[name] = pa.array(_numeric(rng, i, n, drift and name in DRIFTED), from_pandas=True)
    for i, name in enumerate(CATEGORICAL):
        arrays[name] = pa.array(_categorical(rng, i, n, drift and name in DRIFTED), type=pa.string())
    score = rng.beta(2, 2, n)
    arrays["score"] = pa.array(score)
    arrays["prediction"] = pa.array((score > 0.5).astype(float))
    arrays["label"] = pa.array((rng.uniform(size=n) < score).astype(float))
    return pa.table(arrays)


def seed(url: str, rows: int) -> str:
    """Table ``bench_peers.log_<rows>`` (reference day + the hour), unless already seeded."""
    import numpy as np
    import psycopg
    import pyarrow.csv as pacsv

    table = f"{SCHEMA}.log_{rows}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        found = connection.execute(
            "SELECT obj_description(c.oid) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace "
            "WHERE s.nspname = %s AND c.relname = %s",
            (SCHEMA, f"log_{rows}"),
        ).fetchone()
        if found and found[0] == SEED_VERSION:
            return table
        connection.execute(f"DROP TABLE IF EXISTS {table}")
        columns = ", ".join(
            ["ts timestamptz NOT NULL"]
            + [f"{c} double precision" for c in NUMERIC]
            + [f"{c} text" for c in CATEGORICAL]
            + ["score double precision", "prediction double precision", "label double precision"]
        )
        connection.execute(f"CREATE TABLE {table} ({columns})")
        rng = np.random.default_rng(rows)
        t0 = time.perf_counter()
        with connection.cursor() as cursor, cursor.copy(f"COPY {table} FROM STDIN (FORMAT csv)") as copy:
            plan = [(REFERENCE_ROWS, REFERENCE_START, 86_400.0, False), (rows, WINDOW_START, 3_600.0, True)]
            for total, start, seconds, drift in plan:
                step = 250_000
                for first in range(0, total, step):
                    n = min(step, total - first)
                    span = seconds * n / total
                    chunk = _chunk(rng, n, start + timedelta(seconds=seconds * first / total), span, drift)
                    buffer = io.BytesIO()
                    pacsv.write_csv(chunk, buffer, pacsv.WriteOptions(include_header=False))
                    copy.write(buffer.getvalue())
        connection.execute(f"CREATE INDEX ON {table} (ts)")
        connection.execute(f"ANALYZE {table}")
        connection.execute(f"COMMENT ON TABLE {table} IS '{SEED_VERSION}'")
        print(
            f"seeded {table}: {REFERENCE_ROWS:,} reference + {rows:,} window rows in {time.perf_counter() - t0:.0f} s"
        )
    return table


# ------------------------------------------------------------------------------------------ workers


def _peak_mib() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: that survives exec, so a child would report at
    least the peak of the process it was forked from."""
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _select(table: str, columns: list[str], start: datetime, end: datetime) -> str:
    return f"SELECT {', '.join(columns)} FROM {table} WHERE ts >= '{start.isoformat()}' AND ts < '{end.isoformat()}'"


def worker_copy(url: str, rows: int) -> dict[str, Any]:
    import psycopg

    table = f"{SCHEMA}.log_{rows}"
    out: dict[str, Any] = {}
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        for form in ("csv", "binary"):
            t0 = time.perf_counter()
            size = 0
            with cursor.copy(
                f"COPY ({_select(table, COLUMNS, WINDOW_START, WINDOW_END)}) TO STDOUT (FORMAT {form})"
            ) as copy:
                for data in copy:
                    size += len(data)
            out[f"copy_{form}_s"] = time.perf_counter() - t0
            out[f"copy_{form}_bytes"] = size
    out["peak_mib"] = _peak_mib()
    return out


def _read_frame(url: str, table: str, start: datetime, end: datetime) -> Any:
    """The peers' read: COPY csv -> Arrow -> pandas (the fast route; pandas.read_sql is ~3x slower)."""
    import psycopg
    import pyarrow as pa
    import pyarrow.csv as pacsv

    buffer = io.BytesIO()
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        with cursor.copy(f"COPY ({_select(table, FEATURES, start, end)}) TO STDOUT (FORMAT csv, HEADER)") as copy:
            for data in copy:
                buffer.write(data)
    types = {c: pa.float64() for c in NUMERIC} | {c: pa.string() for c in CATEGORICAL}
    frame = pacsv.read_csv(
        io.BytesIO(buffer.getvalue()), convert_options=pacsv.ConvertOptions(column_types=types)
    ).to_pandas()
    return frame


def _read_both(url: str, rows: int) -> tuple[Any, Any, float]:
    table = f"{SCHEMA}.log_{rows}"
    t0 = time.perf_counter()
    reference = _read_frame(url, table, REFERENCE_START, WINDOW_START)
    window = _read_frame(url, table, WINDOW_START, WINDOW_END)
    return reference, window, time.perf_counter() - t0


def worker_evidently(url: str, rows: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    import evidently
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    imported = time.perf_counter() - t0
    reference, window, read_s = _read_both(url, rows)
    t0 = time.perf_counter()
    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(window, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    drift_s = time.perf_counter() - t0
    verdict = {t["metric_config"]["metric_id"]: str(t["status"]) for t in snapshot.dict()["tests"]}
    flagged, methods = [], set()
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            methods.add(config["method"])
            if verdict.get(metric["id"], "").upper().endswith("FAIL"):
                flagged.append(config["column"])
    return {
        "version": evidently.__version__,
        "import_s": imported,
        "read_s": read_s,
        "drift_s": drift_s,
        "flagged": sorted(flagged),
        "methods": sorted(methods),
        "peak_mib": _peak_mib(),
    }


def worker_nannyml(url: str, rows: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    import nannyml as nml
    from nannyml.thresholds import ConstantThreshold

    imported = time.perf_counter() - t0
    reference, window, read_s = _read_both(url, rows)
    t0 = time.perf_counter()
    # The hour is one chunk. NannyML's default thresholds (mean ± 3 std of the reference's chunks)
    # need several reference chunks: with one they collapse to 0 and flag every feature, so its
    # Jensen-Shannon distance gets a constant 0.1 (Evidently's default for the same distance).
    calculator = nml.UnivariateDriftCalculator(
        column_names=FEATURES,
        treat_as_categorical=CATEGORICAL,
        chunk_number=1,
        thresholds={"jensen_shannon": ConstantThreshold(upper=0.1)},
    )
    calculator.fit(reference)
    result = calculator.calculate(window)
    drift_s = time.perf_counter() - t0
    frame = result.filter(period="analysis").to_df()
    flagged, methods = set(), set()
    for column in frame.columns:
        if column[-1] == "alert":
            methods.add(column[1])
            if bool(frame[column].any()):
                flagged.add(column[0])
    return {
        "version": nml.__version__,
        "import_s": imported,
        "read_s": read_s,
        "drift_s": drift_s,
        "flagged": sorted(flagged),
        "methods": sorted(methods),
        "peak_mib": _peak_mib(),
    }


def _task_times(flow_run_id: Any) -> dict[str, float]:
    """Seconds per task of the flow run, as the Prefect API recorded them (name suffixes dropped)."""
    import re

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    # Task runs reach the server as events, recorded a moment later: wait until all are final.
    with get_client(sync_client=True) as client:
        for _ in range(100):
            task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            if task_runs and all(run.state is not None and run.state.is_final() for run in task_runs):
                break
            time.sleep(0.2)
    times: dict[str, float] = {}
    for run in task_runs:
        name = re.sub(r"-[0-9a-f]{3}$", "", run.name)
        times[name] = times.get(name, 0.0) + run.total_run_time.total_seconds()
    return dict(sorted(times.items(), key=lambda kv: -kv[1]))


def worker_driftline(url: str, rows: int, config: str, model: str) -> dict[str, Any]:
    born = time.perf_counter()
    import great_expectations  # noqa: F401  (a served process has it imported already)
    import psycopg

    from driftline.flows.monitor import monitor_model

    imported = time.perf_counter() - born
    t0 = time.perf_counter()
    state = monitor_model(model, WINDOW_END, config, return_state=True)
    window_s = time.perf_counter() - t0
    outcome = state.result()
    steps = _task_times(state.state_details.flow_run_id)
    with psycopg.connect(url) as connection:
        found = connection.execute(
            "SELECT feature, metric, status FROM driftline.results WHERE model = %s AND window_start = %s "
            "AND kind = 'data_drift' AND feature IS NOT NULL",
            (model, WINDOW_START),
        ).fetchall()
        kinds = connection.execute(
            "SELECT kind, count(*) FROM driftline.results WHERE model = %s AND window_start = %s GROUP BY kind",
            (model, WINDOW_START),
        ).fetchall()
    return {
        "import_s": imported,
        "window_s": window_s,
        "steps": steps,
        "process_s": time.perf_counter() - born,
        "rows": outcome.get("rows") if isinstance(outcome, dict) else None,
        "flagged": sorted({f for f, _, s in found if s == "alert"}),
        "warned": sorted({f for f, _, s in found if s == "warning"} - {f for f, _, s in found if s == "alert"}),
        "results_by_kind": dict(kinds),
        "peak_mib": _peak_mib(),
    }


# ------------------------------------------------------------------------------------- orchestrator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_database(url: str) -> None:
    import psycopg

    for _ in range(120):
        try:
            with psycopg.connect(url, connect_timeout=2) as connection:
                connection.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            time.sleep(1)
    raise RuntimeError("the database did not come back in 2 minutes")


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def ensure_bench_venv(python: Path) -> None:
    if python.exists():
        return
    venv = python.parent.parent
    print(f"creating {venv} (pip install -e '.[bench]') ...", flush=True)
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
    (venv / ".gitignore").write_text("*\n", encoding="utf-8")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", f"{ROOT}[bench]"], check=True)


def write_config(path: Path, url: str, sizes: list[int]) -> None:
    import yaml

    models = [
        {
            "name": f"peers_{rows}{suffix}",
            "table": f"{SCHEMA}.log_{rows}",
            "timestamp_column": "ts",
            "task": "classification",
            "features": {"numeric": NUMERIC, "categorical": CATEGORICAL},
            "prediction_column": "prediction",
            "score_column": "score",
            "label_column": "label",
            "reference": {"start": REFERENCE_START.isoformat(), "end": WINDOW_START.isoformat()},
            **({"monitors": [{"name": "data_drift"}]} if suffix else {}),
        }
        for rows in sizes
        for suffix in ("", "_drift")
    ]
    sa_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    path.write_text(yaml.safe_dump({"database_url": sa_url, "models": models}, sort_keys=False), encoding="utf-8")


def run_child(python: Path, tool: str, rows: int, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    command = [str(python), str(Path(__file__).resolve()), "--worker", tool, "--rows", str(rows)]
    command += ["--database-url", args.database_url, "--config", str(args.config)]
    for attempt in range(3):
        t0 = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        lines = [line for line in done.stdout.splitlines() if line.startswith(MARK)]
        if done.returncode == 0 and lines:
            break
        # The machine's PostgreSQL is shared: another session's fault test may restart it mid-run.
        restarted = any(e in done.stderr for e in ("AdminShutdown", "OperationalError", "DatabaseUnavailable"))
        if not restarted or attempt == 2:
            raise RuntimeError(f"{tool} at {rows:,} rows failed ({done.returncode}):\n{done.stderr[-3000:]}")
        print(f"{tool} at {rows:,} rows: the database went away mid-run; waiting for it, then again", flush=True)
        _wait_for_database(args.database_url)
    result: dict[str, Any] = json.loads(lines[-1][len(MARK) :])
    result["wall_s"] = wall
    return result


def start_prefect(env: dict[str, str], home: Path) -> tuple[subprocess.Popen[bytes], str]:
    import urllib.request

    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    # Services on (the task run recorder is one), but not those that schedule or cancel runs.
    server_env = {**env, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    for service in ("SCHEDULER", "LATE_RUNS", "FOREMAN", "CANCELLATION_CLEANUP", "PAUSE_EXPIRATIONS", "TRIGGERS"):
        server_env[f"PREFECT_SERVER_SERVICES_{service}_ENABLED"] = "false"
    prefect = str(ROOT / ".venv" / "bin" / "prefect")
    process = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=server_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(240):
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError("the Prefect server did not start in 120 s")


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _fmt(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def _row(rows: int, floor: float, window: float, tool: str, seconds: float, rss: str, flagged: str) -> str:
    """A table row; ``window`` (Driftline's window) is what the peers' times are divided by."""
    faster = f"{seconds / window:.1f}×" if tool.startswith(("Evidently", "NannyML")) and "read" not in tool else ""
    return f"| {rows:,} | {tool} | {_fmt(seconds)} | {seconds / floor:.2f}× | {faster} | {rss} | {flagged} |"


def report(
    measured: dict[int, dict[str, list[dict[str, Any]]]], load: list[str], code: str, baseline: str | None = None
) -> str:
    """The markdown table and its notes; rows only for the tools measured (copy and driftline always)."""
    lines = [
        "| rows in the hour | tool | time (median) | vs COPY csv floor | Evidently/NannyML time ÷ Driftline window "
        "| peak RSS | flagged (drifted: n00 n01 n02 c1 c3) |",
        "|---|---|---|---|---|---|---|",
    ]
    for rows, runs in measured.items():
        floor = _median(runs["copy"], "copy_csv_s")
        window = _median(runs["driftline"], "window_s")

        def rss(tool: str, runs: dict[str, list[dict[str, Any]]] = runs) -> str:
            return f"{max(r['peak_mib'] for r in runs[tool]):,.0f} MiB"

        d = runs["driftline"]
        flagged = " ".join(d[-1]["flagged"]) + (f" (warning: {' '.join(d[-1]['warned'])})" if d[-1]["warned"] else "")
        lines += [
            _row(rows, floor, window, "COPY csv → discard (the floor)", floor, rss("copy"), "—"),
            _row(
                rows, floor, window, "COPY binary → discard", _median(runs["copy"], "copy_binary_s"), rss("copy"), "—"
            ),
            _row(
                rows,
                floor,
                window,
                "**Driftline** window: read → all monitors → persist",
                window,
                rss("driftline"),
                flagged,
            ),
            _row(rows, floor, window, "Driftline process (+ imports)", _median(d, "process_s"), "", ""),
        ]
        if BASELINE in runs:
            b = runs[BASELINE]
            lines += [
                _row(
                    rows,
                    floor,
                    window,
                    f"Driftline window, all monitors, baseline {baseline}",
                    _median(b, "window_s"),
                    rss(BASELINE),
                    " ".join(b[-1]["flagged"]),
                ),
                _row(rows, floor, window, "Driftline process (+ imports), baseline", _median(b, "process_s"), "", ""),
            ]
        if "driftline-drift" in runs:
            lines.append(
                _row(
                    rows,
                    floor,
                    window,
                    "Driftline window, `monitors: [data_drift]` only",
                    _median(runs["driftline-drift"], "window_s"),
                    rss("driftline-drift"),
                    " ".join(runs["driftline-drift"][-1]["flagged"]),
                )
            )
        for name, label in (("evidently", "Evidently DataDriftPreset"), ("nannyml", "NannyML univariate drift")):
            if name not in runs:
                continue
            peer = runs[name]
            seconds = _median(peer, "drift_s")
            lines.append(
                _row(rows, floor, window, f"{label}, drift only", seconds, rss(name), " ".join(peer[-1]["flagged"]))
            )
            read = _median(peer, "read_s")
            lines.append(_row(rows, floor, window, f"{label}: its read alone (COPY→Arrow→pandas)", read, "", ""))
    notes = [
        "",
        f"Runs per cell: {len(next(iter(measured.values()))['copy'])} (median); peak RSS: the child process's "
        "VmHWM, max over runs (a peer's includes its read and its imports).",
        f"Reference: {REFERENCE_ROWS:,} rows. Load average (/proc/loadavg): {'; '.join(load)}.",
        f"Driftline code at the start: {code}." + (f" Baseline: {baseline}." if baseline else ""),
    ]
    for rows, runs in measured.items():
        for name in ("evidently", "nannyml"):
            if name not in runs:
                continue
            last = runs[name][-1]
            notes.append(f"{rows:,} rows, {name} {last['version']}: methods {', '.join(last['methods'])}.")
        notes.append(f"{rows:,} rows, Driftline results by kind: {runs['driftline'][-1]['results_by_kind']}.")
        for tool in ("driftline", BASELINE, "driftline-drift"):
            if tool not in runs:
                continue
            steps = runs[tool][0]["steps"]
            names = [n for n in steps if all(n in r["steps"] for r in runs[tool])]
            shown = ", ".join(f"{n} {statistics.median(r['steps'][n] for r in runs[tool]):.2f} s" for n in names)
            notes.append(f"{rows:,} rows, {tool} tasks (Prefect task run times, median): {shown}.")
    return "\n".join(lines) + "\n" + "\n".join(notes)


def _code_state(root: Path = ROOT) -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
    )
    changed = [line[3:] for line in dirty.stdout.splitlines()]
    return f"commit {head.stdout.strip()}" + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")


def _uptime() -> str:
    with open("/proc/loadavg", encoding="utf-8") as handle:
        return " ".join(handle.read().split()[:3])


def _python_for(tool: str, args: argparse.Namespace, driftline_python: Path) -> Path:
    if tool in ("evidently", "nannyml"):
        return Path(args.bench_python)
    if tool == BASELINE:
        return Path(args.baseline).resolve() / ".venv" / "bin" / "python"
    return driftline_python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", default=os.environ.get("DL_BENCH_PEERS_URL", DEFAULT_URL))
    parser.add_argument("--bench-python", type=Path, default=ROOT / ".venv-bench" / "bin" / "python")
    parser.add_argument("--tools", nargs="+", default=TOOLS, choices=[*TOOLS, BASELINE])
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (with its own .venv) whose Driftline is measured beside this one (driftline-baseline)",
    )
    parser.add_argument("--out", type=Path)
    parser.add_argument("--worker", choices=[*TOOLS, BASELINE], help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        (rows,) = args.rows
        if args.worker.startswith("driftline"):
            # The baseline monitors the same model as "driftline": the same window and monitors, other code.
            model = f"peers_{rows}" + ("_drift" if args.worker == "driftline-drift" else "")
            result = worker_driftline(args.database_url, rows, str(args.config), model)
        else:
            result = {"copy": worker_copy, "evidently": worker_evidently, "nannyml": worker_nannyml}[args.worker](
                args.database_url, rows
            )
        print(MARK + json.dumps(result), flush=True)
        return

    driftline_python = ROOT / ".venv" / "bin" / "python"
    code = _code_state()
    baseline = None
    if args.baseline is not None:
        args.tools = [*args.tools, BASELINE] if BASELINE not in args.tools else args.tools
        baseline = _code_state(args.baseline)
    elif BASELINE in args.tools:
        parser.error("driftline-baseline needs --baseline DIR")
    if {"evidently", "nannyml"} & set(args.tools):
        ensure_bench_venv(args.bench_python)
    ensure_database(args.database_url)
    for rows in args.rows:
        seed(args.database_url, rows)
    home = Path(tempfile.mkdtemp(prefix="peers-prefect-"))
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("DRIFTLINE_DATABASE_URL", None)
    server, api = start_prefect(env, home)
    env["PREFECT_API_URL"] = api
    measured: dict[int, dict[str, list[dict[str, Any]]]] = {}
    load: list[str] = []
    try:
        args.config = home / "monitors.yaml"
        write_config(args.config, args.database_url, args.rows)
        for rows in args.rows:
            runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in args.tools}
            load.append(f"{rows:,} rows: {_uptime()} at start")
            for tool in (BASELINE, "driftline", "driftline-drift"):
                if tool in args.tools:
                    warm = run_child(_python_for(tool, args, driftline_python), tool, rows, args, env)
                    print(
                        f"{rows:,}: {tool} first run (fits the reference profile) {warm['window_s']:.1f} s", flush=True
                    )
            for round_ in range(args.repeat):
                for tool in args.tools:
                    python = _python_for(tool, args, driftline_python)
                    result = run_child(python, tool, rows, args, env)
                    runs[tool].append(result)
                    shown = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in result.items()}
                    print(f"{rows:,} round {round_ + 1} {tool}: {shown}", flush=True)
            load[-1] += f", {_uptime()} at end"
            measured[rows] = runs
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(home, ignore_errors=True)
    if {"copy", "driftline"} <= set(args.tools):
        table = report(measured, load, code, baseline)
        print(table)
        if args.out:
            args.out.write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
