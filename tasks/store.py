"""Persistence: results (upserted, one transaction per window), reference profiles, the run log."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from prefect import task
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine

from driftline.core.results import Kind, Result, Status, finite_or_none
from driftline.core.window import Window
from driftline.stats.model_profile import ModelProfile
from driftline.storage.models import ReferenceProfileRow, ResultRow, RunRow, WindowProfileRow
from driftline.tasks._prefect import RETRY_TRANSIENT

RESULTS = ResultRow.__table__
RUNS = RunRow.__table__
PROFILES = ReferenceProfileRow.__table__


def _window_lock(connection: sa.Connection, model: str, window: Window) -> None:
    """Serialise writers of one (model, window): concurrent reruns queue instead of interleaving."""
    key = f"{model}|{window.start.isoformat()}"
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})


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


def _json_safe(value: Any) -> Any:
    """``details`` as PostgreSQL's JSON accepts it: NaN and infinities (not JSON) become null, nested too."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def _result_values(result: Result) -> dict[str, Any]:
    details = _json_safe(dict(result.details))
    for name in ("value", "threshold"):
        raw = getattr(result, name)
        if raw is not None and finite_or_none(raw) is None:
            details.setdefault(f"{name}_raw", str(raw))  # keep inf/nan visible, the column holds NULL
    return {
        "model": result.model,
        "window_start": result.window_start,
        "window_end": result.window_end,
        "kind": str(result.kind),
        "metric": result.metric,
        "feature": result.feature,
        "value": finite_or_none(result.value),
        "threshold": finite_or_none(result.threshold),
        "status": str(result.status),
        "details": details,
        "resolution": result.resolution,
    }


def save_window(
    engine: Engine,
    model: str,
    window: Window,
    results: list[Result],
    kinds: Iterable[Kind],
    row_count: int,
    duration_s: float,
    labelled_rows: int | None = None,
    resolution: str = "hour",
    reference_version: int | None = None,
    label_checksum: str | None = None,
) -> int:
    """Replace the window's results of ``kinds`` and mark its run succeeded, in one transaction.

    ``label_checksum``: :func:`~driftline.tasks.extract.label_checksums` of the window, taken before its
    rows were read (so a label changed meanwhile is refreshed later, never missed).

    ``reference_version``: the reference version its verdicts rest on (recorded in the run log, so
    the late-label refresh re-judges the window against the same one).

    Rows of other kinds (e.g. performance recomputed later as labels arrive) are untouched.
    Returns the number of result rows written.
    """
    kind_names = sorted({str(k) for k in kinds})
    with engine.begin() as connection:
        _window_lock(connection, model, window)
        connection.execute(
            sa.delete(RESULTS).where(
                RESULTS.c.model == model,
                RESULTS.c.resolution == resolution,
                RESULTS.c.window_start == window.start,
                RESULTS.c.kind.in_(kind_names),
            )
        )
        if results:
            statement = pg_insert(RESULTS).values([_result_values(r) for r in results])
            statement = statement.on_conflict_do_update(
                index_elements=["model", "resolution", "window_start", "kind", "metric", "feature"],
                set_={c: statement.excluded[c] for c in ("window_end", "value", "threshold", "status", "details")}
                | {"computed_at": sa.func.now()},
            )
            connection.execute(statement)
        if resolution != "hour":
            return len(results)  # the run log tracks hourly windows only
        connection.execute(
            sa.update(RUNS)
            .where(RUNS.c.model == model, RUNS.c.window_start == window.start)
            .values(
                status="succeeded",
                row_count=row_count,
                duration_s=duration_s,
                error=None,
                finished_at=sa.func.now(),
                labelled_rows=labelled_rows,
                labels_checked_at=sa.func.now(),
                # Only when known: a caller without versioned references leaves the column as it is.
                **({} if reference_version is None else {"reference_version": reference_version}),
                # Likewise (a store still at an older revision has no such column). A stale checksum
                # left by a rerun without labels costs one refresh, which records the new one.
                **({} if label_checksum is None else {"label_checksum": label_checksum}),
            )
        )
    return len(results)


def save_label_refresh(
    engine: Engine,
    model: str,
    window: Window,
    results: list[Result],
    kinds: Iterable[Kind],
    labelled_rows: int,
    label_checksum: str | None = None,
) -> int:
    """Replace a past window's label-dependent rows (``kinds``) and record its new label coverage
    (count and checksum)."""
    kind_names = sorted({str(k) for k in kinds})
    with engine.begin() as connection:
        _window_lock(connection, model, window)
        connection.execute(
            sa.delete(RESULTS).where(
                RESULTS.c.model == model,
                RESULTS.c.resolution == "hour",
                RESULTS.c.window_start == window.start,
                RESULTS.c.kind.in_(kind_names),
            )
        )
        if results:
            connection.execute(pg_insert(RESULTS).values([_result_values(r) for r in results]))
        connection.execute(
            sa.update(RUNS)
            .where(RUNS.c.model == model, RUNS.c.window_start == window.start)
            .values(labelled_rows=labelled_rows, label_checksum=label_checksum, labels_checked_at=sa.func.now())
        )
    return len(results)


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


def load_reference(engine: Engine, model: str, definition: str) -> ModelProfile | None:
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(PROFILES.c.profile).where(PROFILES.c.model == model, PROFILES.c.definition == definition)
        ).first()
    return None if row is None else ModelProfile.from_json(row[0])


