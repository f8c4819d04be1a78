"""The demo: a synthetic prediction log for two models, with drift, late labels and a missing hour.

``seed_demo(engine)`` writes a week of reference (2026-03-01 .. 03-08) and one monitored day
(2026-03-08) for

* ``loan`` - a classifier (approve a loan): income drifts up and the region mix changes from 12:00;
  no rows at all are logged between 05:00 and 06:00;
* ``eta`` - a regressor (delivery time): traffic rises and the vehicle mix changes from 15:00.

Labels of the last six hours are still NULL (they arrive late). Everything is seeded: the same
rows on every machine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

REFERENCE_START = datetime(2026, 3, 1, tzinfo=UTC)
DAY_START = datetime(2026, 3, 8, tzinfo=UTC)
DAY_END = DAY_START + timedelta(days=1)
ROWS_PER_HOUR = 300
LOAN_DRIFT_FROM = DAY_START + timedelta(hours=12)
ETA_DRIFT_FROM = DAY_START + timedelta(hours=15)
LOAN_MISSING_HOUR = DAY_START + timedelta(hours=5)
LABELS_PENDING_FROM = DAY_END - timedelta(hours=6)
SCHEMA = "demo"


def demo_config(database_url: str | None = None) -> dict[str, Any]:
    reference = {"start": REFERENCE_START.isoformat(), "end": DAY_START.isoformat()}
    # The demo opts in to the closed loop (nothing is automated unless a model asks): a data-drift
    # alert runs Driftline's example trainer, which waits for a person's approval before it promotes.
    actions = {"retrain": {"on": ["data_drift"], "deployment": "retrain/retrain", "require_approval": True}}
    config: dict[str, Any] = {
        "models": [
            {
                "name": "loan",
                "table": f"{SCHEMA}.loan_predictions",
                "timestamp_column": "ts",
                "id_column": "request_id",
                "task": "classification",
                "features": {
                    "numeric": ["income", "age", "debt_ratio", "credit_lines"],
                    "categorical": ["region", "employment"],
                },
                "prediction_column": "prediction",
                "score_column": "score",
                "label_column": "label",
                "latency_column": "latency_ms",
                "reference": reference,
                "actions": actions,
            },
            {
                "name": "eta",
                "table": f"{SCHEMA}.eta_predictions",
                "timestamp_column": "ts",
                "id_column": "request_id",
                "task": "regression",
                "features": {
                    "numeric": ["distance_km", "items", "traffic_index"],
                    "categorical": ["city", "vehicle"],
                },
                "prediction_column": "prediction",
                "label_column": "label",
                "latency_column": "latency_ms",
                "reference": reference,
                "actions": actions,
            },
        ]
    }
    if database_url:
        config["database_url"] = database_url
    return config


def write_demo_config(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(demo_config(), sort_keys=False), encoding="utf-8")
    return path


def _timestamps(rng: np.random.Generator, start: datetime, end: datetime, skip_hour: datetime | None) -> np.ndarray:
    hours = int((end - start) / timedelta(hours=1))
    out = []
    for h in range(hours):
        hour_start = start + timedelta(hours=h)
        if skip_hour is not None and hour_start == skip_hour:
            continue
        n = int(rng.poisson(ROWS_PER_HOUR))
        seconds = np.sort(rng.uniform(0, 3600, n))
        out.append(np.datetime64(hour_start.replace(tzinfo=None), "us") + (seconds * 1e6).astype("timedelta64[us]"))
    return np.concatenate(out)


def _loan_rows(rng: np.random.Generator) -> dict[str, np.ndarray]:
    ts = _timestamps(rng, REFERENCE_START, DAY_END, LOAN_MISSING_HOUR)
    n = len(ts)
    drifted = ts >= np.datetime64(LOAN_DRIFT_FROM.replace(tzinfo=None))
    income = rng.lognormal(mean=10.8, sigma=0.45, size=n) * np.where(drifted, 1.35, 1.0)
    age = np.clip(rng.normal(41, 12, n).round(), 18, 85)
    debt_ratio = rng.beta(2, 5, n)
    credit_lines = rng.poisson(4, n).astype(float)
    regions = np.array(["north", "south", "east", "west", "central"])
    base = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
    shifted = np.array([0.55, 0.15, 0.1, 0.1, 0.1])
    region = np.where(drifted, rng.choice(regions, n, p=shifted), rng.choice(regions, n, p=base))
    employment = rng.choice(np.array(["salaried", "self_employed", "unemployed"]), n, p=[0.7, 0.22, 0.08])
    logit = 0.9 * (np.log(income) - 10.8) / 0.45 - 2.5 * (debt_ratio - 0.28) + 0.02 * (age - 41) - 0.3
    logit = logit + np.where(employment == "unemployed", -1.0, 0.0)
    score = 1 / (1 + np.exp(-logit))
    label = (rng.uniform(size=n) < score).astype(float)
    label[ts >= np.datetime64(LABELS_PENDING_FROM.replace(tzinfo=None))] = np.nan
    income[rng.uniform(size=n) < 0.01] = np.nan  # a little missing data, as in real logs
    return {
        "ts": ts,
        "income": income,
        "age": age,
        "debt_ratio": debt_ratio,
        "credit_lines": credit_lines,
        "region": region,
        "employment": employment,
        "score": score,
        "prediction": (score >= 0.5).astype(float),
        "label": label,
        "latency_ms": rng.gamma(4.0, 12.0, n),
    }


def _eta_rows(rng: np.random.Generator) -> dict[str, np.ndarray]:
    ts = _timestamps(rng, REFERENCE_START, DAY_END, None)
    n = len(ts)
    drifted = ts >= np.datetime64(ETA_DRIFT_FROM.replace(tzinfo=None))
    distance = rng.gamma(2.0, 2.5, n)
    items = rng.poisson(3, n).astype(float) + 1
    traffic = rng.normal(0.0, 1.0, n) + np.where(drifted, 1.0, 0.0)
    city = rng.choice(np.array(["lisbon", "porto", "braga", "faro"]), n, p=[0.45, 0.3, 0.15, 0.1])
    vehicle = np.where(
        drifted,
        rng.choice(np.array(["bike", "scooter", "car"]), n, p=[0.2, 0.3, 0.5]),
        rng.choice(np.array(["bike", "scooter", "car"]), n, p=[0.4, 0.4, 0.2]),
    )
    truth = 8 + 3.2 * distance + 1.5 * items + 4.0 * np.maximum(traffic, -1) + rng.normal(0, 3, n)
    prediction = 8 + 3.0 * distance + 1.4 * items + 3.0 * traffic
    label = truth.copy()
    label[ts >= np.datetime64(LABELS_PENDING_FROM.replace(tzinfo=None))] = np.nan
    return {
        "ts": ts,
        "distance_km": distance,
        "items": items,
        "traffic_index": traffic,
        "city": city,
        "vehicle": vehicle,
        "prediction": prediction,
        "label": label,
        "latency_ms": rng.gamma(3.0, 8.0, n),
    }


def _create_and_load(engine: Engine, table: str, columns: dict[str, np.ndarray], text_columns: set[str]) -> int:
    metadata = sa.MetaData(schema=SCHEMA)
    sa_columns: list[sa.Column[Any]] = [
        sa.Column("request_id", sa.BigInteger, primary_key=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    ]
    for name in columns:
        if name != "ts":
            sa_columns.append(sa.Column(name, sa.Text if name in text_columns else sa.Float))
    target = sa.Table(table, metadata, *sa_columns)
    with engine.begin() as connection:
        connection.execute(sa.schema.CreateSchema(SCHEMA, if_not_exists=True))
        target.drop(connection, checkfirst=True)
        target.create(connection)
        sa.Index(f"{table}_ts", target.c.ts).create(connection)
    names = ["request_id", *columns]
    n = len(columns["ts"])
    ts_py = columns["ts"].astype("datetime64[us]").astype(datetime)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        copy_sql = f'COPY "{SCHEMA}"."{table}" ({", ".join(chr(34) + c + chr(34) for c in names)}) FROM STDIN'
        with cursor.copy(copy_sql) as copy:  # names are our own constants, not configuration
            for i in range(n):
                row: list[Any] = [i + 1, ts_py[i].replace(tzinfo=UTC)]
                for name, values in columns.items():
                    if name == "ts":
                        continue
                    value = values[i]
                    if name in text_columns:
                        row.append(str(value))
                    else:
                        row.append(None if np.isnan(value) else float(value))
                copy.write_row(row)
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as connection:
        connection.execute(sa.text(f'ANALYZE "{SCHEMA}"."{table}"'))
    return n


def seed_demo(engine: Engine, seed: int = 20260308) -> dict[str, int]:
    """(Re)create the demo tables in schema ``demo``; returns rows written per model."""
    rng = np.random.default_rng(seed)
    loan = _create_and_load(engine, "loan_predictions", _loan_rows(rng), {"region", "employment"})
    eta = _create_and_load(engine, "eta_predictions", _eta_rows(rng), {"city", "vehicle"})
    return {"loan": loan, "eta": eta}
