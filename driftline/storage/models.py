"""Typed models of Driftline's own tables (schema ``driftline``). Changed only through migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA = "driftline"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class ResultRow(Base):
    """One result record. Unique per (model, resolution, window_start, kind, metric, feature); NULL features equal."""

    __tablename__ = "results"
    __table_args__ = (
        Index(
            "results_key",
            "model",
            "resolution",
            "window_start",
            "kind",
            "metric",
            "feature",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
        Index("results_model_kind_window", "model", "kind", "window_start"),
        # Time-range reads across models and retention (migration 0005).
        Index("results_window_start", "window_start"),
        CheckConstraint(
            "kind IN ('data_drift','concept_drift','performance','data_quality','operational')",
            name="results_kind_valid",
        ),
        CheckConstraint("status IN ('ok','warning','alert','unknown')", name="results_status_valid"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(Text)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(Text)
    metric: Mapped[str] = mapped_column(Text)
    feature: Mapped[str | None] = mapped_column(Text, nullable=True)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    resolution: Mapped[str] = mapped_column(Text, server_default="hour")


class WindowProfileRow(Base):
    """An hourly window's profile (counts only; bins come from its reference), merged into days and weeks."""

    __tablename__ = "window_profiles"
    __table_args__ = (Index("window_profiles_window_start", "window_start"),)

    model: Mapped[str] = mapped_column(Text, primary_key=True)
    definition: Mapped[str] = mapped_column(Text, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    row_count: Mapped[int] = mapped_column(BigInteger)
    profile: Mapped[dict[str, Any]] = mapped_column(JSONB)


class ReferenceProfileRow(Base):
    """A fitted reference profile; one per (model, definition). Reused every hour, never refitted."""

    __tablename__ = "reference_profiles"
    __table_args__ = (Index("reference_profiles_key", "model", "definition", unique=True),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(Text)
    definition: Mapped[str] = mapped_column(Text)
    reference_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reference_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    row_count: Mapped[int] = mapped_column(BigInteger)
    profile: Mapped[dict[str, Any]] = mapped_column(JSONB)
    fitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RunRow(Base):
    """The run log: the latest attempt at one (model, window)."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint("status IN ('running','succeeded','failed')", name="runs_status_valid"),
        Index("runs_window_start", "window_start"),
        Index("runs_running", "model", postgresql_where=text("status = 'running'")),
    )

    model: Mapped[str] = mapped_column(Text, primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text)
    row_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    flow_run_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    labelled_rows: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    labels_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: Order-independent checksum of the window's (row, label) pairs when it was judged (migration 0007):
    #: a label corrected in place changes it even when ``labelled_rows`` does not. NULL: before 0007.
    label_checksum: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The reference version the window's stored verdicts rest on (0: the configured one; NULL: before 0006).
    reference_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: While ``running``: renewed by the run's heartbeat; once passed, the run is abandoned (migration 0008).
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# --- Notifications and retraining (migration 0003) -------------------------------------------


class IncidentRow(Base):
    """An open (or resolved) problem of one (model, kind): what notifications remember between windows."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("incidents_one_open", "model", "kind", unique=True, postgresql_where=text("state = 'open'")),
        CheckConstraint("state IN ('open','resolved')", name="incidents_state_valid"),
        CheckConstraint("severity IN ('warning','alert')", name="incidents_severity_valid"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text, server_default="open")
    severity: Mapped[str] = mapped_column(Text)
    opened_window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reminders: Mapped[int] = mapped_column(Integer, server_default="0")
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class OutboxRow(Base):
    """One message to deliver (Slack, e-mail, webhook, or a Prefect event that could not be sent)."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("outbox_dedupe", "dedupe_key", unique=True),
        Index("outbox_pending", "model", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        CheckConstraint("status IN ('pending','delivered','failed')", name="outbox_status_valid"),
        CheckConstraint("channel IN ('slack','email','webhook','event')", name="outbox_channel_valid"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(Text, nullable=True)
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    transition: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    incident_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ModelVersionRow(Base):
    """A retrained model that beat the current one on the holdout."""

    __tablename__ = "model_versions"
    __table_args__ = (Index("model_versions_key", "model", "version", unique=True),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    estimator: Mapped[str] = mapped_column(Text)
    artifact: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    features: Mapped[dict[str, Any]] = mapped_column(JSONB)
    train_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    train_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    metric: Mapped[str] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Float)
    baseline_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    baseline_source: Mapped[str | None] = mapped_column(Text, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    flow_run_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReferenceOverrideRow(Base):
    """A reference range set by a retrain; honoured while the configured range is the one it replaced."""

    __tablename__ = "reference_overrides"
    __table_args__ = (
        Index("reference_overrides_latest", "model", "id"),
        CheckConstraint("reference_start < reference_end", name="reference_overrides_ordered"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(Text)
    reference_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reference_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: The configured reference this override replaced (monitors.yaml edited since -> the file wins).
    config_reference: Mapped[dict[str, Any]] = mapped_column(JSONB)
    model_version_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReferenceVersionRow(Base):
    """A promoted reference (migration 0006): windows starting at or after ``effective_from`` are judged
    against ``[reference_start, reference_end)``, until a later version takes effect."""

    __tablename__ = "reference_versions"
    __table_args__ = (
        Index("reference_versions_key", "model", "version", unique=True),
        Index("reference_versions_effective", "model", "effective_from"),
        CheckConstraint("reference_start < reference_end", name="reference_versions_ordered"),
        CheckConstraint("version > 0", name="reference_versions_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(Text)
    #: 1, 2, ... per model (0 is the configured reference, never stored).
    version: Mapped[int] = mapped_column(Integer)
    reference_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reference_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    effective_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: No range was given: the new model's first hours of traffic are the reference (the warm-up).
    warmup: Mapped[bool] = mapped_column(Boolean, server_default=false())
    #: The promoted model's version as the team names it.
    model_version: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The ``model_versions`` row, when Driftline's own trainer produced the model.
    model_version_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: The configured reference this version replaced (monitors.yaml edited since -> the file wins).
    config_reference: Mapped[dict[str, Any]] = mapped_column(JSONB)
    source: Mapped[str] = mapped_column(Text, server_default="promotion")
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    promoted_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RetrainRunRow(Base):
    """The retrain log: one row per retrain flow run (also the cooldown's memory)."""

    __tablename__ = "retrain_runs"
    __table_args__ = (
        Index("retrain_runs_model_started", "model", "started_at"),
        CheckConstraint(
            "status IN ('running','promoted','rejected','skipped','failed')", name="retrain_runs_status_valid"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    flow_run_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
