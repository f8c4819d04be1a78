"""Engines for the prediction log and the results store, created on first use and reused."""

from __future__ import annotations

import threading

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from driftline.errors import ConfigError, DatabaseUnavailableError

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # SQLAlchemy raises ArgumentError; never echo the URL (it may hold a password)
        raise ConfigError("the database URL is not a valid SQLAlchemy URL") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if not parsed.drivername.startswith("postgresql"):
        raise ConfigError(f"Driftline needs PostgreSQL; got a {parsed.drivername!r} URL")
    return parsed.render_as_string(hide_password=False)


def get_engine(url: str) -> Engine:
    """A shared engine per URL (pool_pre_ping so a restarted server costs one reconnect, not a failure)."""
    key = normalise_url(url)
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = sa.create_engine(key, pool_pre_ping=True, pool_size=5, max_overflow=5)
            _ENGINES[key] = engine
        return engine


def check_connection(engine: Engine) -> None:
    """Raise :class:`DatabaseUnavailableError` with a safe one-line message when unreachable."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        where = engine.url.render_as_string(hide_password=True)
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise DatabaseUnavailableError(f"cannot connect to {where}: {reason}") from None


def dispose_all() -> None:
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
