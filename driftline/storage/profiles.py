"""Repository of profiles: fitted reference profiles (``driftline.reference_profiles``, one per model and
reference definition; the first stored wins) and hourly window profiles (``driftline.window_profiles``,
kept without their bins so days and weeks merge from them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine

from driftline.core.window import Window
from driftline.stats.model_profile import ModelProfile
from driftline.storage.models import ReferenceProfileRow, WindowProfileRow
from driftline.storage.results import json_safe

PROFILES = ReferenceProfileRow.__table__
WINDOW_PROFILES = WindowProfileRow.__table__


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
            profile=json_safe(profile.to_json()),
        )
        .on_conflict_do_nothing(index_elements=[PROFILES.c.model, PROFILES.c.definition])
    )
    with engine.begin() as connection:
        connection.execute(statement)
    stored = load_reference(engine, model, definition)
    assert stored is not None
    return stored



def latest_reference_profile(engine: Engine, model: str) -> tuple[ModelProfile, datetime, datetime] | None:
    """The model's most recently fitted reference profile of any definition, with its reference range."""
    statement = (
        sa.select(PROFILES.c.profile, PROFILES.c.reference_start, PROFILES.c.reference_end)
        .where(PROFILES.c.model == model)
        .order_by(PROFILES.c.fitted_at.desc(), PROFILES.c.id.desc())
        .limit(1)
    )
    with engine.connect() as connection:
        row = connection.execute(statement).first()
    return None if row is None else (ModelProfile.from_json(row.profile), row.reference_start, row.reference_end)


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
        "profile": json_safe(_compact(profile)),
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

