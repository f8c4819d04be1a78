"""Which databases a run talks to: the prediction log and the results store."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from driftline.config.monitors import MonitorsConfig, load_config
from driftline.core.errors import ConfigError
from driftline.core.settings import Settings, load_settings
from driftline.storage.engine import check_connection, get_engine, normalise_url
from driftline.storage.migrate import upgrade

_MIGRATED: set[str] = set()
_MIGRATE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Databases:
    data: Engine
    results: Engine


def config_path(explicit: str | Path | None, settings: Settings | None = None) -> Path:
    """``explicit``, else ``DRIFTLINE_CONFIG``, else ``./monitors.yaml``."""
    settings = settings or load_settings()
    return Path(explicit) if explicit else (settings.config or Path("monitors.yaml"))


def database_urls(config: MonitorsConfig, settings: Settings) -> tuple[str, str]:
    """``DRIFTLINE_DATABASE_URL`` overrides ``database_url`` in the file; results default to the same database."""
    if settings.database_url is not None:
        data = settings.database_url.get_secret_value()
    elif config.database_url:
        data = config.database_url
    else:
        raise ConfigError("no database configured: set DRIFTLINE_DATABASE_URL or database_url in monitors.yaml")
    results = settings.results_url.get_secret_value() if settings.results_url is not None else data
    return _resolve(data), _resolve(results)


EMBEDDED_PREFIX = "embedded://"


def _resolve(url: str) -> str:
    """``embedded:///path/to/pgdata`` starts (or reuses) an embedded PostgreSQL there."""
    if url.startswith(EMBEDDED_PREFIX):
        from driftline.storage.embedded import start_embedded

        return normalise_url(start_embedded(Path(url.removeprefix(EMBEDDED_PREFIX))))
    return normalise_url(url)


def open_databases(
    config: MonitorsConfig, settings: Settings | None = None, migrate: bool = True, wait_s: float = 0.0
) -> Databases:
    """Engines for both databases, checked reachable; the results schema upgraded once per process.

    ``wait_s``: how long to keep retrying an unreachable database (a window passes ``db_wait_s``; an
    interactive command fails at once)."""
    settings = settings or load_settings()
    data_url, results_url = database_urls(config, settings)
    databases = Databases(get_engine(data_url), get_engine(results_url))
    check_connection(databases.data, wait_s)
    if results_url != data_url:
        check_connection(databases.results, wait_s)
    if migrate:
        with _MIGRATE_LOCK:
            if results_url not in _MIGRATED:
                upgrade(databases.results)
                _MIGRATED.add(results_url)
    return databases


def load_run_config(path: str | Path | None) -> MonitorsConfig:
    return load_config(config_path(path))
