"""Versioned references: promote_reference records versions, resolve_reference picks the one in effect
at a window's start (real PostgreSQL; the migration of reference_overrides too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from driftline.config.monitors import ModelConfig
from driftline.core.errors import ConfigError
from driftline.storage.migrate import upgrade
from driftline.tasks.references import (
    ReferenceTooSmallError,
    promote_reference,
    reference_versions,
    resolve_reference,
)
from tests.conftest import DAY, REFERENCE_END, REFERENCE_START, model_entry

PROMOTED = DAY + timedelta(hours=12)


def _model(**reference: Any) -> ModelConfig:
    ranges = {"start": REFERENCE_START.isoformat(), "end": REFERENCE_END.isoformat()} | reference
    return ModelConfig.model_validate(model_entry("loan", "public.loan_predictions", reference=ranges))


def test_a_window_is_judged_against_the_version_in_effect_at_its_start(store: sa.Engine) -> None:
    model = _model()
    first = promote_reference(
        store,
        model_config=model,
        version="v2",
        reference_start=DAY,
        reference_end=DAY + timedelta(hours=6),
        effective_from=PROMOTED,
        note="reviewed",
        promoted_by="ana",
    )
    second = promote_reference(
        store,
        model_config=model,
        version="v3",
        reference_start=DAY + timedelta(hours=6),
        reference_end=DAY + timedelta(hours=12),
        effective_from=PROMOTED + timedelta(hours=5),
    )
    assert (first.version, second.version) == (1, 2)
    assert (first.model_version, first.note, first.promoted_by, first.source) == ("v2", "reviewed", "ana", "promotion")

    before = resolve_reference(store, model, PROMOTED - timedelta(hours=1))
    assert before.version == 0 and (before.start, before.end) == (REFERENCE_START, REFERENCE_END)
    assert before.apply(model) is model
    at = resolve_reference(store, model, PROMOTED)  # at effective_from: the new version
    assert at.version == 1 and (at.start, at.end) == (DAY, DAY + timedelta(hours=6))
    assert at.apply(model).reference_definition() != model.reference_definition()
    assert resolve_reference(store, model, PROMOTED + timedelta(hours=4)).version == 1
    assert resolve_reference(store, model, PROMOTED + timedelta(hours=5)).version == 2
    # Re-judging history is explicit: the newest version whatever the window; or a pinned one.
    assert resolve_reference(store, model, PROMOTED - timedelta(days=3), latest=True).version == 2
    assert resolve_reference(store, model, PROMOTED + timedelta(hours=9), version=1).version == 1
    assert resolve_reference(store, model, PROMOTED + timedelta(hours=9), version=0).version == 0
    assert [v.version for v in reference_versions(store, model)] == [1, 2]
    # Editing monitors.yaml's reference makes the file win again: the versions replaced the old one.
    edited = _model(end=(REFERENCE_END + timedelta(hours=1)).isoformat())
    assert resolve_reference(store, edited, PROMOTED + timedelta(hours=9)).version == 0
    assert resolve_reference(store, edited, PROMOTED + timedelta(hours=9), version=2).version == 0


def test_promotion_without_a_range_is_a_warm_up_on_the_new_traffic(store: sa.Engine) -> None:
    model = _model(warmup_hours=6)
    promoted = promote_reference(store, model_config=model, version=4, effective_from=PROMOTED + timedelta(minutes=20))
    # From the promotion to the end of the 6th full hour after it.
    assert promoted.warmup and promoted.model_version == "4"
    assert (promoted.start, promoted.end) == (PROMOTED + timedelta(minutes=20), PROMOTED + timedelta(hours=7))
    inside = resolve_reference(store, model, PROMOTED + timedelta(hours=3))
    reason = inside.not_ready_reason(PROMOTED + timedelta(hours=3))
    assert reason is not None and reason.startswith("warm-up after reference version 1")
    after = PROMOTED + timedelta(hours=7)
    assert resolve_reference(store, model, after).not_ready_reason(after) is None
    # The hour the promotion fell in started before it: still the configured reference.
    assert resolve_reference(store, model, PROMOTED).version == 0
    # A reference whose range has not ended yet is never fitted (it would be stored incomplete).
    now = datetime.now(UTC)
    live = promote_reference(store, model_config=model, effective_from=now)
    assert live.not_ready_reason(now + timedelta(hours=30)) is not None


def test_a_reference_smaller_than_min_rows_is_refused_before_anything_is_recorded(
    store: sa.Engine, log_schema: str
) -> None:
    from tests.conftest import create_log_table, synthetic_rows

    table = create_log_table(store, log_schema, "loan_predictions")
    with store.begin() as connection:
        connection.execute(table.insert(), synthetic_rows(np.random.default_rng(3), DAY, 4, 100))
    model = ModelConfig.model_validate(
        model_entry(
            "loan",
            f"{log_schema}.loan_predictions",
            reference={"start": REFERENCE_START.isoformat(), "end": REFERENCE_END.isoformat(), "min_rows": 300},
        )
    )
    with pytest.raises(ReferenceTooSmallError, match=r"has 200 rows, fewer than reference.min_rows=300"):
        promote_reference(
            store, model_config=model, reference_start=DAY, reference_end=DAY + timedelta(hours=2), data_engine=store
        )
    assert reference_versions(store, model) == []
    enough = promote_reference(
        store, model_config=model, reference_start=DAY, reference_end=DAY + timedelta(hours=3), data_engine=store
    )
    assert enough.version == 1


def test_bad_promotions_are_clear_errors(store: sa.Engine) -> None:
    model = _model()
    with pytest.raises(ConfigError, match="both reference_start and reference_end"):
        promote_reference(store, model_config=model, reference_start=DAY)
    with pytest.raises(ConfigError, match="before reference_end"):
        promote_reference(store, model_config=model, reference_start=DAY, reference_end=DAY)
    with pytest.raises(ConfigError, match="effective_from"):
        promote_reference(store, model_config=model, effective_from="next tuesday")
    assert reference_versions(store, model) == []


def test_default_reference_min_rows_is_stated_in_the_config() -> None:
    from driftline.config.monitors import DEFAULT_REFERENCE_MIN_ROWS

    assert _model().reference.min_rows == DEFAULT_REFERENCE_MIN_ROWS
    with pytest.raises(ValueError):
        _model(min_rows=0)


def _downgrade(engine: sa.Engine, revision: str) -> None:
    from alembic import command

    from driftline.storage.migrate import alembic_config

    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_migration_turns_reference_overrides_into_versions_effective_when_recorded(engine: sa.Engine) -> None:
    """An install with retrain overrides upgrades to 0006: each override becomes a version effective
    from when it was recorded, numbered in order; the configured key is kept (the file still wins)."""
    _downgrade(engine, "0005")
    try:
        recorded = [datetime(2026, 3, 5, 10, tzinfo=UTC), datetime(2026, 3, 6, 10, tzinfo=UTC)]
        key = {"start": REFERENCE_START.isoformat(), "end": REFERENCE_END.isoformat(), "last_s": None}
        with engine.begin() as connection:
            connection.execute(sa.text("TRUNCATE driftline.reference_overrides"))
            for i, at in enumerate(recorded):
                connection.execute(
                    sa.text(
                        "INSERT INTO driftline.reference_overrides "
                        "(model, reference_start, reference_end, config_reference, reason, created_at) "
                        "VALUES ('loan', :s, :e, CAST(:k AS jsonb), :r, :c)"
                    ),
                    {
                        "s": DAY + timedelta(hours=i),
                        "e": DAY + timedelta(hours=i + 6),
                        "k": __import__("json").dumps(key),
                        "r": f"retrain {i}",
                        "c": at,
                    },
                )
    finally:
        upgrade(engine)
    model = _model()
    versions = reference_versions(engine, model)
    assert [(v.version, v.effective_from, v.start, v.source, v.note) for v in versions] == [
        (1, recorded[0], DAY, "reference_override", "retrain 0"),
        (2, recorded[1], DAY + timedelta(hours=1), "reference_override", "retrain 1"),
    ]
    # Existing installs keep behaving: hours after the override use it; earlier hours the configured one.
    assert resolve_reference(engine, model, recorded[1] + timedelta(hours=1)).version == 2
    assert resolve_reference(engine, model, recorded[0] - timedelta(hours=1)).version == 0
    with engine.begin() as connection:
        connection.execute(sa.text("TRUNCATE driftline.reference_overrides, driftline.reference_versions"))
