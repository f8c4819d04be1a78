"""Repository of the run log (``driftline.runs``): claim a window with a lease, renew it, sweep
abandoned runs, record failures, read label coverage and the reference version a window used.

Callers pass an engine (or, for the sweep, the caller's connection); timestamps are UTC-aware.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine

from driftline.core.window import Window
from driftline.storage.models import RunRow

RUNS = RunRow.__table__


#: Default lease of a running window (``DRIFTLINE_RUN_LEASE_S``), renewed every third of it.
RUN_LEASE_S = 300.0


def _lease_end(lease_s: float) -> Any:
    return sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, lease_s)


def sweep_abandoned(connection: sa.Connection, model: str) -> int:
    """Mark the model's ``running`` windows whose lease has passed as failed (abandoned). A row from
    before leases (no ``lease_until``) counts from its start with the default lease."""
    expired = sa.func.coalesce(RUNS.c.lease_until, RUNS.c.started_at + timedelta(seconds=RUN_LEASE_S)) < sa.func.now()
    candidates = (RUNS.c.model == model, RUNS.c.status == "running", expired)
    # Look before writing: the common case (nothing abandoned) issues no UPDATE at all.
    if connection.execute(sa.select(sa.literal(1)).where(*candidates).limit(1)).first() is None:
        return 0
    result = connection.execute(
        sa.update(RUNS)
        .where(*candidates)
        .values(
            status="failed",
            error=sa.func.concat(
                "abandoned: no heartbeat since ",
                sa.func.to_char(
                    sa.func.timezone("UTC", sa.func.coalesce(RUNS.c.lease_until, RUNS.c.started_at)),
                    "YYYY-MM-DD HH24:MI:SS",
                ),
                " UTC (the run was killed or lost the database)",
            ),
            finished_at=sa.func.now(),
        )
    )
    return int(result.rowcount or 0)


def claim_run(
    engine: Engine, model: str, window: Window, flow_run_id: str | None = None, lease_s: float = RUN_LEASE_S
) -> int:
    """Record that a run of this window started, with a lease of ``lease_s``; returns the attempt number.

    First marks the model's abandoned runs (lease passed) failed: a run killed mid-window does not
    stay ``running`` until someone reruns that window.
    """
    statement = pg_insert(RUNS).values(
        model=model,
        window_start=window.start,
        window_end=window.end,
        status="running",
        attempts=1,
        flow_run_id=flow_run_id,
        lease_until=_lease_end(lease_s),
    )
    statement = statement.on_conflict_do_update(
        index_elements=[RUNS.c.model, RUNS.c.window_start],
        set_={
            "status": "running",
            "attempts": RUNS.c.attempts + 1,
            "flow_run_id": flow_run_id,
            "error": None,
            "started_at": sa.func.now(),
            "finished_at": None,
            "lease_until": _lease_end(lease_s),
        },
    ).returning(RUNS.c.attempts)
    with engine.begin() as connection:
        sweep_abandoned(connection, model)
        return int(connection.execute(statement).scalar_one())


class RunHeartbeat:
    """Renews a running window's lease every ``lease_s / 3`` from a daemon thread, until stopped.

    A renewal that fails (database briefly gone) is retried at the next beat; only a run that misses
    its whole lease is taken for abandoned.
    """

    def __init__(self, engine: Engine, model: str, window: Window, lease_s: float = RUN_LEASE_S) -> None:
        self.engine, self.model, self.window, self.lease_s = engine, model, window, lease_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"driftline-heartbeat-{model}", daemon=True)

    def __enter__(self) -> RunHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                with self.engine.begin() as connection:
                    connection.execute(
                        sa.update(RUNS)
                        .where(
                            RUNS.c.model == self.model,
                            RUNS.c.window_start == self.window.start,
                            RUNS.c.status == "running",
                        )
                        .values(lease_until=_lease_end(self.lease_s))
                    )
            except Exception:  # noqa: S112 - the next beat tries again; a lost lease is the sweep's business
                continue


def label_coverage(engine: Engine, model: str, start: datetime, end: datetime) -> dict[datetime, int | None]:
    """Stored labelled-row counts of the model's succeeded windows starting in ``[start, end)``."""
    statement = sa.select(RUNS.c.window_start, RUNS.c.labelled_rows).where(
        RUNS.c.model == model, RUNS.c.status == "succeeded", RUNS.c.window_start >= start, RUNS.c.window_start < end
    )
    with engine.connect() as connection:
        return {row.window_start.astimezone(UTC): row.labelled_rows for row in connection.execute(statement)}


