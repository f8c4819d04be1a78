"""``driftline up`` / ``deploy`` / ``down``: a local Prefect server on PostgreSQL, a process worker,
the deployments and the automations, in one call.

* The server's database is ``prefect`` on the same PostgreSQL server as the results (created if
  missing). An embedded PostgreSQL lacks the ``pg_trgm`` extension Prefect needs, so there the
  server falls back to SQLite under ``~/.driftline/prefect``.
* Server and worker are detached processes (own session, like ``nohup``; ``prefect server start
  --background`` dies with its parent's pipes), logging to ``~/.driftline/*.log`` with PID files
  beside them. ``down()`` stops them by those PIDs (process groups).
* Deployments use module entrypoints (``driftline.flows.monitor.monitor_all``), so the worker
  imports the installed package: no code storage, no working directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from driftline.core.errors import DriftlineError
from driftline.core.settings import load_settings
from driftline.deployments.declared import WORK_POOL, runner_deployments
from driftline.storage.connections import config_path as resolve_config_path
from driftline.storage.connections import database_urls, load_run_config

DEFAULT_PORT = 4200
SERVER = "prefect-server"
WORKER = "prefect-worker"


def driftline_home(home: Path | None = None) -> Path:
    path = home or load_settings().home
    path.mkdir(parents=True, exist_ok=True)
    return path


def _prefect_cli() -> list[str]:
    return [sys.executable, "-m", "prefect"]


def prefect_database_url(results_url: str, home: Path, database: str = "prefect") -> str:
    """An asyncpg URL for Prefect's own database on the results' server (created if missing);
    SQLite under ``home`` when that server cannot host it (no ``pg_trgm``, no CREATE DATABASE)."""
    url = make_url(results_url)
    admin = sa.create_engine(url.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            trgm = connection.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).first()
            if trgm is None:
                raise DriftlineError("no pg_trgm")
            query = sa.text("SELECT 1 FROM pg_database WHERE datname = :d")
            exists = connection.execute(query, {"d": database}).first()
            if exists is None:
                connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
    except (DriftlineError, sa.exc.SQLAlchemyError):
        sqlite = home / "prefect" / "prefect.db"
        sqlite.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{sqlite}"
    finally:
        admin.dispose()
    return url.set(drivername="postgresql+asyncpg", database=database).render_as_string(hide_password=False)


def is_healthy(api_url: str) -> bool:
    try:
        return httpx.get(api_url.rstrip("/") + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_healthy(api_url: str, timeout_s: float, pid: int | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if is_healthy(api_url):
            return
        if pid is not None and not _alive(pid):
            tail = log.read_text(errors="replace")[-1500:] if log and log.exists() else ""
            raise DriftlineError(f"the Prefect server exited during start-up; see {log}\n{tail}")
        time.sleep(0.25)
    raise DriftlineError(f"the Prefect server at {api_url} was not healthy after {timeout_s:.0f} s; see {log}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _spawn(command: list[str], log: Path, pid_file: Path, env: dict[str, str]) -> int:
    """Start a detached process (own session: no SIGHUP, survives us), stdout+stderr to ``log``."""
    with open(log, "ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    pid_file.write_text(str(process.pid))
    return process.pid


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def start_server(
    home: Path,
    database_url: str,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    ui: bool = True,
    timeout_s: float = 180,
    name: str = SERVER,
) -> dict[str, Any]:
    """Start ``prefect server start`` detached (or reuse a healthy one on ``port``); wait until healthy."""
    api_url = f"http://{host}:{port}/api"
    pid_file, log = home / f"{name}.pid", home / f"{name}.log"
    if is_healthy(api_url):
        return {"api_url": api_url, "pid": _read_pid(pid_file), "started": False, "log": str(log)}
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env |= {
        "PREFECT_API_DATABASE_CONNECTION_URL": database_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": api_url,
    }
    command = [*_prefect_cli(), "server", "start", "--host", host, "--port", str(port)]
    if not ui:
        command.append("--no-ui")
    pid = _spawn(command, log, pid_file, env)
    wait_healthy(api_url, timeout_s, pid, log)
    return {"api_url": api_url, "pid": pid, "started": True, "log": str(log)}


def start_worker(
    home: Path, api_url: str, pool: str, config_path: Path, extra_env: dict[str, str] | None = None, name: str = WORKER
) -> int:
    """A process worker for ``pool`` (detached); flows find monitors.yaml through DRIFTLINE_CONFIG."""
    pid_file, log = home / f"{name}.pid", home / f"{name}.log"
    existing = _read_pid(pid_file)
    if existing is not None and _alive(existing):
        return existing
    env = (
        dict(os.environ)
        | {
            "PREFECT_API_URL": api_url,
            "DRIFTLINE_CONFIG": str(config_path),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        | (extra_env or {})
    )
    return _spawn([*_prefect_cli(), "worker", "start", "--pool", pool, "--type", "process"], log, pid_file, env)


def stop_process(pid_file: Path, timeout_s: float = 20) -> bool:
    """SIGTERM the process group started with ``pid_file``; a second SIGTERM, then SIGKILL, if it lingers."""
    pid = _read_pid(pid_file)
    if pid is None:
        return False
    stopped = False
    for sig, wait in ((signal.SIGTERM, timeout_s / 2), (signal.SIGTERM, timeout_s / 2), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            stopped = True
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if not _alive(pid):
            stopped = True
            break
    pid_file.unlink(missing_ok=True)
    return stopped


def ensure_work_pool(name: str = WORK_POOL) -> bool:
    """Create the process work pool if missing; True when created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            return True
        except ObjectAlreadyExists:
            return False


