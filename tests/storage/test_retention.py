"""Retention (`driftline db prune`) and migration 0005, on a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from driftline.cli.commands import app
from driftline.core.errors import ConfigError
from driftline.core.results import Kind, Result, Status
from driftline.core.window import Window, last_full_hour_end
from driftline.storage.results import save_window
from driftline.storage.retention import parse_age, prune
from driftline.storage.runs import claim_run
from tests.conftest import model_entry, write_config

HOUR = timedelta(hours=1)
KINDS = [Kind.DATA_DRIFT, Kind.OPERATIONAL]


def _write_hour(engine: sa.Engine, model: str, start: datetime, resolution: str = "hour") -> None:
    span = {"hour": HOUR, "day": timedelta(days=1)}[resolution]
    window = Window(start, start + span)
    rows = [
        Result(
            model=model,
            window_start=window.start,
            window_end=window.end,
            kind=Kind.DATA_DRIFT,
            metric="psi",
            feature="a",
            value=0.1,
            threshold=0.25,
            status=Status.OK,
            details={},
            resolution=resolution,
        ),
        Result(
            model=model,
            window_start=window.start,
            window_end=window.end,
            kind=Kind.OPERATIONAL,
            metric="row_count",
            feature=None,
            value=9,
            threshold=1,
            status=Status.OK,
            details={},
            resolution=resolution,
        ),
    ]
    if resolution == "hour":
        claim_run(engine, model, window)
    save_window(engine, model, window, rows, KINDS, 9, 0.1, resolution=resolution)
    if resolution == "hour":
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO driftline.window_profiles (model, definition, window_start, window_end, row_count, "
                    "profile) VALUES (:m, 'def', :s, :e, 9, '{}'::jsonb)"
                ),
                {"m": model, "s": window.start, "e": window.end},
            )


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            name: int(connection.execute(sa.text(sql)).scalar_one())
            for name, sql in {
                "hour": "SELECT count(*) FROM driftline.results WHERE resolution = 'hour'",
                "day": "SELECT count(*) FROM driftline.results WHERE resolution = 'day'",
                "runs": "SELECT count(*) FROM driftline.runs",
                "profiles": "SELECT count(*) FROM driftline.window_profiles",
            }.items()
        }


@pytest.fixture
def emptied(store: sa.Engine) -> sa.Engine:
    with store.begin() as connection:
        connection.execute(sa.text("TRUNCATE driftline.window_profiles"))
    return store


def test_prune_deletes_hourly_windows_before_the_cutoff_only(emptied: sa.Engine) -> None:
    start = datetime(2026, 3, 1, 22, tzinfo=UTC)
    for h in range(6):  # 22:00 .. 03:00 next day: two calendar days, so two transactions
        for model in ("a", "b"):
            _write_hour(emptied, model, start + h * HOUR)
    _write_hour(emptied, "a", datetime(2026, 3, 1, tzinfo=UTC), resolution="day")
    cutoff = datetime(2026, 3, 2, 1, tzinfo=UTC)  # windows 22, 23, 00 go; 01, 02, 03 stay
    seen: list[tuple[datetime, int]] = []

    pruned = prune(emptied, cutoff, progress=lambda day, n: seen.append((day, n)))

    assert (pruned.results, pruned.runs, pruned.window_profiles) == (3 * 2 * 2, 3 * 2, 3 * 2)
    assert seen == [(datetime(2026, 3, 1, tzinfo=UTC), 2 * 2 * 2), (datetime(2026, 3, 2, tzinfo=UTC), 1 * 2 * 2)]
    assert _counts(emptied) == {"hour": 3 * 2 * 2, "day": 2, "runs": 3 * 2, "profiles": 3 * 2}
    with emptied.connect() as connection:
        kept = connection.execute(
            sa.text("SELECT min(window_start) FROM driftline.results WHERE resolution = 'hour'")
        ).scalar_one()
    assert kept == cutoff
    again = prune(emptied, cutoff)  # idempotent: nothing left to delete
    assert (again.results, again.runs, again.window_profiles) == (0, 0, 0)


def test_dry_run_counts_and_deletes_nothing(emptied: sa.Engine) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for h in range(4):
        _write_hour(emptied, "a", start + h * HOUR)
    before = _counts(emptied)

    pruned = prune(emptied, start + 3 * HOUR, dry_run=True)

    assert (pruned.results, pruned.runs, pruned.window_profiles) == (6, 3, 3)
    assert _counts(emptied) == before


def test_prune_of_an_empty_store_or_a_naive_cutoff(emptied: sa.Engine) -> None:
    assert prune(emptied, datetime(2030, 1, 1, tzinfo=UTC)).results == 0
    with pytest.raises(ValueError, match="timezone-aware"):
        prune(emptied, datetime(2030, 1, 1))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", timedelta(days=90)),
        ("12w", timedelta(weeks=12)),
        ("2160h", timedelta(hours=2160)),
        (" 7 d ", timedelta(days=7)),
    ],
)
def test_parse_age(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["0d", "90", "-3d", "3m", "d"])
def test_parse_age_refuses(text: str) -> None:
    with pytest.raises(ConfigError, match="--older-than"):
        parse_age(text)


def test_cli_prune(emptied: sa.Engine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    config = write_config(tmp_path / "monitors.yaml", [model_entry("m", "public.unused")], database_url)
    now = last_full_hour_end()
    _write_hour(emptied, "m", now - timedelta(days=3))
    _write_hour(emptied, "m", now - 2 * HOUR)
    runner = CliRunner()

    dry = runner.invoke(app, ["db", "prune", "--older-than", "2d", "--config", str(config), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would delete 2 hourly results, 1 run-log rows and 1 window profiles" in dry.stdout
    assert _counts(emptied)["hour"] == 4

    done = runner.invoke(app, ["db", "prune", "--older-than", "2d", "--config", str(config)])
    assert done.exit_code == 0, done.output
    assert "deleted 2 hourly results" in done.stdout
    assert _counts(emptied) == {"hour": 2, "day": 0, "runs": 1, "profiles": 1}

    bad = runner.invoke(app, ["db", "prune", "--older-than", "soon", "--config", str(config)])
    assert bad.exit_code == 2 and "--older-than" in bad.output


def _indexes(engine: sa.Engine) -> set[str]:
    with engine.connect() as connection:
        return set(
            connection.execute(sa.text("SELECT indexname FROM pg_indexes WHERE schemaname = 'driftline'")).scalars()
        )


def test_migration_0005_on_a_populated_store_and_when_an_index_exists(emptied: sa.Engine) -> None:
    from alembic import command

    from driftline.storage.migrate import alembic_config, current_revision, head_revision, upgrade

    time_indexes = {"results_window_start", "runs_window_start", "window_profiles_window_start"}
    config = alembic_config()
    try:
        start = datetime(2026, 3, 1, tzinfo=UTC)
        for h in range(3):  # written by today's code, then the schema goes back to 0004 under the rows
            _write_hour(emptied, "a", start + h * HOUR)
        with emptied.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0004")
        assert current_revision(emptied) == "0004" and not time_indexes & _indexes(emptied)
        with emptied.begin() as connection:  # an operator created one of them by hand already
            connection.execute(sa.text("CREATE INDEX runs_window_start ON driftline.runs (window_start)"))
        before = _counts(emptied)

        upgrade(emptied)

        assert current_revision(emptied) == head_revision()
        assert time_indexes <= _indexes(emptied)
        assert _counts(emptied) == before
        with emptied.connect() as connection:
            connection.execute(sa.text("SET enable_seqscan = off"))
            plan = "\n".join(
                connection.execute(
                    sa.text("EXPLAIN SELECT count(*) FROM driftline.results WHERE window_start >= :s"), {"s": start}
                ).scalars()
            )
        assert "results_window_start" in plan
    finally:
        upgrade(emptied)
