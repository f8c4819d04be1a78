"""Runs in separate OS processes against one results store: two runs of the same window at once, and
a run killed with SIGKILL halfway through its window.

Each child is a tiny Python script calling ``driftline.flows.monitor.monitor_model`` against the
session's Prefect test server (``PREFECT_API_URL``) and the session's PostgreSQL database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from driftline.flows.monitor import monitor_model
from tests.conftest import DAY, model_entry, write_config

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.timeout(240)]

CHILD_TIMEOUT_S = 150

CHILD = """
import json, os, sys, time
from datetime import datetime

model, window_end, config, ready, go = sys.argv[1:6]
from driftline.flows.monitor import monitor_model  # the slow imports happen before the barrier

open(ready, "w").close()
deadline = time.monotonic() + 120
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit(3)
    time.sleep(0.01)
started = time.time()
outcome = monitor_model(model, datetime.fromisoformat(window_end), config)
print("OUTCOME " + json.dumps({**outcome, "started": started, "finished": time.time()}), flush=True)
"""

SLOW_MONITOR = """
import os, time
from driftline.core.results import Kind, Status


def slow(context):
    marker = os.environ.get("SLOWMOD_MARKER")
    if marker:  # the child to be killed: say we are mid-window, then take our time
        open(marker, "w").close()
        time.sleep(90)
    return [context.result(Kind.OPERATIONAL, "slow_check", None, 1.0, None, Status.OK, {"slept": bool(marker)})]
"""


@pytest.fixture
def prefect_url() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url and url.startswith("http://127.0.0.1"), url
    return str(url)


@pytest.fixture
def children(tmp_path: Path, prefect_url: str) -> Iterator[dict[str, Any]]:
    """Where child processes get their script and environment; any child still alive is killed."""
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLINE_", "PREFECT_"))}
    env |= {
        "PREFECT_API_URL": prefect_url,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(tmp_path),
    }
    started: list[subprocess.Popen[bytes]] = []
    yield {"script": script, "env": env, "dir": tmp_path, "started": started}
    for process in started:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _spawn(children: dict[str, Any], model: str, end: datetime, config: Path, name: str, **env: str) -> Any:
    """Start a child; its output goes to files (a full pipe would block a child nobody reads yet)."""
    ready = children["dir"] / f"{name}.ready"
    with open(children["dir"] / f"{name}.out", "w") as out, open(children["dir"] / f"{name}.err", "w") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                str(children["script"]),
                model,
                end.isoformat(),
                str(config),
                str(ready),
                str(children["dir"] / "go"),
            ],
            env=children["env"] | env,
            stdout=out,
            stderr=err,
        )
    process.name = name  # type: ignore[attr-defined]
    process.logs = children["dir"] / name  # type: ignore[attr-defined]
    children["started"].append(process)
    return process, ready


def _stderr(process: Any) -> str:
    return Path(f"{process.logs}.err").read_text(encoding="utf-8", errors="replace")[-3000:]


def _wait_for(path: Path, processes: list[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        for process in processes:
            if process.poll() is not None:
                pytest.fail(f"child {process.name} exited early with {process.returncode}: {_stderr(process)}")
        assert time.monotonic() < deadline, f"timed out waiting for {path.name}"
        time.sleep(0.05)


def _outcome(process: Any) -> dict[str, Any]:
    try:
        process.wait(timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        pytest.fail(f"child {process.name} did not finish in {CHILD_TIMEOUT_S} s (deadlock?): {_stderr(process)}")
    assert process.returncode == 0, _stderr(process)
    out = Path(f"{process.logs}.out").read_text(encoding="utf-8")
    lines = [line for line in out.splitlines() if line.startswith("OUTCOME ")]
    assert lines, out[-2000:] + _stderr(process)
    return dict(json.loads(lines[-1].removeprefix("OUTCOME ")))


def _window_rows(engine: sa.Engine, model: str, start: datetime) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [
            tuple(r)
            for r in connection.execute(
                sa.text(
                    "SELECT kind, metric, feature, value, status FROM driftline.results "
                    "WHERE model = :m AND window_start = :s"
                ),
                {"m": model, "s": start},
            )
        ]


def _run(engine: sa.Engine, model: str, start: datetime) -> dict[str, Any]:
    with engine.connect() as connection:
        row = (
            connection.execute(
                sa.text("SELECT * FROM driftline.runs WHERE model = :m AND window_start = :s"), {"m": model, "s": start}
            )
            .mappings()
            .one()
        )
    return dict(row)


def test_two_processes_run_the_same_window_at_once(
    store: sa.Engine,
    loan_log: dict[str, Any],
    database_url: str,
    children: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    # Every built-in monitor but completeness: Great Expectations' import would add ~5 s of CPU per child.
    monitors = [{"name": n} for n in ("data_drift", "concept_drift", "operational", "performance")]
    loan_config = write_config(
        children["dir"] / "monitors.yaml", [model_entry("loan", loan_log["table"], monitors=monitors)], database_url
    )
    end = DAY + timedelta(hours=15)
    start = end - timedelta(hours=1)
    first, first_ready = _spawn(children, "loan", end, loan_config, "a")
    second, second_ready = _spawn(children, "loan", end, loan_config, "b")
    _wait_for(first_ready, [first, second], CHILD_TIMEOUT_S)
    _wait_for(second_ready, [first, second], CHILD_TIMEOUT_S)
    (children["dir"] / "go").touch()
    outcomes = [_outcome(first), _outcome(second)]

    assert all(o["rows"] == 200 and o["status"] == "alert" for o in outcomes)
    a, b = outcomes
    assert a["started"] < b["finished"] and b["started"] < a["finished"], "the two runs overlapped in time"
    concurrent = _window_rows(store, "loan", start)
    keys = [(kind, metric, feature) for kind, metric, feature, _, _ in concurrent]
    assert len(keys) == len(set(keys)) > 20, "one set of results, no duplicates"
    run = _run(store, "loan", start)
    assert run["status"] == "succeeded" and run["attempts"] == 2
    with store.connect() as connection:
        profiles = connection.execute(
            sa.text("SELECT count(*) FROM driftline.reference_profiles WHERE model = 'loan'")
        ).scalar_one()
    assert profiles == 1, "a reference fitted by both at once is stored once"

    monitor_model("loan", end, str(loan_config))  # one more, alone: the set a single run writes
    single = _window_rows(store, "loan", start)
    assert len(single) == len(concurrent) and set(single) == set(concurrent)


def test_killed_mid_window_is_visible_and_a_rerun_completes_it(
    store: sa.Engine,
    loan_log: dict[str, Any],
    database_url: str,
    children: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = f"slowmod_{uuid.uuid4().hex[:8]}"
    (children["dir"] / f"{module}.py").write_text(SLOW_MONITOR, encoding="utf-8")
    monitors = [{"name": "data_drift"}, {"name": "slow", "path": f"{module}:slow", "kind": "operational"}]
    config = write_config(
        children["dir"] / "monitors.yaml", [model_entry("loan", loan_log["table"], monitors=monitors)], database_url
    )
    end = DAY + timedelta(hours=9)
    start = end - timedelta(hours=1)
    marker = children["dir"] / "in-the-middle"
    (children["dir"] / "go").touch()
    lease_s = 3
    process, _ = _spawn(
        children, "loan", end, config, "killed", SLOWMOD_MARKER=str(marker), DRIFTLINE_RUN_LEASE_S=str(lease_s)
    )
    _wait_for(marker, [process], CHILD_TIMEOUT_S)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL

    run = _run(store, "loan", start)
    assert run["status"] == "running" and run["finished_at"] is None and run["attempts"] == 1
    assert _window_rows(store, "loan", start) == [], "nothing of the killed window was written"

    monkeypatch.syspath_prepend(str(children["dir"]))
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    # Its lease runs out (no heartbeat from a dead process): the next claim of any window of the model
    # marks it failed (abandoned) instead of leaving it `running` until someone reruns that hour.
    time.sleep(lease_s + 1)
    try:
        monitor_model("loan", end + timedelta(hours=1), str(config))
        run = _run(store, "loan", start)
        assert run["status"] == "failed" and run["finished_at"] is not None, run
        assert run["error"].startswith("abandoned: no heartbeat since"), run["error"]
        outcome = monitor_model("loan", end, str(config))
    finally:
        sys.modules.pop(module, None)
    assert outcome["rows"] == 200
    run = _run(store, "loan", start)
    assert run["status"] == "succeeded" and run["attempts"] == 2 and run["finished_at"] is not None
    rows = _window_rows(store, "loan", start)
    assert ("operational", "slow_check", None, 1.0, "ok") in rows
    assert sum(1 for kind, *_ in rows if kind == "data_drift") > 10


HEARTBEAT_MONITOR = """
import time
from driftline.core.results import Kind, Status


