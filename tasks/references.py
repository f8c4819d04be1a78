"""Versioned references: which reference judges a window, and how a promotion records a new one.

One resolver, :func:`resolve_reference`, answers "which reference applies to the window starting at
``window_start``" for every consumer: the hourly monitors, the late-label refresh, day/week merges,
reports, and the multivariate and Evidently monitors' reference samples.

* Version 0 is the reference configured in monitors.yaml (``reference:``); it is never stored.
* :func:`promote_reference` records version 1, 2, ... with an ``effective_from``: a window starting
  at or after it (a rerun of one stored earlier too) is judged against the new version; a window
  starting before it keeps the version it was judged against, so reruns reproduce stored verdicts.
* A version is recorded against the configured reference it replaced; editing monitors.yaml's
  ``reference:`` makes the file win again (the versions recorded against the old one are ignored).
* Without a range, a promotion starts a warm-up: the reference is the new model's traffic from
  ``effective_from`` to the end of the ``reference.warmup_hours``-th hour after it; windows starting
  inside it are ``unknown`` ("warm-up"), never judged against a handful of rows.
* A reference with fewer than ``reference.min_rows`` rows is refused: by ``promote_reference`` when
  it can count the rows (``data_engine``), and always when a window is judged (``unknown``, with the
  reason).
* Re-judging a window against the newest version instead is an explicit choice (``latest=True``;
  ``driftline run --rejudge-with-latest-reference``), never a side effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from driftline.config.monitors import ModelConfig, ReferenceRange
from driftline.core.errors import ConfigError, ReferenceDataError
from driftline.core.window import HOUR, floor_hour, parse_instant
from driftline.storage.references import (
    insert_reference_version,
    reference_version_row,
    reference_version_rows,
    version_in_effect,
)


class ReferenceTooSmallError(ReferenceDataError):
    """A promoted reference range holds fewer rows than ``reference.min_rows``."""


@dataclass(frozen=True)
class ReferenceVersion:
    """The reference a window is judged against.

    ``version`` 0 is the configured reference (``effective_from`` None); ``start``/``end`` are the
    concrete ``[start, end)`` for the window it was resolved for (a rolling reference moves daily).
    """

    model: str
    version: int
    start: datetime
    end: datetime
    effective_from: datetime | None = None
    warmup: bool = False
    model_version: str | None = None
    model_version_id: int | None = None
    source: str = "config"
    note: str | None = None
    promoted_by: str | None = None
    created_at: datetime | None = None
    #: Extra facts for artifacts and reports (e.g. the row count once the profile is known).
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def configured(self) -> bool:
        return self.version == 0

    def apply(self, model_config: ModelConfig) -> ModelConfig:
        """``model`` itself for the configured fixed reference, else a copy whose reference is this
        version's fixed range (its ``reference_definition`` then hashes that range, so the profile is
        fitted once and stored like any other)."""
        if self.configured and not model_config.reference.rolling:
            return model_config
        reference = ReferenceRange(
            start=self.start,
            end=self.end,
            min_rows=model_config.reference.min_rows,
            warmup_hours=model_config.reference.warmup_hours,
        )
        return model_config.model_copy(update={"reference": reference})

    def not_ready_reason(self, window_start: datetime | None, now: datetime | None = None) -> str | None:
        """Why no window starting at ``window_start`` can be judged against this version yet, or ``None``.

        A warm-up window (inside the new model's first hours) and a reference whose range has not
        ended (its rows are not all logged: a profile fitted now would be stored incomplete).
        """
        if self.warmup and window_start is not None and window_start < self.end:
            return (
                f"warm-up after reference version {self.version} (effective {_iso(self.effective_from)}): "
                f"the new model's traffic until {_iso(self.end)} becomes the reference"
            )
        now = now if now is not None else datetime.now(UTC)
        if self.end > now:
            return f"reference version {self.version} ({_iso(self.start)} .. {_iso(self.end)}) is not complete yet"
        return None

    def describe(self) -> dict[str, Any]:
        """A JSON form for results' details, artifacts and reports."""
        return {
            "version": self.version,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "effective_from": _iso(self.effective_from),
            "warmup": self.warmup,
            "model_version": self.model_version,
            "source": self.source,
        } | self.details


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _utc(value: datetime | str | None, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        return parse_instant(value)
    except (TypeError, ValueError, ConfigError) as exc:
        raise ConfigError(f"{name}: expected an ISO 8601 instant, got {value!r}") from exc


def config_reference_key(reference: ReferenceRange) -> dict[str, Any]:
    """A JSON form of a configured reference, to tell later whether monitors.yaml changed it."""
    key: dict[str, Any] = {
        "start": reference.start.isoformat() if reference.start else None,
        "end": reference.end.isoformat() if reference.end else None,
        "last_s": reference.last.total_seconds() if reference.last else None,
    }
    if reference.source is not None:  # only then, so that the keys stored for ranges stay equal
        key["source"] = list(reference.source)
    return key


def _from_row(row: dict[str, Any], model_config: ModelConfig, window_start: datetime | None) -> ReferenceVersion:
    start, end = row["reference_start"].astimezone(UTC), row["reference_end"].astimezone(UTC)
    if model_config.reference.rolling and window_start is not None:
        # A rolling reference keeps rolling, but never reaches back before the promoted data; while
        # the rolling range still ends before that data starts, the promoted range itself.
        configured = model_config.reference.span_for(window_start)
        if start < configured[1]:
            start, end = max(configured[0], start), configured[1]
    return ReferenceVersion(
        model=model_config.name,
        version=int(row["version"]),
        start=start,
        end=end,
        effective_from=row["effective_from"].astimezone(UTC),
        warmup=bool(row["warmup"]),
        model_version=row["model_version"],
        model_version_id=row["model_version_id"],
        source=row["source"],
        note=row["note"],
        promoted_by=row["promoted_by"],
        created_at=row["created_at"],
    )


def configured_reference(model_config: ModelConfig, window_start: datetime | None) -> ReferenceVersion:
    """Version 0: the reference monitors.yaml configures, placed for ``window_start`` if rolling."""
    start, end = model_config.reference.span_for(window_start)
    return ReferenceVersion(model=model_config.name, version=0, start=start, end=end)


def resolve_reference(
    bind: Engine | sa.Connection,
    model_config: ModelConfig,
    window_start: datetime | None,
    *,
    latest: bool = False,
    version: int | None = None,
) -> ReferenceVersion:
    """The reference version a window starting at ``window_start`` is judged against.

    Default: the version with the latest ``effective_from <= window_start`` (the configured
    reference, version 0, when there is none). ``window_start`` None: the version in effect now.
    ``latest``: the newest version regardless of ``effective_from`` (re-judging history, on request).
    ``version``: that stored version (what a window's stored verdicts rest on, for the late-label
    refresh); 0 is the configured reference; a version recorded against a configured reference that
    monitors.yaml has changed since falls back to the default.
    """
    key = config_reference_key(model_config.reference)
    row: dict[str, Any] | None = None
    if version is not None:
        if version == 0:
            return configured_reference(model_config, window_start)
        row = reference_version_row(bind, model=model_config.name, version=version)
        if row is not None and row["config_reference"] != key:
            row = None
    if row is None:
        at = None if latest else (window_start if window_start is not None else datetime.now(UTC))
        row = version_in_effect(bind, model=model_config.name, config_reference=key, window_start=at)
    if row is None:
        return configured_reference(model_config, window_start)
    return _from_row(row, model_config, window_start)


def reference_versions(bind: Engine | sa.Connection, model_config: ModelConfig) -> list[ReferenceVersion]:
    """Every stored version of the model that applies to its configured reference, oldest first."""
    key = config_reference_key(model_config.reference)
    return [
        _from_row(row, model_config, None)
        for row in reference_version_rows(bind, model=model_config.name)
        if row["config_reference"] == key
    ]


def count_reference_rows(data_engine: Engine, model_config: ModelConfig, start: datetime, end: datetime) -> int:
    """Rows of the prediction log in ``[start, end)``."""
    from driftline.tasks.extract import log_table

    table = log_table(model_config)
    ts = table.c[model_config.timestamp_column]
    statement = sa.select(sa.func.count()).select_from(table).where(ts >= start, ts < end)
    with data_engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def promote_reference(
    bind: Engine | sa.Connection,
    *,
    model_config: ModelConfig,
    version: str | int | None = None,
    reference_start: datetime | str | None = None,
    reference_end: datetime | str | None = None,
    effective_from: datetime | str | None = None,
    note: str | None = None,
    promoted_by: str | None = None,
    data_engine: Engine | None = None,
    model_version_id: int | None = None,
    source: str = "promotion",
    now: datetime | None = None,
) -> ReferenceVersion:
    """Record a new reference version of ``model`` and return it.

    ``version``: the promoted model's version as the team names it (stored as text). ``reference_start``
    and ``reference_end``: the new reference range, both or neither; neither starts a warm-up (the new
    model's traffic from ``effective_from`` to the end of the ``reference.warmup_hours``-th hour after
    it). ``effective_from`` (default: now): windows starting at or after it are judged against the new
    version; earlier windows keep theirs. ``data_engine``: the prediction log, to refuse a range with
    fewer than ``reference.min_rows`` rows (``ReferenceTooSmallError``) before anything is recorded;
    without it the size is still enforced when windows are judged. ``bind``: an engine (own
    transaction) or a connection (the caller's transaction, e.g. recording a model version with it).

    Raises ``ConfigError`` for a half-given or reversed range or an unparseable instant.
    """
    start = _utc(reference_start, "reference_start")
    end = _utc(reference_end, "reference_end")
    moment = _utc(effective_from, "effective_from") or (now or datetime.now(UTC))
    if (start is None) != (end is None):
        raise ConfigError(
            f"model {model_config.name!r}: give both reference_start and reference_end, or neither (warm-up)"
        )
    warmup = start is None
    if start is None or end is None:
        first_full_hour = moment if floor_hour(moment) == moment else floor_hour(moment) + HOUR
        start, end = moment, first_full_hour + timedelta(hours=model_config.reference.warmup_hours)
    if not start < end:
        raise ConfigError(f"model {model_config.name!r}: reference_start must be before reference_end")
    if not warmup and data_engine is not None:
        rows = count_reference_rows(data_engine, model_config, start, end)
        if rows < model_config.reference.min_rows:
            raise ReferenceTooSmallError(
                f"model {model_config.name!r}: the reference {start.isoformat()} .. {end.isoformat()} has {rows} rows, "
                f"fewer than reference.min_rows={model_config.reference.min_rows}; give a longer range, or no range "
                f"for a {model_config.reference.warmup_hours}h warm-up on the new model's traffic"
            )
    values = {
        "model": model_config.name,
        "reference_start": start,
        "reference_end": end,
        "effective_from": moment,
        "config_reference": config_reference_key(model_config.reference),
        "warmup": warmup,
        "model_version": None if version is None else str(version),
        "model_version_id": model_version_id,
        "source": source,
        "note": note,
        "promoted_by": promoted_by,
    }
    if isinstance(bind, sa.Connection):
        row = insert_reference_version(bind, **values)
    else:
        with bind.begin() as connection:
            row = insert_reference_version(connection, **values)
    return _from_row(row, model_config, None)


# --- the reference-override helpers of the retrain log, kept as thin wrappers -----------------------


def effective_reference_range(
    engine: Engine, model_config: ModelConfig, window_start: datetime | None = None
) -> tuple[datetime, datetime]:
    """The ``[start, end)`` of the reference a window starting at ``window_start`` is judged against
    (``None``: the version in effect now). Kept for existing callers; see ``resolve_reference``."""
    version = resolve_reference(engine, model_config, window_start)
    return version.start, version.end


def with_effective_reference(
    engine: Engine, model_config: ModelConfig, window_start: datetime | None = None
) -> ModelConfig:
    """``model`` itself, or a copy whose reference is the fixed range of the version in effect at
    ``window_start``. Kept for existing callers; see ``resolve_reference``."""
    return resolve_reference(engine, model_config, window_start).apply(model_config)


def set_reference_override(
    connection: sa.Connection,
    model_config: ModelConfig,
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
        model_config=model_config,
        reference_start=start,
        reference_end=end,
        effective_from=effective_from,
        note=reason,
        model_version_id=model_version_id,
        source="retrain",
    )
    return promoted.version
