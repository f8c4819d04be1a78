"""Storage of notifications and retraining (migration 0003): the outbox, open incidents, the retrain
log, model versions and reference overrides.

Which reference a window is judged against is decided by ``driftline.tasks.references.resolve_reference``
(versioned references, migration 0006); ``effective_reference_range`` / ``with_effective_reference`` /
``set_reference_override`` remain as thin wrappers around it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine

from driftline.config.monitors import ModelConfig
from driftline.storage.models import (
    IncidentRow,
    ModelVersionRow,
    OutboxRow,
    RetrainRunRow,
)
from driftline.tasks.references import promote_reference, resolve_reference

OUTBOX = OutboxRow.__table__
INCIDENTS = IncidentRow.__table__
VERSIONS = ModelVersionRow.__table__
RETRAINS = RetrainRunRow.__table__


# --- outbox -----------------------------------------------------------------------------------


def insert_messages(connection: sa.Connection, messages: list[dict[str, Any]]) -> list[int]:
    """Insert outbox rows; a row whose ``dedupe_key`` exists already is skipped. Returns new ids."""
    if not messages:
        return []
    statement = (
        pg_insert(OUTBOX).values(messages).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(OUTBOX.c.id)
    )
    return [int(i) for i in connection.execute(statement).scalars()]


def keep_events(engine: Engine, events: list[dict[str, Any]], confirm_after_s: float) -> list[str]:
    """Write Prefect events to the outbox before they are sent (pending; a deliverer reads each back
    from the API once ``confirm_after_s`` has passed and sends it again if it is missing)."""
    rows = [
        {
            "dedupe_key": f"event:{e['id']}",
            "model": e["resource"].get("driftline.model", ""),
            "kind": e["payload"].get("kind"),
            "window_start": e["payload"].get("window_start"),
            "transition": "event",
            "channel": "event",
            "payload": e,
            "attempts": 1,
            "next_attempt_at": sa.func.now() + timedelta(seconds=confirm_after_s),
        }
        for e in events
    ]
    with engine.begin() as connection:
        insert_messages(connection, rows)
    return [e["id"] for e in events]


def note_event_send_failed(engine: Engine, event_ids: list[str], reason: str) -> None:
    """The first send of kept events failed: due at once for the next deliverer, with the reason."""
    with engine.begin() as connection:
        connection.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.dedupe_key.in_([f"event:{i}" for i in event_ids]), OUTBOX.c.status == "pending")
            .values(last_error=reason[:1000], next_attempt_at=sa.func.now())
        )


def claim_next(
    connection: sa.Connection, now: datetime | None, model: str | None = None, channels: list[str] | None = None
) -> dict[str, Any] | None:
    """Lock the oldest due pending message; concurrent deliverers skip it (``FOR UPDATE SKIP LOCKED``).

    ``now`` None means the database clock (the one that stamped the rows).
    """
    due = now if now is not None else sa.func.now()
    statement = sa.select(OUTBOX).where(OUTBOX.c.status == "pending", OUTBOX.c.next_attempt_at <= due)
    if model is not None:
        statement = statement.where(OUTBOX.c.model == model)
    if channels is not None:
        statement = statement.where(OUTBOX.c.channel.in_(channels))
    statement = statement.order_by(OUTBOX.c.id).limit(1).with_for_update(skip_locked=True)
    row = connection.execute(statement).mappings().first()
    return None if row is None else dict(row)


def lease_due(
    engine: Engine,
    now: datetime | None,
    model: str | None,
    limit: int,
    lease_s: float,
    channels: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Take up to ``limit`` due pending messages for sending, in one short transaction.

    Each taken row's ``next_attempt_at`` moves ``lease_s`` into the future, so no other deliverer takes
    it meanwhile (``FOR UPDATE SKIP LOCKED`` while moving it). No lock or transaction is held while a
    message is sent; a deliverer that dies mid-send leaves the row to be sent again once the lease
    passes (at-least-once).
    """
    due = now if now is not None else sa.func.now()
    pick = sa.select(OUTBOX.c.id).where(OUTBOX.c.status == "pending", OUTBOX.c.next_attempt_at <= due)
    if model is not None:
        pick = pick.where(OUTBOX.c.model == model)
    if channels is not None:
        pick = pick.where(OUTBOX.c.channel.in_(channels))
    pick = pick.order_by(OUTBOX.c.id).limit(limit).with_for_update(skip_locked=True)
    statement = (
        sa.update(OUTBOX)
        .where(OUTBOX.c.id.in_(pick.scalar_subquery()))
        .values(next_attempt_at=due + timedelta(seconds=lease_s))
        .returning(*OUTBOX.c)
    )
    with engine.begin() as connection:
        rows = [dict(r) for r in connection.execute(statement).mappings()]
    return sorted(rows, key=lambda r: r["id"])


def release(engine: Engine, message_ids: list[int], now: datetime | None) -> None:
    """Give back leased messages that were not sent (the delivery budget ran out): due again at once."""
    if not message_ids:
        return
    with engine.begin() as connection:
        connection.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.id.in_(message_ids), OUTBOX.c.status == "pending")
            .values(next_attempt_at=now if now is not None else sa.func.now())
        )