def build_work_pool_deployments(config_path: str, cron: str | None = None) -> list[Any]:
    """The declared deployments (``deployments/declared.py``) as module entrypoints, for a work pool."""
    from prefect.deployments.runner import EntrypointType

    return runner_deployments(config_path, cron, EntrypointType.MODULE_PATH)


def closed_loop_deployments(config_path: str, entrypoint_type: Any = None) -> list[Any]:
    """``retrain-request`` (what a retrain automation runs), ``retrain`` (the example trainer) and
    ``promote`` (what the promote-on-request automation runs), for a work pool or ``prefect.serve``."""
    return runner_deployments(config_path, entrypoint_type=entrypoint_type, only_closed_loop=True)


def deploy(
    config_path: str | Path | None = None,
    work_pool: str = WORK_POOL,
    cron: str | None = None,
    automations: bool = True,
) -> dict[str, Any]:
    """Against the current PREFECT_API_URL: the work pool, the declared deployments, then the automations;
    ``cron`` replaces monitor-all's declared schedule."""
    from prefect import deploy as prefect_deploy

    from driftline.deployments.automations import apply_automations
    from driftline.tasks.notify import channel_warnings

    path = resolve_config_path(config_path).resolve()
    config = load_run_config(path)
    created_pool = ensure_work_pool(work_pool)
    deployments = build_work_pool_deployments(str(path), cron)
    ids = prefect_deploy(
        *deployments,
        work_pool_name=work_pool,
        build=False,
        push=False,
        print_next_steps_message=False,
        ignore_warnings=True,
    )
    outcome: dict[str, Any] = {
        "work_pool": work_pool,
        "work_pool_created": created_pool,
        "deployments": [f"{d.flow_name}/{d.name}" for d in deployments],
        "deployment_ids": [str(i) for i in ids],
    }
    if automations:
        outcome["automations"] = apply_automations(config)
    # Said out loud by `driftline up`/`deploy`: with no channel, a crashing hourly run reaches nobody.
    outcome["warnings"] = channel_warnings(config)
    return outcome


def up(
    config_path: str | Path | None = None,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    work_pool: str = WORK_POOL,
    home: Path | None = None,
    ui: bool = True,
    cron: str | None = None,
    prefect_database: str = "prefect",
    worker_log_level: str = "INFO",
) -> dict[str, Any]:
    """Server (PostgreSQL-backed) + process worker + deployments + automations; idempotent.

    Sets ``PREFECT_API_URL`` in this process so later calls (``driftline run``) use the server.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = driftline_home(home)
    path = resolve_config_path(config_path).resolve()
    config = load_run_config(path)
    _, results_url = database_urls(config, load_settings())
    server = start_server(home, prefect_database_url(results_url, home, prefect_database), port, host, ui)
    api_url = server["api_url"]
    os.environ["PREFECT_API_URL"] = api_url
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        deployed = deploy(path, work_pool, cron)
    # The worker's flow runs inherit its environment: INFO, so their logs (a retrain's holdout scores,
    # a monitor's verdicts) show in the UI even when the calling CLI keeps its own output quiet.
    worker = start_worker(home, api_url, work_pool, path, {"PREFECT_LOGGING_LEVEL": worker_log_level})
    return {
        "api_url": api_url,
        "server_pid": server["pid"],
        "server_started": server["started"],
        "worker_pid": worker,
        "home": str(home),
        **deployed,
    }


def down(home: Path | None = None) -> dict[str, bool]:
    """Stop the worker, then the server, that ``up`` started."""
    home = driftline_home(home)
    return {WORKER: stop_process(home / f"{WORKER}.pid"), SERVER: stop_process(home / f"{SERVER}.pid")}
