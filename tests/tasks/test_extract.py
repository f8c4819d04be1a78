"""Reading the prediction log from a real PostgreSQL: window bounds, quoting, schema errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from driftline.config.monitors import parse_config
from driftline.core.errors import SchemaMismatchError
from driftline.tasks.extract import read_rows, verify_columns
from tests.conftest import create_log_table, model_entry

T0 = datetime(2026, 3, 8, 13, tzinfo=UTC)


def _row(i: int, ts: datetime) -> dict[str, object]:
    return {
        "request_id": i,
        "ts": ts,
        "income": 1.0 * i,
        "age": 30.0,
        "region": "north",
        "prediction": 1.0,
        "score": 0.7,
        "label": None,
        "latency_ms": 5.0,
    }


def test_window_is_half_open(engine: sa.Engine, log_schema: str) -> None:
    table = create_log_table(engine, log_schema, "preds")
    stamps = [
        T0 - timedelta(microseconds=1),
        T0,
        T0 + timedelta(minutes=30),
        T0 + timedelta(hours=1) - timedelta(microseconds=1),
        T0 + timedelta(hours=1),
    ]
    with engine.begin() as connection:
        connection.execute(table.insert(), [_row(i, ts) for i, ts in enumerate(stamps)])
    model = parse_config({"models": [model_entry("m", f"{log_schema}.preds")]}).models[0]
    frame = read_rows(engine, model, T0, T0 + timedelta(hours=1))
    # The row exactly at the start is in; the row exactly at the end belongs to the next hour.
    assert sorted(frame["request_id"].tolist()) == [1, 2, 3]
    assert list(frame.columns) == model.columns()


@pytest.mark.parametrize(
    "hostile",
    ['loan"; DROP TABLE victim; --', "Mixed Case ünïcode", "select", "semi;colon'quote"],
)
def test_hostile_table_names_are_quoted_not_executed(engine: sa.Engine, log_schema: str, hostile: str) -> None:
    victim = sa.Table("victim", sa.MetaData(schema=log_schema), sa.Column("id", sa.Integer))
    with engine.begin() as connection:
        victim.create(connection)
    table = create_log_table(engine, log_schema, hostile)
    with engine.begin() as connection:
        connection.execute(table.insert(), [_row(1, T0)])
    model = parse_config({"models": [model_entry("m", hostile, table_schema=log_schema)]}).models[0]
    verify_columns(engine, model)
    frame = read_rows(engine, model, T0, T0 + timedelta(hours=1))
    assert frame["request_id"].tolist() == [1]
    assert sa.inspect(engine).has_table("victim", schema=log_schema), "the injected DROP must not run"


def test_hostile_column_name_is_quoted(engine: sa.Engine, log_schema: str) -> None:
    weird = 'inc"ome; DROP TABLE x'
    table = sa.Table(
        "p",
        sa.MetaData(schema=log_schema),
        sa.Column("ts", sa.DateTime(timezone=True)),
        sa.Column(weird, sa.Float),
        sa.Column("prediction", sa.Float),
    )
    with engine.begin() as connection:
        table.create(connection)
        connection.execute(table.insert(), [{"ts": T0, weird: 2.5, "prediction": 1.0}])
    entry = model_entry(
        "m",
        f"{log_schema}.p",
        features={"numeric": [weird]},
        id_column=None,
        score_column=None,
        label_column=None,
        latency_column=None,
    )
    model = parse_config({"models": [entry]}).models[0]
    frame = read_rows(engine, model, T0, T0 + timedelta(hours=1))
    assert frame[weird].tolist() == [2.5]


def test_missing_table_and_column_are_named(engine: sa.Engine, log_schema: str) -> None:
    create_log_table(engine, log_schema, "preds")
    missing_table = parse_config({"models": [model_entry("m", f"{log_schema}.nope")]}).models[0]
    with pytest.raises(SchemaMismatchError, match=rf"model 'm': table '{log_schema}.nope' does not exist"):
        verify_columns(engine, missing_table)
    entry = model_entry("m", f"{log_schema}.preds", features={"numeric": ["income", "salary"]})
    missing_column = parse_config({"models": [entry]}).models[0]
    with pytest.raises(SchemaMismatchError, match=r"has no column 'salary'"):
        verify_columns(engine, missing_column)
