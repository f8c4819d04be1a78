"""The Prefect API a command talks to: the configured one, or a temporary local server started up front.

Prefect starts a temporary ("ephemeral") server on first use when ``PREFECT_API_URL`` is unset, with
a 20 s startup timeout and an uncaught ``RuntimeError`` when it does not come up. The CLI instead
starts it before the first window, says so, allows a loaded machine more time, and turns a failure
into one :class:`PrefectUnavailableError` line that says how to fix it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import httpx

from driftline.core.errors import DriftlineError

#: Startup timeout of the temporary server unless PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS is set
#: (Prefect's default, 20 s, is not enough on a loaded 2-core machine: its migrations alone take ~10 s).
DEFAULT_STARTUP_TIMEOUT_S = 120
TIMEOUT_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
HEALTH_TIMEOUT_S = 5.0
FIX = "set PREFECT_API_URL to a running Prefect server (`driftline up` starts one)"


class PrefectUnavailableError(DriftlineError):
    """No Prefect API: the configured one does not answer, or a temporary server could not start."""


def configured_api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def api_is_healthy(api_url: str, timeout_s: float = HEALTH_TIMEOUT_S) -> bool:
    """True when ``<api_url>/health`` answers 200 within ``timeout_s`` (one try, no retries)."""
    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def startup_timeout_s() -> int:
    raw = os.environ.get(TIMEOUT_SETTING)
    try:
        return int(raw) if raw else DEFAULT_STARTUP_TIMEOUT_S
    except ValueError:
        return DEFAULT_STARTUP_TIMEOUT_S


def _check_prefect_home() -> None:
    from prefect.settings import PREFECT_HOME

    home = Path(PREFECT_HOME.value()).expanduser()
    if not home.exists() and not home.parent.is_dir():
        raise PrefectUnavailableError(
            f"cannot start a temporary Prefect server: PREFECT_HOME {home} is in a folder that does not exist "
            f"({home.parent}); create it, point PREFECT_HOME elsewhere, or {FIX}"
        )


def start_temporary_server(announce: Callable[[str], None] | None = None, timeout_s: int | None = None) -> str:
    """Start Prefect's temporary server now (once per process) and return its API URL.

    Raises :class:`PrefectUnavailableError` (one line, with the fix) when it does not answer within
    ``timeout_s`` (default: ``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` or 120 s) or exits.
    """
    from prefect.server.api.server import SubprocessASGIServer

    _check_prefect_home()
    timeout = timeout_s or startup_timeout_s()
    os.environ.setdefault(TIMEOUT_SETTING, str(timeout))  # the same patience for any later start by Prefect
    server = SubprocessASGIServer()
    if announce is not None and not server.running:
        announce(f"starting a temporary Prefect server (waiting up to {timeout} s; set PREFECT_API_URL to use yours)")
    try:
        server.start(timeout=timeout)
    except Exception as exc:
        process = server.server_process
        code = process.poll() if process is not None else None
        server.stop()
        why = f"it exited with code {code}" if code is not None else f"it did not answer within {timeout} s"
        raise PrefectUnavailableError(
            f"cannot start a temporary Prefect server ({why}; {type(exc).__name__}); {FIX}, "
            f"or allow it longer with {TIMEOUT_SETTING}"
        ) from None
    return server.api_url


def ensure_api(announce: Callable[[str], None] | None = None) -> tuple[str, bool]:
    """The API URL and whether it answers: the configured one (checked once), else a temporary server.

    A configured API that does not answer is not an error here: the caller keeps monitoring without
    Prefect and says so. A temporary server that cannot start raises :class:`PrefectUnavailableError`.
    """
    url = configured_api_url()
    if url:
        return url, api_is_healthy(url)
    return start_temporary_server(announce), True


RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs", "prefect.flow_engine", "prefect.task_engine")


class _NoRunFailures(logging.Filter):
    """Keeps a run's failures (ERROR records and tracebacks) off the console; they still reach Prefect's API."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(RUN_LOGGERS):
            return True
        return record.levelno < logging.ERROR and record.exc_info is None


def quiet_run_failures() -> None:
    """One line per failed window instead of Prefect's tracebacks on the console (``--verbose`` keeps them).

    Filters Prefect's console handlers only; the API handler still stores every traceback with the
    flow run (Prefect UI, ``prefect flow-run logs``).
    """
    import prefect  # noqa: F401  (sets up Prefect's logging handlers)
    from prefect.logging.handlers import PrefectConsoleHandler

    for logger in (logging.getLogger(), *(logging.getLogger(n) for n in ("prefect", *RUN_LOGGERS))):
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler) and not any(
                isinstance(f, _NoRunFailures) for f in handler.filters
            ):
                handler.addFilter(_NoRunFailures())