def defer_after(engine: Engine, message_ids: list[int], failed_id: int) -> None:
    """Later messages of a group whose earlier message failed: due when that one is due again."""
    if not message_ids:
        return
    retry_at = sa.select(OUTBOX.c.next_attempt_at).where(OUTBOX.c.id == failed_id).scalar_subquery()
    with engine.begin() as connection:
        connection.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.id.in_(message_ids), OUTBOX.c.status == "pending")
            .values(next_attempt_at=retry_at)
        )


def mark_delivered(connection: sa.Connection, message_id: int) -> None:
    connection.execute(
        sa.update(OUTBOX)
        .where(OUTBOX.c.id == message_id)
        .values(status="delivered", attempts=OUTBOX.c.attempts + 1, delivered_at=sa.func.now(), last_error=None)
    )


def mark_attempt_failed(
    connection: sa.Connection,
    message: dict[str, Any],
    error: str,
    now: datetime | None,
    max_attempts: int,
    retry_after_s: float | None = None,
) -> str:
    """Count a failed attempt; back off exponentially (30 s .. 1 h), or as long as the receiver's
    ``Retry-After`` asked (at most 1 h); give up after ``max_attempts``."""
    attempts = int(message["attempts"]) + 1
    status = "failed" if attempts >= max_attempts else "pending"
    delay = min(30 * 2 ** (attempts - 1), 3600) if retry_after_s is None else min(max(retry_after_s, 1.0), 3600)
    connection.execute(
        sa.update(OUTBOX)
        .where(OUTBOX.c.id == message["id"])
        .values(
            status=status,
            attempts=attempts,
            last_error=error[:1000],
            next_attempt_at=(now if now is not None else sa.func.now()) + timedelta(seconds=delay),
        )
    )
    return status


def outbox_messages(engine: Engine, model: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
    statement = sa.select(OUTBOX).order_by(OUTBOX.c.id)
    if model is not None:
        statement = statement.where(OUTBOX.c.model == model)
    if status is not None:
        statement = statement.where(OUTBOX.c.status == status)
    with engine.connect() as connection:
        return [dict(r) for r in connection.execute(statement).mappings()]


# --- incidents --------------------------------------------------------------------------------


def lock_model(connection: sa.Connection, model: str) -> None:
    """Serialise incident bookkeeping of one model (two windows of a model planned at once)."""
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"incidents|{model}"})


def open_incidents(connection: sa.Connection, model: str) -> dict[str, dict[str, Any]]:
    statement = sa.select(INCIDENTS).where(INCIDENTS.c.model == model, INCIDENTS.c.state == "open")
    return {row["kind"]: dict(row) for row in connection.execute(statement).mappings()}


def open_incident(
    connection: sa.Connection, model: str, kind: str, severity: str, window_start: datetime, now: datetime
) -> int:
    statement = (
        sa.insert(INCIDENTS)
        .values(
            model=model,
            kind=kind,
            state="open",
            severity=severity,
            opened_window_start=window_start,
            last_window_start=window_start,
            opened_at=now,
            last_notified_at=now,
        )
        .returning(INCIDENTS.c.id)
    )
    return int(connection.execute(statement).scalar_one())


def update_incident(connection: sa.Connection, incident_id: int, **values: Any) -> None:
    connection.execute(sa.update(INCIDENTS).where(INCIDENTS.c.id == incident_id).values(**values))


def incidents(engine: Engine, model: str) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        statement = sa.select(INCIDENTS).where(INCIDENTS.c.model == model).order_by(INCIDENTS.c.id)
        return [dict(r) for r in connection.execute(statement).mappings()]


# --- reference overrides (superseded by versioned references: driftline.tasks.references) -------------


def effective_reference_range(
    engine: Engine, model: ModelConfig, window_start: datetime | None = None
) -> tuple[datetime, datetime]:
    """The ``[start, end)`` of the reference a window starting at ``window_start`` is judged against
    (``None``: the version in effect now). Kept for existing callers; see ``resolve_reference``."""
    version = resolve_reference(engine, model, window_start)
    return version.start, version.end


def with_effective_reference(engine: Engine, model: ModelConfig, window_start: datetime | None = None) -> ModelConfig:
    """``model`` itself, or a copy whose reference is the fixed range of the version in effect at
    ``window_start``. Kept for existing callers; see ``resolve_reference``."""
    return resolve_reference(engine, model, window_start).apply(model)


def set_reference_override(
    connection: sa.Connection,
    model: ModelConfig,
    start: datetime,
    end: datetime,
    model_version_id: int | None = None,
    reason: str | None = None,
    effective_from: datetime | None = None,
) -> int:
    """Record reference version ``[start, end)`` effective from ``effective_from`` (default: now), in the
    caller's transaction; returns the version number. Kept for existing callers; see ``promote_reference``."""
    promoted = promote_reference(
        connection,
        model=model,
        reference_start=start,
        reference_end=end,
        effective_from=effective_from,
        note=reason,
        model_version_id=model_version_id,
        source="retrain",
    )
    return promoted.version


# --- model versions ---------------------------------------------------------------------------


def latest_model_version(engine: Engine, model: str) -> dict[str, Any] | None:
    statement = sa.select(VERSIONS).where(VERSIONS.c.model == model).order_by(VERSIONS.c.version.desc()).limit(1)
    with engine.connect() as connection:
        row = connection.execute(statement).mappings().first()
    return None if row is None else dict(row)


def record_model_version(connection: sa.Connection, values: dict[str, Any]) -> tuple[int, int]:
    """Insert the next version of ``values['model']``; returns (row id, version). Caller holds the model lock."""
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
