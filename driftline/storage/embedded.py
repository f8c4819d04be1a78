"""An embedded PostgreSQL (the ``pgserver`` package) for the zero-setup demo and tests.

pgserver ships wheels up to Python 3.12; on a newer Python set ``DRIFTLINE_DATABASE_URL`` to a
PostgreSQL server instead (``postgresql+psycopg://user@host:5432/dbname``).
"""

from __future__ import annotations

from pathlib import Path

from driftline.core.errors import DatabaseUnavailableError

NO_PGSERVER = (
    "no database configured and the embedded PostgreSQL (pgserver) is not installed "
    "(its wheels stop at Python 3.12): set DRIFTLINE_DATABASE_URL=postgresql+psycopg://USER@HOST:5432/DBNAME"
)


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) an embedded server whose data lives in ``data_dir``; returns its SQLAlchemy URL.

    The server is stopped when this process exits.
    """
    try:
        import pgserver  # type: ignore[import-not-found]
    except ImportError as exc:
        raise DatabaseUnavailableError(NO_PGSERVER) from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir), cleanup_mode="stop")
    uri: str = server.get_uri()
    return uri.replace("postgresql://", "postgresql+psycopg://", 1)
