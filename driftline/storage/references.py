"""SQL of ``driftline.reference_versions`` (migration 0006): record a version, read the one in effect.

Repository functions: keyword arguments, an injected connection or engine, UTC-aware timestamps.
Which version applies to a window is decided in :mod:`driftline.references`, not here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from driftline.storage.models import ReferenceVersionRow

VERSIONS = ReferenceVersionRow.__table__


def lock_reference_versions(connection: sa.Connection, model: str) -> None:
    """Serialise version numbering of one model (two promotions at once get 1 and 2, not 1 twice)."""
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"reference-versions|{model}"})


def insert_reference_version(
    connection: sa.Connection,
    *,
    model: str,
    reference_start: datetime,
    reference_end: datetime,
    effective_from: datetime,
    config_reference: dict[str, Any],
    warmup: bool = False,
    model_version: str | None = None,
    model_version_id: int | None = None,
    source: str = "promotion",
    note: str | None = None,
    promoted_by: str | None = None,
) -> dict[str, Any]:
    """Insert the model's next version (1, 2, ...) inside the caller's transaction; returns the row."""
    lock_reference_versions(connection, model)
    current = connection.execute(
        sa.select(sa.func.coalesce(sa.func.max(VERSIONS.c.version), 0)).where(VERSIONS.c.model == model)
    ).scalar_one()
    statement = (
        sa.insert(VERSIONS)
        .values(
            model=model,
            version=int(current) + 1,
            reference_start=reference_start,
            reference_end=reference_end,
            effective_from=effective_from,
            warmup=warmup,
            model_version=model_version,
            model_version_id=model_version_id,
            config_reference=config_reference,
            source=source,
            note=note,
            promoted_by=promoted_by,
        )
        .returning(*VERSIONS.c)
    )
    return dict(connection.execute(statement).mappings().one())


def _connect(bind: Engine | sa.Connection) -> Any:
    """A connection context: the caller's own connection as is, or a fresh one from an engine."""
    if isinstance(bind, sa.Connection):
        from contextlib import nullcontext

        return nullcontext(bind)
    return bind.connect()


def version_in_effect(
    bind: Engine | sa.Connection,
    *,
    model: str,
    config_reference: dict[str, Any],
    window_start: datetime | None,
) -> dict[str, Any] | None:
    """The version with the latest ``effective_from <= window_start`` (``None`` start: the latest of all)
    among those recorded against ``config_reference``; ties go to the later-recorded one."""
    statement = sa.select(VERSIONS).where(VERSIONS.c.model == model, VERSIONS.c.config_reference == config_reference)
    if window_start is not None:
        statement = statement.where(VERSIONS.c.effective_from <= window_start)
    statement = statement.order_by(VERSIONS.c.effective_from.desc(), VERSIONS.c.version.desc()).limit(1)
    with _connect(bind) as connection:
        row = connection.execute(statement).mappings().first()
    return None if row is None else dict(row)


def reference_version_row(bind: Engine | sa.Connection, *, model: str, version: int) -> dict[str, Any] | None:
    """One stored version by its number."""
    statement = sa.select(VERSIONS).where(VERSIONS.c.model == model, VERSIONS.c.version == version)
    with _connect(bind) as connection:
        row = connection.execute(statement).mappings().first()
    return None if row is None else dict(row)


def reference_version_rows(bind: Engine | sa.Connection, *, model: str) -> list[dict[str, Any]]:
    """Every stored version of ``model``, oldest first."""
    statement = sa.select(VERSIONS).where(VERSIONS.c.model == model).order_by(VERSIONS.c.version)
    with _connect(bind) as connection:
        return [dict(r) for r in connection.execute(statement).mappings()]
