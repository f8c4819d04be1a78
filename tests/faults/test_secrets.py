"""No secret in any output, and hostile identifiers read as data, never as SQL.

A password is planted in the database URL (the server trusts local connections, so any password
works). Driftline then runs through the CLI and as a flow, succeeds, fails on a missing column, and
fails on an unreachable port with the same password; every output is searched for the password:
CLI stdout and stderr, every log record (DEBUG), the Prefect API's stored logs, flow and task run
states, artifacts, exception messages, and every row Driftline stored.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from driftline.cli.commands import app
from driftline.core.results import Kind, Status
from driftline.flows.monitor import monitor_all, monitor_model
from driftline.storage.engine import get_engine
from driftline.storage.results import load_results
from tests.conftest import DAY, REFERENCE_START, model_entry, synthetic_rows, write_config

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.timeout(180)]

SECRET = "PLANTED-S3CRET-xyz"
NEEDLES = (SECRET, SECRET.lower(), "S3CRET")


def _with_password(url: str, port: int | None = None) -> str:
    parsed = sa.make_url(url).set(password=SECRET)
    if port is not None:
        parsed = parsed.set(port=port)
    return parsed.render_as_string(hide_password=False)


def _unused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Outputs:
    """Everything a user or an operator could see, gathered for the search."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: Any) -> None:
        self.texts.append((where, text if isinstance(text, str) else repr(text)))

    def add_cli(self, where: str, outcome: Any) -> None:
        self.add(f"{where} stdout", outcome.stdout)
        self.add(f"{where} stderr", outcome.stderr)
        if outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
            self.add_exception(where, outcome.exception)

    def add_exception(self, where: str, exc: BaseException) -> None:
        self.add(f"{where} exception", "".join(traceback.format_exception(exc)) + repr(exc))

    def leaks(self) -> list[str]:
        return [
            f"{where}: ...{text[max(0, text.find(n) - 80) : text.find(n) + 40]}..."
            for where, text in self.texts
            for n in NEEDLES
            if n in text
        ]


@pytest.fixture
def secret_url(database_url: str) -> Iterator[str]:
    if sa.make_url(database_url).host not in ("127.0.0.1", "localhost"):
        pytest.skip("needs a password-less (trust) PostgreSQL over TCP")
    url = _with_password(database_url)
    yield url
    get_engine(url).dispose()


