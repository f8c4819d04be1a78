"""Typed models of Driftline's own tables (schema ``driftline``). Changed only through migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA = "driftline"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class ResultRow(Base):
    """One result record. Unique per (model, window_start, kind, metric, feature); NULL features equal."""

    __tablename__ = "results"
    __table_args__ = (
        Index(
            "results_key",
            "model",
            "window_start",
            "kind",
            "metric",
            "feature",
            unique=True,
            postgresql_nulls_not_distinct=True,
        ),
        Index("results_model_kind_window", "model", "kind", "window_start"),
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
    __table_args__ = (CheckConstraint("status IN ('running','succeeded','failed')", name="runs_status_valid"),)

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
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
