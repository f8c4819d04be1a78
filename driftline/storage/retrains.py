"""Repository of retraining (migration 0003): the retrain log (a cooldown enforced under an advisory lock
per model) and the model versions it produced.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from driftline.storage.models import ModelVersionRow, RetrainRunRow

VERSIONS = ModelVersionRow.__table__
RETRAINS = RetrainRunRow.__table__


# --- model versions ---------------------------------------------------------------------------


def latest_model_version(engine: Engine, model: str) -> dict[str, Any] | None:
    statement = sa.select(VERSIONS).where(VERSIONS.c.model == model).order_by(VERSIONS.c.version.desc()).limit(1)
    with engine.connect() as connection:
        row = connection.execute(statement).mappings().first()
    return None if row is None else dict(row)


def record_model_version(connection: sa.Connection, values: dict[str, Any]) -> tuple[int, int]:
    """Insert the next version of ``values['model']`` in the caller's transaction; returns (row id, version).

    A per-model advisory lock (held to the end of the transaction) numbers two concurrent inserts 1 and 2.
    """
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"versions|{values['model']}"})
    current = connection.execute(
        sa.select(sa.func.coalesce(sa.func.max(VERSIONS.c.version), 0)).where(VERSIONS.c.model == values["model"])
    ).scalar_one()
    version = int(current) + 1
    row_id = connection.execute(
        sa.insert(VERSIONS).values(**values, version=version).returning(VERSIONS.c.id)
    ).scalar_one()
    return int(row_id), version


# --- retrain log ------------------------------------------------------------------------------


def claim_retrain(
    engine: Engine, model: str, reason: str, flow_run_id: str | None, cooldown_hours: float, now: datetime | None = None
) -> tuple[int, datetime | None]:
    """Record a retrain; returns (row id, start of the previous one if it is within the cooldown).

    When the second value is not None the new row is already ``skipped``. An advisory lock makes two
    simultaneous triggers (drift and performance in the same hour) one retrain and one skip.
    """
    now = now or datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"retrain|{model}"})
        previous = connection.execute(
            sa.select(sa.func.max(RETRAINS.c.started_at)).where(
                RETRAINS.c.model == model, RETRAINS.c.status.in_(["running", "promoted", "rejected"])
            )
        ).scalar_one()
        blocked = previous is not None and now - previous < timedelta(hours=cooldown_hours)
        row_id = connection.execute(
            sa.insert(RETRAINS)
            .values(
                model=model,
                status="skipped" if blocked else "running",
                reason=reason[:1000],
                flow_run_id=flow_run_id,
                started_at=now,
                finished_at=now if blocked else None,
                details={"cooldown_hours": cooldown_hours, "previous_start": previous.isoformat()} if blocked else {},
            )
            .returning(RETRAINS.c.id)
        ).scalar_one()
    return int(row_id), (previous if blocked else None)


def finish_retrain(engine: Engine, run_id: int, status: str, details: dict[str, Any]) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.update(RETRAINS)
            .where(RETRAINS.c.id == run_id)
            .values(status=status, details=details, finished_at=sa.func.now())
        )


def update_retrain(engine: Engine, run_id: int, status: str | None, details: dict[str, Any]) -> None:
    """Merge ``details`` into a retrain-log row; with ``status`` also set it (and, unless ``running``,
    the finish time)."""
    values: dict[str, Any] = {"details": RETRAINS.c.details.op("||")(sa.cast(details, RETRAINS.c.details.type))}
    if status is not None:
        values["status"] = status
        if status != "running":
            values["finished_at"] = sa.func.now()
    with engine.begin() as connection:
        connection.execute(sa.update(RETRAINS).where(RETRAINS.c.id == run_id).values(**values))


def retrain_run(engine: Engine, run_id: int) -> dict[str, Any] | None:
    with engine.connect() as connection:
        row = connection.execute(sa.select(RETRAINS).where(RETRAINS.c.id == run_id)).mappings().first()
    return None if row is None else dict(row)


def retrain_runs(engine: Engine, model: str) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        statement = sa.select(RETRAINS).where(RETRAINS.c.model == model).order_by(RETRAINS.c.id)
        return [dict(r) for r in connection.execute(statement).mappings()]
