"""Retention (``driftline db prune``): delete hourly windows older than a cutoff, one day per transaction.

A year of hourly results for 200 models of 20 features is ~190M rows, ~100 GB (docs/scale.md). Hourly
results, their run-log rows and hourly window profiles of windows that started before the cutoff are
deleted; day and week results (``--resolution day|week``, 1/24 and 1/168 of the rows) are kept as the
long-term record. Each day is its own transaction, found through the ``window_start`` indexes of
migration 0005, so a prune never holds a long transaction and never scans the whole table; the freed
space is reused by later windows once (auto)vacuum has run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from driftline.core.errors import ConfigError
from driftline.storage.models import ResultRow, RunRow, WindowProfileRow

RESULTS = cast(sa.Table, ResultRow.__table__)
RUNS = cast(sa.Table, RunRow.__table__)
WINDOW_PROFILES = cast(sa.Table, WindowProfileRow.__table__)
DAY = timedelta(days=1)
_AGE = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_age(text: str) -> timedelta:
    """``90d``, ``12w`` or ``2160h`` as a positive timedelta."""
    match = _AGE.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ConfigError(f"--older-than must be a positive number of hours, days or weeks (90d, 12w, 2160h): {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class Pruned:
    """Rows deleted (or, in a dry run, that would be) per table, and the cutoff used."""

    cutoff: datetime
    results: int = 0
    runs: int = 0
    window_profiles: int = 0
    days: list[datetime] = field(default_factory=list)


def _oldest(connection: sa.Connection) -> datetime | None:
    candidates = [
        connection.execute(sa.select(sa.func.min(RESULTS.c.window_start)).where(RESULTS.c.resolution == "hour")),
        connection.execute(sa.select(sa.func.min(RUNS.c.window_start))),
        connection.execute(sa.select(sa.func.min(WINDOW_PROFILES.c.window_start))),
    ]
    found = [value for value in (c.scalar_one() for c in candidates) if value is not None]
    return min(found) if found else None


def prune(
    engine: Engine,
    cutoff: datetime,
    *,
    dry_run: bool = False,
    progress: Callable[[datetime, int], None] | None = None,
) -> Pruned:
    """Delete hourly results, run-log rows and hourly window profiles of windows starting before ``cutoff``.

    Day and week results are kept. One transaction per day of windows, oldest first; ``progress`` is
    called after each with the day and the result rows it removed. ``dry_run`` counts instead.
    """
    if cutoff.tzinfo is None:
        raise ValueError("cutoff must be timezone-aware")
    cutoff = cutoff.astimezone(UTC)
    pruned = Pruned(cutoff)
    with engine.connect() as connection:
        oldest = _oldest(connection)
    if oldest is None or oldest >= cutoff:
        return pruned
    day = oldest.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    while day < cutoff:
        until = min(day + DAY, cutoff)
        deleted = {}
        with engine.begin() as connection:
            for name, table, extra in (
                ("results", RESULTS, [RESULTS.c.resolution == "hour"]),
                ("runs", RUNS, []),
                ("window_profiles", WINDOW_PROFILES, []),
            ):
                where = [table.c.window_start >= day, table.c.window_start < until, *extra]
                if dry_run:
                    statement = sa.select(sa.func.count()).select_from(table).where(*where)
                    deleted[name] = int(connection.execute(statement).scalar_one())
                else:
                    deleted[name] = connection.execute(sa.delete(table).where(*where)).rowcount
        pruned.results += deleted["results"]
        pruned.runs += deleted["runs"]
        pruned.window_profiles += deleted["window_profiles"]
        pruned.days.append(day)
        if progress is not None:
            progress(day, deleted["results"])
        day = until
    return pruned