def _prefect_records(since: datetime) -> list[tuple[str, str]]:
    """Logs, states and parameters the Prefect API stored for the flow runs started since ``since``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterStartTime,
        LogFilter,
        LogFilterTimestamp,
        TaskRunFilter,
        TaskRunFilterStartTime,
    )
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)
    found: list[tuple[str, str]] = []
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)))
        assert runs, "the flow runs reached the Prefect API"
        for run in runs:
            found.append((f"flow run {run.name}", run.model_dump_json()))
        tasks = client.read_task_runs(task_run_filter=TaskRunFilter(start_time=TaskRunFilterStartTime(after_=since)))
        found += [(f"task run {t.name}", t.model_dump_json()) for t in tasks]
        offset = 0
        while offset < 20_000:
            logs = client.read_logs(LogFilter(timestamp=LogFilterTimestamp(after_=since)), limit=200, offset=offset)
            found += [(f"API log {log.name}", log.message) for log in logs]
            if len(logs) < 200:
                break
            offset += 200
    return found


def test_no_secret_in_any_output(
    store: sa.Engine,
    loan_log: dict[str, Any],
    secret_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")  # the CLI would lower it to WARNING
    caplog.set_level(logging.DEBUG)
    for name in ("prefect", "driftline", "alembic", "sqlalchemy.pool", "httpx"):
        caplog.set_level(logging.DEBUG, logger=name)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # statements and parameters, not every row
    since = datetime.now(UTC) - timedelta(seconds=1)
    runner = CliRunner()
    control = Outputs()
    control.add("control", f"connecting to {secret_url}")
    assert control.leaks(), "the search finds a planted URL"
    out = Outputs()

    good = write_config(tmp_path / "good.yaml", [model_entry("loan", loan_log["table"])], secret_url)
    window = ["--start", "2026-03-03T14:00Z", "--end", "2026-03-03T16:00Z"]
    ran = runner.invoke(app, ["run", "--config", str(good), *window, "--verbose"])
    out.add_cli("run", ran)
    assert ran.exit_code == 0, ran.output
    for fmt in ("json", "table"):
        shown = runner.invoke(app, ["results", "--config", str(good), "--model", "loan", "--format", fmt])
        out.add_cli(f"results {fmt}", shown)
        assert shown.exit_code == 0 and "income" in shown.stdout
    out.add_cli("validate", runner.invoke(app, ["validate", "--config", str(good)]))
    state = monitor_model("loan", DAY + timedelta(hours=17), str(good), return_state=True)
    assert state.is_completed()
    out.add("flow result", state.result())

    # Errors: a missing column, an unreachable server, a malformed and a foreign URL, all with the password.
    missing = write_config(
        tmp_path / "missing.yaml",
        [model_entry("loan", loan_log["table"], features={"numeric": ["income", "salary"]})],
        secret_url,
    )
    failed = runner.invoke(app, ["run", "--config", str(missing), *window])
    out.add_cli("run missing column", failed)
    assert failed.exit_code == 2 and "no column 'salary'" in failed.stderr
    state = monitor_model("loan", DAY + timedelta(hours=18), str(missing), return_state=True)
    assert state.is_failed()
    out.add("failed flow state", state.message)
    with pytest.raises(Exception) as raised:
        state.result()
    out.add_exception("failed flow", raised.value)
    fanned = monitor_all(DAY + timedelta(hours=18), str(missing))
    assert "salary" in fanned["failed"]["loan"]
    out.add("monitor-all outcome", json.dumps(fanned, default=str))

    unreachable = _with_password(secret_url, port=_unused_port())
    down = write_config(tmp_path / "down.yaml", [model_entry("loan", loan_log["table"])], unreachable)
    for command in (["run", "--config", str(down)], ["results", "--config", str(down), "--model", "loan"]):
        refused = runner.invoke(app, command)
        out.add_cli(f"{command[0]} unreachable", refused)
        assert refused.exit_code == 2 and "cannot connect to" in refused.stderr and "***" in refused.stderr
    state = monitor_model("loan", DAY + timedelta(hours=18), str(down), return_state=True)
    assert state.is_failed()
    out.add("unreachable flow state", state.message)
    with pytest.raises(Exception) as raised:
        state.result()
    out.add_exception("unreachable flow", raised.value)

    for label, url in {
        "malformed": f"postgresql+psycopg://root:{SECRET}@127.0.0.1:notaport/x",
        "foreign": f"mysql://root:{SECRET}@127.0.0.1:3306/x",
    }.items():
        bad = write_config(tmp_path / f"{label}.yaml", [model_entry("loan", loan_log["table"])], url)
        refused = runner.invoke(app, ["run", "--config", str(bad)])
        out.add_cli(f"run {label} URL", refused)
        assert refused.exit_code == 2, refused.output

    # The environment variable route (a SecretStr) with an unreachable server.
    monkeypatch.setenv("DRIFTLINE_DATABASE_URL", unreachable)
    refused = runner.invoke(app, ["run", "--config", str(good)])
    out.add_cli("run unreachable via env", refused)
    assert refused.exit_code == 2
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL")

    # Logs (every record, formatted with its exception), what Prefect stored, what Driftline stored.
    assert len(caplog.records) > 50, "DEBUG logging was captured"
    for record in caplog.records:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += "".join(traceback.format_exception(record.exc_info[1]))
        out.add(f"log {record.name}", text)
    out.texts += _prefect_records(since)
    from prefect.artifacts import Artifact

    artifact = Artifact.get("driftline-loan")
    assert artifact is not None
    out.add("artifact", artifact.model_dump_json())
    with store.connect() as connection:
        for table in ("results", "runs", "reference_profiles"):
            rows = connection.execute(sa.text(f"SELECT t::text FROM driftline.{table} t")).scalars().all()
            assert rows, table
            out.add(f"driftline.{table}", "\n".join(rows))
        errors = connection.execute(sa.text("SELECT error FROM driftline.runs WHERE status = 'failed'")).scalars().all()
    assert any("salary" in (e or "") for e in errors), "the failure was recorded"

    assert len(out.texts) > 100
    assert out.leaks() == []


# --- hostile identifiers: schema, table and columns, through the flow ------------------------------

HOSTILE_SCHEMA = 'Sch"ema; DROP SCHEMA driftline CASCADE; -- ü'
HOSTILE_TABLE = "select * from"
COLUMNS = {
    "request_id": "id'); DELETE FROM driftline.results; --",
    "ts": "when",
    "income": 'inc"ome ünï',
    "age": "AGE (years)",
    "region": "region; DROP TABLE x",
    "prediction": "order",
    "score": "user",
    "label": 'gr"ound truth',
    "latency_ms": "latency ms",
}


@pytest.fixture
def hostile_log(store: sa.Engine) -> Iterator[dict[str, Any]]:
    table = sa.Table(
        HOSTILE_TABLE,
        sa.MetaData(schema=HOSTILE_SCHEMA),
        sa.Column(COLUMNS["request_id"], sa.BigInteger, primary_key=True),
        sa.Column(COLUMNS["ts"], sa.DateTime(timezone=True), nullable=False),
        *(sa.Column(COLUMNS[c], sa.Float) for c in ("income", "age")),
        sa.Column(COLUMNS["region"], sa.Text),
        *(sa.Column(COLUMNS[c], sa.Float) for c in ("prediction", "score", "label", "latency_ms")),
    )
    victim = sa.Table("victim", sa.MetaData(schema=HOSTILE_SCHEMA), sa.Column("id", sa.Integer))
    rng = np.random.default_rng(17)
    rows = synthetic_rows(rng, REFERENCE_START, 48, 60)
    rows += synthetic_rows(rng, DAY, 1, 200, income_shift=30_000, first_id=len(rows) + 1)
    with store.begin() as connection:
        connection.execute(sa.schema.CreateSchema(HOSTILE_SCHEMA))
        table.create(connection)
        victim.create(connection)
        connection.execute(table.insert(), [{COLUMNS[k]: v for k, v in r.items()} for r in rows])
    yield {"rows": rows}
    with store.begin() as connection:
        connection.execute(sa.schema.DropSchema(HOSTILE_SCHEMA, cascade=True))


def test_hostile_schema_table_and_column_names_through_the_flow(
    store: sa.Engine, hostile_log: dict[str, Any], tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    entry = model_entry(
        "hostile",
        HOSTILE_TABLE,
        table_schema=HOSTILE_SCHEMA,
        timestamp_column=COLUMNS["ts"],
        id_column=COLUMNS["request_id"],
        features={"numeric": [COLUMNS["income"], COLUMNS["age"]], "categorical": [COLUMNS["region"]]},
        prediction_column=COLUMNS["prediction"],
        score_column=COLUMNS["score"],
        label_column=COLUMNS["label"],
        latency_column=COLUMNS["latency_ms"],
    )
    config = write_config(tmp_path / "m.yaml", [entry], database_url)
    outcome = monitor_model("hostile", DAY + timedelta(hours=1), str(config))
    assert outcome["rows"] == 200
    assert outcome["alerts"] == [COLUMNS["income"]], "the shifted column, by its own name"

    results = load_results(store, "hostile")
    drift = {(r.feature, r.metric): r.status for r in results if r.kind == Kind.DATA_DRIFT}
    assert drift[(COLUMNS["income"], "wasserstein")] == Status.ALERT
    assert {drift[(COLUMNS["region"], m)] for m in ("chi_square", "psi")} <= {Status.OK, Status.WARNING}
    assert {r.feature for r in results if r.kind == Kind.CONCEPT_DRIFT} >= {COLUMNS["prediction"], COLUMNS["score"]}
    latency = [r for r in results if r.kind == Kind.OPERATIONAL and r.metric.startswith("latency")]
    assert latency and all(r.status != Status.UNKNOWN for r in latency), "latency read from 'latency ms'"

    with store.connect() as connection:
        assert sa.inspect(connection).has_table("victim", schema=HOSTILE_SCHEMA), "no injected DROP ran"
        kept = connection.execute(sa.text("SELECT count(*) FROM driftline.results WHERE model = 'hostile'")).scalar()
    assert kept == len(results) > 20, "no injected DELETE ran"

    shown = CliRunner().invoke(app, ["results", "--config", str(config), "--model", "hostile", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert COLUMNS["income"] in {r["feature"] for r in json.loads(shown.stdout)}


def test_hostile_identifier_that_does_not_exist_is_named_not_run(
    store: sa.Engine, loan_log: dict[str, Any], tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    monkeypatch.delenv("DRIFTLINE_RESULTS_URL", raising=False)
    injected = "income; DROP SCHEMA driftline CASCADE; --"
    schema = f'nope_{uuid.uuid4().hex[:6]}"; DROP TABLE {loan_log["table"]}; --'
    configs = {
        "column": [model_entry("loan", loan_log["table"], features={"numeric": [injected]})],
        "schema": [model_entry("loan", "loan_predictions", table_schema=schema)],
    }
    for label, models in configs.items():
        config = write_config(tmp_path / f"{label}.yaml", models, database_url)
        outcome = CliRunner().invoke(app, ["run", "--config", str(config)])
        assert outcome.exit_code == 2, outcome.output
        assert ("no column" if label == "column" else "does not exist") in outcome.stderr
    with store.connect() as connection:
        assert connection.execute(sa.text(f"SELECT count(*) FROM {loan_log['table']}")).scalar() == len(
            loan_log["rows"]
        )
        assert sa.inspect(connection).has_schema("driftline")


# --- minimal grants: the SQL in docs/guarantees.md, run as written --------------------------------

GUARANTEES = Path(__file__).resolve().parents[2] / "docs" / "guarantees.md"


def _grants_sql(names: dict[str, str]) -> list[str]:
    """The statements of the doc's grants block, with its example names replaced by ``names``."""
    block = GUARANTEES.read_text(encoding="utf-8").split("<!-- grants-sql", 1)[1].split("```sql", 1)[1]
    block = re.sub(r"--[^\n]*", "", block.split("```", 1)[0])
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    return [pattern.sub(lambda m: names[m.group(1)], s).strip() for s in block.split(";") if s.strip()]