def stored_label_checksums(engine: Engine, model: str, start: datetime, end: datetime) -> dict[datetime, str | None]:
    """Stored label checksums of the model's succeeded windows starting in ``[start, end)`` (None: not recorded)."""
    statement = sa.select(RUNS.c.window_start, RUNS.c.label_checksum).where(
        RUNS.c.model == model, RUNS.c.status == "succeeded", RUNS.c.window_start >= start, RUNS.c.window_start < end
    )
    with engine.connect() as connection:
        return {row.window_start.astimezone(UTC): row.label_checksum for row in connection.execute(statement)}


def run_reference_versions(engine: Engine, model: str, start: datetime, end: datetime) -> dict[datetime, int | None]:
    """The reference version recorded for each of the model's windows starting in ``[start, end)``
    (None: recorded before versioned references)."""
    statement = sa.select(RUNS.c.window_start, RUNS.c.reference_version).where(
        RUNS.c.model == model, RUNS.c.window_start >= start, RUNS.c.window_start < end
    )
    with engine.connect() as connection:
        return {row.window_start.astimezone(UTC): row.reference_version for row in connection.execute(statement)}


def mark_failed(engine: Engine, model: str, window: Window, error: str) -> None:
    """Record a failed window in the run log (its earlier results, if any, stay as they were)."""
    statement = pg_insert(RUNS).values(
        model=model,
        window_start=window.start,
        window_end=window.end,
        status="failed",
        error=error[:2000],
        finished_at=datetime.now(UTC),
    )
    statement = statement.on_conflict_do_update(
        index_elements=[RUNS.c.model, RUNS.c.window_start],
        set_={"status": "failed", "error": error[:2000], "finished_at": sa.func.now()},
    )
    with engine.begin() as connection:
        connection.execute(statement)


def record_unrecorded_failure(engine: Engine, model: str, window: Window, error: str, since: datetime) -> bool:
    """Record a failed attempt the run log missed (the database was down when it failed): a new
    ``failed`` row, or attempt n+1 of a row this run never claimed (``started_at`` before ``since``)
    or left ``running``. Returns whether a row was written."""
    message = f"{error} (recorded after the database came back)"[:2000]
    statement = pg_insert(RUNS).values(
        model=model,
        window_start=window.start,
        window_end=window.end,
        status="failed",
        attempts=1,
        error=message,
        started_at=since,
        finished_at=sa.func.now(),
    )
    statement = statement.on_conflict_do_update(
        index_elements=[RUNS.c.model, RUNS.c.window_start],
        set_={
            "status": "failed",
            "attempts": sa.case((RUNS.c.started_at < since, RUNS.c.attempts + 1), else_=RUNS.c.attempts),
            "error": message,
            "started_at": since,
            "finished_at": sa.func.now(),
            "flow_run_id": None,
        },
        where=sa.or_(RUNS.c.started_at < since, RUNS.c.status == "running"),
    )
    with engine.begin() as connection:
        return bool(connection.execute(statement).rowcount)


def load_runs(
    engine: Engine, model: str | None = None, start: datetime | None = None, end: datetime | None = None
) -> list[dict[str, Any]]:
    """The run log (of ``model``, else of every model) for windows starting in ``[start, end)``
    (``None``: unbounded), ordered by model and window."""
    statement = sa.select(RUNS).order_by(RUNS.c.model, RUNS.c.window_start)
    if model is not None:
        statement = statement.where(RUNS.c.model == model)
    if start is not None:
        statement = statement.where(RUNS.c.window_start >= start)
    if end is not None:
        statement = statement.where(RUNS.c.window_start < end)
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(statement).mappings()]
