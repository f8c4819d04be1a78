"""Engines for the prediction log and the results store, created on first use and reused."""

from __future__ import annotations

import threading
import time
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from driftline.core.errors import ConfigError, DatabaseUnavailableError

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


def _encode_user_info(url: str) -> str:
    """Percent-encode the user and password when the URL holds more than one ``@``.

    An unencoded ``@`` in a password made SQLAlchemy end the password at the first ``@`` and read the
    rest of it as the host name, which every "cannot connect to <host>" message then echoed. Here the
    user info ends at the *last* ``@`` (as :func:`urllib.parse.urlsplit` reads it), the user name at
    its first ``:``. So an ``@`` inside query parameters must be written ``%40`` when the URL has
    user info; an already encoded ``%xx`` stays as it is.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or rest.count("@") < 2:
        return url
    user_info, _, host_part = rest.rpartition("@")
    user, colon, password = user_info.partition(":")
    encoded = quote(user, safe="%") + (":" + quote(password, safe="%") if colon else "")
    return f"{scheme}://{encoded}@{host_part}"


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver for plain ``postgresql://`` URLs; an unencoded ``@`` in the password is read as
    part of the password (:func:`_encode_user_info`)."""
    try:
        parsed = make_url(_encode_user_info(url))
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


def check_connection(engine: Engine, wait_s: float = 0.0) -> None:
    """Raise :class:`DatabaseUnavailableError` with a safe one-line message when unreachable.

    With ``wait_s`` > 0, retry with backoff (0.5 s doubling, at most 8 s apart) until the database
    answers or ``wait_s`` has passed; the error then says how long it waited.
    """
    deadline = time.monotonic() + wait_s
    delay = 0.5
    tries = 0
    while True:
        tries += 1
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            return
        except sa.exc.OperationalError as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                where = engine.url.render_as_string(hide_password=True)
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
                waited = f" (tried {tries} times in {wait_s:.0f} s)" if wait_s > 0 else ""
                raise DatabaseUnavailableError(f"cannot connect to {where}{waited}: {reason}") from None
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 8.0)


def dispose_all() -> None:
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