@pytest.fixture
def reader(store: sa.Engine, loan_log: dict[str, Any], database_url: str) -> Iterator[dict[str, Any]]:
    """A role made by the doc's SQL: SELECT on the log table, CONNECT and CREATE on a results database."""
    parsed = sa.make_url(database_url)
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as connection:
        if not connection.execute(
            sa.text("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
        ).scalar():
            pytest.skip("the test role may not create roles")
    suffix = uuid.uuid4().hex[:8]
    role, results_db = f"driftline_reader_{suffix}", f"{parsed.database}_r{suffix}"
    names = {
        "driftline_reader": role,
        "ml": str(parsed.database),
        "analytics": loan_log["schema"],
        "driftline_results": results_db,
    }
    statements = _grants_sql(names)
    assert len(statements) == 6 and all(role in s for s in statements if "GRANT" in s or "ROLE" in s)

    def url(database: str) -> str:
        return parsed.set(username=role, password="change-me", database=database).render_as_string(hide_password=False)

    urls = {"data_url": url(str(parsed.database)), "results_url": url(results_db)}
    try:
        with admin.connect() as connection:
            for statement in statements:
                connection.execute(sa.text(statement))
        yield {"role": role, "results_db": results_db, "admin": admin, "url": url, **urls}
    finally:
        for value in urls.values():
            get_engine(value).dispose()
        with admin.connect() as connection:
            connection.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"), {"r": role}
            )
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{results_db}" WITH (FORCE)'))
            connection.execute(sa.text(f'DROP OWNED BY "{role}"'))
            connection.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def test_minimal_grants_from_the_docs(
    reader: dict[str, Any], loan_log: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_DATABASE_URL", reader["data_url"])
    monkeypatch.setenv("DRIFTLINE_RESULTS_URL", reader["results_url"])
    config = write_config(tmp_path / "m.yaml", [model_entry("loan", loan_log["table"])])
    outcome = monitor_model("loan", DAY + timedelta(hours=15), str(config))
    assert outcome["rows"] == 200 and outcome["alerts"] == ["income"]

    results = get_engine(reader["results_url"])
    with results.connect() as connection:
        owner = connection.execute(
            sa.text("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'driftline'")
        ).scalar()
        stored = connection.execute(sa.text("SELECT count(*) FROM driftline.results WHERE model = 'loan'")).scalar()
        status = connection.execute(sa.text("SELECT status FROM driftline.runs WHERE model = 'loan'")).scalar()
    assert owner == reader["role"] and stored and stored > 20 and status == "succeeded"

    # ...and nothing more: the role cannot write to the log, read past its table, or create anything there.
    with reader["admin"].connect() as connection:
        connection.execute(sa.text(f'CREATE TABLE "{loan_log["schema"]}".other (x int)'))
    log = get_engine(reader["data_url"])
    denied = [
        f"INSERT INTO {loan_log['table']} (request_id, ts) VALUES (-1, now())",
        f"UPDATE {loan_log['table']} SET income = 0",
        f'SELECT * FROM "{loan_log["schema"]}".other',
        f'CREATE TABLE "{loan_log["schema"]}".mine (x int)',
        "CREATE SCHEMA mine",
        "SELECT count(*) FROM driftline.results",  # another deployment's results in the log's database
    ]
    for statement in denied:
        with log.connect() as connection, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            connection.execute(sa.text(statement))


def test_results_schema_owned_by_the_role_without_database_create(reader: dict[str, Any]) -> None:
    """The tighter variant: results in a schema the role owns, no CREATE on the database."""
    from driftline.storage.migrate import upgrade

    database = f"{reader['results_db']}s"
    with reader["admin"].connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
    url = reader["url"](database)
    owner = sa.create_engine(
        sa.make_url(url).set(username=sa.make_url(str(reader["admin"].url)).username, password=None),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    try:
        with owner.connect() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA driftline AUTHORIZATION "{reader["role"]}"'))
        upgrade(get_engine(url))
        with get_engine(url).connect() as connection:
            assert sa.inspect(connection).has_table("results", schema="driftline")
    finally:
        get_engine(url).dispose()
        owner.dispose()
        with reader["admin"].connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