def slow(context):
    time.sleep(5)
    return [context.result(Kind.OPERATIONAL, "slow_check", None, 1.0, None, Status.OK, {})]
"""


def test_a_live_window_renews_its_lease_and_is_never_taken_for_abandoned(
    store: sa.Engine,
    loan_log: dict[str, Any],
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A window that runs longer than its lease (5 s of work, a 1.5 s lease) keeps renewing it: a
    sweep running all the while never marks it failed, and it ends succeeded on its first attempt."""
    import threading

    from driftline.storage.runs import sweep_abandoned

    module = f"beatmod_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(HEARTBEAT_MONITOR, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DRIFTLINE_RUN_LEASE_S", "1.5")
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    monitors = [{"name": "slow", "path": f"{module}:slow", "kind": "operational"}]
    config = write_config(
        tmp_path / "monitors.yaml", [model_entry("loan", loan_log["table"], monitors=monitors)], database_url
    )
    end = DAY + timedelta(hours=11)
    start = end - timedelta(hours=1)
    seen: list[str] = []
    done = threading.Event()

    def sweep_all_the_while() -> None:  # another process's claims, as often as they come
        while not done.is_set():
            with store.begin() as connection:
                sweep_abandoned(connection, "loan")
            with store.connect() as connection:
                status = connection.execute(
                    sa.text("SELECT status FROM driftline.runs WHERE model = 'loan' AND window_start = :s"),
                    {"s": start},
                ).scalar()
            if status is not None:
                seen.append(status)
            time.sleep(0.2)

    sweeper = threading.Thread(target=sweep_all_the_while, daemon=True)
    sweeper.start()
    try:
        monitor_model("loan", end, str(config))
    finally:
        done.set()
        sweeper.join(timeout=10)
        sys.modules.pop(module, None)
    assert seen.count("running") >= 5, seen
    assert "failed" not in seen, "swept while alive"
    run = _run(store, "loan", start)
    assert run["status"] == "succeeded" and run["attempts"] == 1
