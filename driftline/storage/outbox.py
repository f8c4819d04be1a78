"""Repository of notifications (migration 0003): the outbox (messages and Prefect events kept before
sending, leased, retried, deferred) and open incidents (one per model and kind, serialised by an
advisory lock per model).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine

from driftline.storage.models import IncidentRow, OutboxRow

OUTBOX = OutboxRow.__table__
INCIDENTS = IncidentRow.__table__


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


def pending_count(engine: Engine, model: str | None = None) -> int:
    """Outbox rows still ``pending`` (of ``model``, else of every model)."""
    statement = sa.select(sa.func.count()).select_from(OUTBOX).where(OUTBOX.c.status == "pending")
    if model is not None:
        statement = statement.where(OUTBOX.c.model == model)
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def pending_events(engine: Engine, ids: list[str] | None = None) -> dict[str, int]:
    """Kept Prefect events still ``pending`` (those of ``ids``, else all): event id -> outbox row id."""
    statement = sa.select(OUTBOX.c.id, OUTBOX.c.payload).where(
        OUTBOX.c.channel == "event",
        OUTBOX.c.status == "pending",
        sa.true() if ids is None else OUTBOX.c.dedupe_key.in_([f"event:{i}" for i in ids]),
    )
    with engine.connect() as connection:
        return {str(row.payload["id"]): int(row.id) for row in connection.execute(statement)}