def store_reference(engine: Engine, model: str, definition: str, window: Window, profile: ModelProfile) -> ModelProfile:
    """Store a fitted reference; if a concurrent run stored one first, that one wins and is returned."""
    statement = (
        pg_insert(PROFILES)
        .values(
            model=model,
            definition=definition,
            reference_start=window.start,
            reference_end=window.end,
            row_count=profile.row_count,
            profile=_json_safe(profile.to_json()),
        )
        .on_conflict_do_nothing(index_elements=[PROFILES.c.model, PROFILES.c.definition])
    )
    with engine.begin() as connection:
        connection.execute(statement)
    stored = load_reference(engine, model, definition)
    assert stored is not None
    return stored


def load_results(
    engine: Engine,
    model: str,
    start: datetime | None = None,
    end: datetime | None = None,
    kind: str | None = None,
    resolution: str = "hour",
) -> list[Result]:
    """Results of ``model`` for windows starting in ``[start, end)``, ordered by window, kind, metric, feature."""
    statement = sa.select(RESULTS).where(RESULTS.c.model == model, RESULTS.c.resolution == resolution)
    if start is not None:
        statement = statement.where(RESULTS.c.window_start >= start)
    if end is not None:
        statement = statement.where(RESULTS.c.window_start < end)
    if kind is not None:
        statement = statement.where(RESULTS.c.kind == kind)
    statement = statement.order_by(
        RESULTS.c.window_start, RESULTS.c.kind, RESULTS.c.metric, RESULTS.c.feature.nulls_first()
    )
    with engine.connect() as connection:
        rows = connection.execute(statement).mappings().all()
    return [
        Result(
            model=row["model"],
            window_start=row["window_start"].astimezone(UTC),
            window_end=row["window_end"].astimezone(UTC),
            kind=Kind(row["kind"]),
            metric=row["metric"],
            feature=row["feature"],
            value=row["value"],
            threshold=row["threshold"],
            status=Status(row["status"]),
            details=row["details"] or {},
            resolution=row["resolution"],
        )
        for row in rows
    ]


def latest_window_end(engine: Engine, model: str, resolution: str = "hour") -> datetime | None:
    """End of the model's latest stored window at ``resolution``, or ``None`` if it has no results
    (the default range of ``driftline results`` and ``driftline report`` ends there)."""
    statement = sa.select(sa.func.max(RESULTS.c.window_end)).where(
        RESULTS.c.model == model, RESULTS.c.resolution == resolution
    )
    with engine.connect() as connection:
        latest = connection.execute(statement).scalar()
    return None if latest is None else latest.astimezone(UTC)


def load_runs(engine: Engine, model: str | None = None) -> list[dict[str, Any]]:
    statement = sa.select(RUNS).order_by(RUNS.c.model, RUNS.c.window_start)
    if model is not None:
        statement = statement.where(RUNS.c.model == model)
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(statement).mappings()]


claim_run_task = task(claim_run, name="claim-window", **RETRY_TRANSIENT)
save_window_task = task(save_window, name="persist-window", **RETRY_TRANSIENT)


WINDOW_PROFILES = WindowProfileRow.__table__


def _compact(profile: ModelProfile) -> dict[str, Any]:
    """A window profile without its bins (they are the reference's): counts, nulls and moments only."""
    data = profile.to_json()
    for feature in data["features"].values():
        feature.pop("edges", None)
        feature.pop("groups", None)
    return data


def store_window_profile(engine: Engine, model: str, definition: str, window: Window, profile: ModelProfile) -> None:
    """Keep an hourly window's profile so days and weeks merge from it without rereading rows."""
    values = {
        "model": model,
        "definition": definition,
        "window_start": window.start,
        "window_end": window.end,
        "row_count": profile.row_count,
        "profile": _json_safe(_compact(profile)),
    }
    statement = pg_insert(WINDOW_PROFILES).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=["model", "definition", "window_start"],
        set_={
            "window_end": statement.excluded.window_end,
            "row_count": statement.excluded.row_count,
            "profile": statement.excluded.profile,
        },
    )
    with engine.begin() as connection:
        connection.execute(statement)


def load_window_profiles(
    engine: Engine, model: str, definition: str, reference: ModelProfile, start: datetime, end: datetime
) -> list[ModelProfile]:
    """Stored hourly profiles in ``[start, end)`` for one reference definition, with the reference's bins."""
    statement = (
        sa.select(WINDOW_PROFILES.c.profile)
        .where(
            WINDOW_PROFILES.c.model == model,
            WINDOW_PROFILES.c.definition == definition,
            WINDOW_PROFILES.c.window_start >= start,
            WINDOW_PROFILES.c.window_start < end,
        )
        .order_by(WINDOW_PROFILES.c.window_start)
    )
    with engine.connect() as connection:
        rows = [row[0] for row in connection.execute(statement)]
    profiles = []
    for data in rows:
        for name, feature in data["features"].items():
            ref = reference.features.get(name)
            if feature.get("type") == "numeric" and ref is not None and hasattr(ref, "edges"):
                feature["edges"] = ref.edges.tolist()
                feature["groups"] = ref.groups.tolist()
        profiles.append(ModelProfile.from_json(data))
    return profiles


store_window_profile_task = task(store_window_profile, name="store-window-profile", **RETRY_TRANSIENT)
