"""Repository of results (``driftline.results``): replace a window's results and close its run in one
transaction (serialised per model and window by an advisory lock), read results back, count recent alerts.

A rerun replaces, never duplicates (unique key model, resolution, window_start, kind, metric, feature).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine

from driftline.core.results import Kind, Result, Status, finite_or_none
from driftline.core.window import Window
from driftline.storage.models import ResultRow
from driftline.storage.runs import RUNS

RESULTS = ResultRow.__table__


def _window_lock(connection: sa.Connection, model: str, window: Window) -> None:
    """Serialise writers of one (model, window): concurrent reruns queue instead of interleaving."""
    key = f"{model}|{window.start.isoformat()}"
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})


def _clear_window(
    connection: sa.Connection, model: str, window: Window, kinds: Iterable[Kind], resolution: str
) -> None:
    """Take the window's lock (held to the end of the caller's transaction), then delete its rows of
    ``kinds`` at ``resolution``: the rows about to be written replace them, a kind not rewritten is gone."""
    _window_lock(connection, model, window)
    connection.execute(
        sa.delete(RESULTS).where(
            RESULTS.c.model == model,
            RESULTS.c.resolution == resolution,
            RESULTS.c.window_start == window.start,
            RESULTS.c.kind.in_(sorted({str(k) for k in kinds})),
        )
    )


#: Values JSON takes as they are; checked by exact type first, as a stored window profile holds
#: tens of thousands of them (#15: the recursion per element was ~30 ms of every window).
_AS_IS = frozenset({int, str, bool, type(None)})


def json_safe(value: Any) -> Any:
    """``details`` as PostgreSQL's JSON accepts it: NaN and infinities (not JSON) become null, nested too."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind in _AS_IS:
        return value
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [
            item if type(item) in _AS_IS or (type(item) is float and math.isfinite(item)) else json_safe(item)
            for item in value
        ]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def _result_values(result: Result) -> dict[str, Any]:
    details = json_safe(dict(result.details))
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


def _upsert_results() -> Any:
    """The results upsert with its rows as parameters, not literals in the statement: one statement
    whose compiled form SQLAlchemy caches, sent in batches (insertmanyvalues), instead of a statement
    of ~100 VALUES compiled anew for every window (#15)."""
    statement = pg_insert(RESULTS)
    return statement.on_conflict_do_update(
        index_elements=["model", "resolution", "window_start", "kind", "metric", "feature"],
        set_={c: statement.excluded[c] for c in ("window_end", "value", "threshold", "status", "details")}
        | {"computed_at": sa.func.now()},
    )


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
    with engine.begin() as connection:
        _clear_window(connection, model, window, kinds, resolution)
        if results:
            connection.execute(_upsert_results(), [_result_values(r) for r in results])
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
    with engine.begin() as connection:
        _clear_window(connection, model, window, kinds, "hour")
        if results:
            connection.execute(pg_insert(RESULTS).values([_result_values(r) for r in results]))
        connection.execute(
            sa.update(RUNS)
            .where(RUNS.c.model == model, RUNS.c.window_start == window.start)
            .values(labelled_rows=labelled_rows, label_checksum=label_checksum, labels_checked_at=sa.func.now())
        )
    return len(results)


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


def recent_alert_counts(
    engine: Engine, model: str, start: datetime, end: datetime
) -> dict[tuple[str, str, str | None], int]:
    """Per (kind, metric, feature): how many of the model's hourly windows starting in ``[start, end)``
    reached the alert level before persistence held any back (``details.level_before_persistence``)."""
    level = sa.func.coalesce(RESULTS.c.details["level_before_persistence"].astext, RESULTS.c.status)
    statement = (
        sa.select(RESULTS.c.kind, RESULTS.c.metric, RESULTS.c.feature, sa.func.count())
        .where(
            RESULTS.c.model == model,
            RESULTS.c.resolution == "hour",
            RESULTS.c.window_start >= start,
            RESULTS.c.window_start < end,
            level == "alert",
        )
        .group_by(RESULTS.c.kind, RESULTS.c.metric, RESULTS.c.feature)
    )
    with engine.connect() as connection:
        return {(row[0], row[1], row[2]): int(row[3]) for row in connection.execute(statement)}


def store_results(engine: Engine, results: Sequence[Result], runs: Sequence[dict[str, Any]] = ()) -> int:
    """Bulk-insert results (replacing equal keys) and run-log rows, as given, in one transaction; returns
    rows written. For synthetic and imported history: no advisory lock, no deletion of a window's other rows."""
    values = [
        {
            "model": r.model,
            "window_start": r.window_start,
            "window_end": r.window_end,
            "kind": str(r.kind),
            "metric": r.metric,
            "feature": r.feature,
            "value": finite_or_none(r.value),
            "threshold": finite_or_none(r.threshold),
            "status": str(r.status),
            "details": r.details,
        }
        for r in results
    ]
    table = RESULTS
    upsert = pg_insert(table)
    upsert = upsert.on_conflict_do_update(
        index_elements=["model", "resolution", "window_start", "kind", "metric", "feature"],
        set_={c: upsert.excluded[c] for c in ("window_end", "value", "threshold", "status", "details")},
    )
    with engine.begin() as connection:
        if values:
            connection.execute(upsert, values)  # executemany: SQLAlchemy batches it into multi-row INSERTs
        if runs:
            run_table = RUNS
            run_upsert = pg_insert(run_table)
            run_upsert = run_upsert.on_conflict_do_update(
                index_elements=[run_table.c.model, run_table.c.window_start],
                set_={c: run_upsert.excluded[c] for c in ("status", "row_count", "duration_s", "labelled_rows")},
            )
            connection.execute(run_upsert, list(runs))
    return len(values)
