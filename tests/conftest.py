"""Shared fixtures: a real PostgreSQL (never mocked) and a real Prefect API (the test harness).

The database is ``$DRIFTLINE_TEST_DATABASE_URL``, else the local server at 127.0.0.1:5432/test;
when neither answers, an embedded PostgreSQL (pgserver) is started for the session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
import yaml

DEFAULT_TEST_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"
TESTS = Path(__file__).resolve().parent
#: Folders whose every test carries the folder's marker.
FOLDER_MARKERS = {"e2e": "e2e", "faults": "faults"}
#: Markers that imply ``slow``: ``pytest -m "not slow"`` (the fast loop) leaves these tests out.
SLOW_KINDS = ("e2e", "faults", "browser")


@pytest.hookimpl(tryfirst=True)  # before pytest's own -m selection reads the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under tests/e2e and tests/faults get the ``e2e``/``faults`` marker. Those, the ``browser``
    tests and every test using ``prefect_api`` (the harness alone takes 20-35 s to start on 2 cores)
    are ``slow`` too; other tests over ~3 s carry ``@pytest.mark.slow`` themselves."""
    for item in items:
        path = Path(item.path).resolve()
        folder = path.relative_to(TESTS).parts[0] if path.is_relative_to(TESTS) else None
        if folder in FOLDER_MARKERS:
            item.add_marker(FOLDER_MARKERS[folder])
        slow_kind = any(item.get_closest_marker(kind) for kind in SLOW_KINDS)
        if (slow_kind or "prefect_api" in getattr(item, "fixturenames", ())) and not item.get_closest_marker("slow"):
            item.add_marker("slow")


def _reachable(url: str) -> bool:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of this session's own (created on the server, dropped at the end), so concurrent
    test runs never share a results schema. Falls back to the server's database itself when the
    role may not create databases."""
    url = os.environ.get("DRIFTLINE_TEST_DATABASE_URL", DEFAULT_TEST_URL)
    if not _reachable(url):
        from driftline.storage.embedded import start_embedded

        url = start_embedded(tmp_path_factory.mktemp("pgdata"))
    name = f"driftline_test_{uuid.uuid4().hex[:12]}"
    # NullPool: a connection per use, so a server restart during the session (a fault test) leaves
    # no dead pooled connection behind for the final DROP DATABASE.
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.ProgrammingError:
        admin.dispose()
        yield url
        return
    yield sa.make_url(url).set(database=name).render_as_string(hide_password=False)
    from driftline.storage.engine import dispose_all

    dispose_all()
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[sa.Engine]:
    from driftline.storage.engine import get_engine
    from driftline.storage.migrate import upgrade

    engine = get_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text('DROP SCHEMA IF EXISTS "driftline" CASCADE'))
    upgrade(engine)
    yield engine


@pytest.fixture
def store(engine: sa.Engine) -> sa.Engine:
    """The results store, emptied before the test."""
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "TRUNCATE driftline.results, driftline.runs, driftline.reference_profiles, driftline.incidents, "
                "driftline.outbox, driftline.model_versions, driftline.reference_overrides, driftline.retrain_runs, "
                "driftline.reference_versions, driftline.window_profiles"
            )
        )
    return engine


@pytest.fixture
def log_schema(engine: sa.Engine) -> Iterator[str]:
    """A fresh schema for one test's prediction log tables, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    with engine.begin() as connection:
        connection.execute(sa.schema.CreateSchema(name))
    yield name
    with engine.begin() as connection:
        connection.execute(sa.schema.DropSchema(name, cascade=True))


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """A real Prefect API for flow tests (temporary database, own server process)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


REFERENCE_START = datetime(2026, 3, 1, tzinfo=UTC)
REFERENCE_END = datetime(2026, 3, 3, tzinfo=UTC)
DAY = datetime(2026, 3, 3, tzinfo=UTC)


def create_log_table(engine: sa.Engine, schema: str | None, table: str) -> sa.Table:
    target = sa.Table(
        table,
        sa.MetaData(schema=schema),
        sa.Column("request_id", sa.BigInteger, primary_key=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("income", sa.Float),
        sa.Column("age", sa.Float),
        sa.Column("region", sa.Text),
        sa.Column("prediction", sa.Float),
        sa.Column("score", sa.Float),
        sa.Column("label", sa.Float),
        sa.Column("latency_ms", sa.Float),
    )
    with engine.begin() as connection:
        target.create(connection)
    return target


def synthetic_rows(
    rng: np.random.Generator, start: datetime, hours: int, per_hour: int, income_shift: float = 0.0, first_id: int = 1
) -> list[dict[str, Any]]:
    rows = []
    next_id = first_id
    for h in range(hours):
        hour_start = start + timedelta(hours=h)
        for s in np.sort(rng.uniform(0, 3600, per_hour)):
            score = float(rng.uniform())
            rows.append(
                {
                    "request_id": next_id,
                    "ts": hour_start + timedelta(seconds=float(s)),
                    "income": float(rng.normal(50_000 + income_shift, 10_000)),
                    "age": float(rng.integers(18, 80)),
                    "region": str(rng.choice(["north", "south", "east"], p=[0.5, 0.3, 0.2])),
                    "prediction": float(score > 0.5),
                    "score": score,
                    "label": float(rng.uniform() < score),
                    "latency_ms": float(rng.gamma(3, 10)),
                }
            )
            next_id += 1
    return rows


def model_entry(name: str, table: str, **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "table": table,
        "timestamp_column": "ts",
        "id_column": "request_id",
        "task": "classification",
        "features": {"numeric": ["income", "age"], "categorical": ["region"]},
        "prediction_column": "prediction",
        "score_column": "score",
        "label_column": "label",
        "latency_column": "latency_ms",
        "reference": {"start": REFERENCE_START.isoformat(), "end": REFERENCE_END.isoformat()},
    }
    entry.update(overrides)
    return entry


def write_config(path: Path, models: list[dict[str, Any]], database_url: str | None = None) -> Path:
    document: dict[str, Any] = {"models": models}
    if database_url:
        document["database_url"] = database_url
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def write_loan_log(engine: sa.Engine, schema: str) -> dict[str, Any]:
    """A prediction log ``<schema>.loan_predictions``: 2 days of reference, then a day whose
    afternoon (from 12:00) has income shifted by +3 standard deviations. 200 rows per hour."""
    table = create_log_table(engine, schema, "loan_predictions")
    rng = np.random.default_rng(7)
    rows = synthetic_rows(rng, REFERENCE_START, 48, 200)
    rows += synthetic_rows(rng, DAY, 12, 200, first_id=len(rows) + 1)
    rows += synthetic_rows(rng, DAY + timedelta(hours=12), 12, 200, income_shift=30_000, first_id=len(rows) + 1)
    with engine.begin() as connection:
        connection.execute(table.insert(), rows)
    return {"schema": schema, "table": f"{schema}.loan_predictions", "rows": rows}


@pytest.fixture
def loan_log(engine: sa.Engine, log_schema: str) -> dict[str, Any]:
    """The loan prediction log (:func:`write_loan_log`) in a fresh schema of the session's server."""
    return write_loan_log(engine, log_schema)


@pytest.fixture
def loan_config(tmp_path: Path, loan_log: dict[str, Any], database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    return write_config(tmp_path / "monitors.yaml", [model_entry("loan", loan_log["table"])], database_url)
