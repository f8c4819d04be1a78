"""Batch compare: two files (or queries) judged exactly like an hourly window."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from driftline.config.monitors import DriftConfig, Features, ModelConfig, ReferenceRange
from driftline.core.errors import ConfigError, SchemaMismatchError
from driftline.core.window import Window
from driftline.stats.model_profile import fit_model_profile, window_model_profile
from driftline.tasks.compare import (
    RECORD_COLUMNS,
    compare,
    compare_report,
    infer_roles,
    load_source,
    run_comparison,
    summary,
)
from driftline.tasks.drift import evaluate_drift


def frame(rng: np.random.Generator, rows: int, start: str, income_shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": np.arange(rows),
            "ts": pd.date_range(start, periods=rows, freq="min", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
            "income": rng.normal(50_000 + income_shift, 10_000, rows),
            "age": rng.integers(18, 80, rows),
            "region": rng.choice(["north", "south", "east"], rows, p=[0.5, 0.3, 0.2]),
            "returning": rng.uniform(size=rows) < 0.3,
        }
    )


@pytest.fixture
def csv_pair(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(11)
    reference, current = tmp_path / "reference.csv", tmp_path / "current.csv"
    frame(rng, 3000, "2026-03-01").to_csv(reference, index=False)
    frame(rng, 1200, "2026-03-08T10:00", income_shift=20_000).to_csv(current, index=False)
    return reference, current


def test_drift_injected_in_one_csv_column_alerts_only_there(csv_pair: tuple[Path, Path]) -> None:
    reference, current = (load_source(str(p)) for p in csv_pair)
    records = compare(reference, current)

    assert list(records.columns) == RECORD_COLUMNS
    assert records.attrs["roles"] == {
        "income": "numeric",
        "age": "numeric",
        "region": "categorical",
        "returning": "categorical",
        "request_id": "ignored: identifier (every value distinct)",
        "ts": "ignored: timestamp",
    }
    assert summary(records) == {"income": "alert", "age": "ok", "region": "ok", "returning": "ok"}
    income = records[records["feature"] == "income"]
    assert set(income["metric"]) == {"ks", "wasserstein", "psi", "jensen_shannon"}
    assert set(records.loc[records["feature"] == "region", "metric"]) == {
        "chi_square",
        "psi",
        "jensen_shannon",
        "unseen_share",
    }
    share = records[records["metric"] == "drifted_features_share"].iloc[0]
    assert share["value"] == pytest.approx(0.25) and share["details"]["drifted"] == ["income"]
    # No invented window: the current file's first and last timestamp (1,200 minutes from 10:00).
    assert set(records["window_start"]) == {"2026-03-08T10:00:00Z"}
    assert set(records["window_end"]) == {"2026-03-09T05:59:00Z"}
    assert set(records["model"]) == {"batch"}
    # Records are exactly `driftline results --format json` records (None stays None; JSON-clean).
    first = records.to_dict("records")[0]
    assert set(first) == set(RECORD_COLUMNS)
    window_level = records[records["feature"].isna()].to_dict("records")
    assert all(r["feature"] is None for r in window_level)
    json.dumps(records.to_dict("records"), allow_nan=False)


def test_same_statistics_as_the_hourly_drift(csv_pair: tuple[Path, Path]) -> None:
    """compare() is evaluate_drift on profiles built the monitor's way, nothing else."""
    reference, current = (load_source(str(p)) for p in csv_pair)
    records = compare(reference, current)
    window = Window(datetime(2026, 3, 8, 10, tzinfo=UTC), datetime(2026, 3, 9, 6, tzinfo=UTC))
    model = ModelConfig(
        name="batch",
        table="(batch)",
        timestamp_column="(none)",
        task="regression",
        features=Features(numeric=["income", "age"], categorical=["region", "returning"]),
        prediction_column="(none)",
        reference=ReferenceRange(start=window.start, end=window.end),
    )
    ref_profile = fit_model_profile(reference, ["income", "age"], ["region", "returning"])
    expected = evaluate_drift(model, window, ref_profile, window_model_profile(current, ref_profile))
    span = {"window_start": "2026-03-08T10:00:00Z", "window_end": "2026-03-09T05:59:00Z"}
    assert records.to_dict("records") == [r.as_record() | span for r in expected]


def test_parquet_and_config_thresholds(csv_pair: tuple[Path, Path], tmp_path: Path) -> None:
    reference, current = (load_source(str(p)) for p in csv_pair)
    parquet = tmp_path / "current.parquet"
    current.to_parquet(parquet)
    loaded = load_source(str(parquet))
    assert len(loaded) == 1200
    config = ModelConfig(
        name="loan",
        table="loan_predictions",
        timestamp_column="ts",
        task="classification",
        features=Features(numeric=["income"], categorical=["region"]),
        prediction_column="prediction",
        reference=ReferenceRange(start="2026-03-01T00:00:00Z", end="2026-03-08T00:00:00Z"),
        # Levels so high that even the injected shift is only a warning on KS.
        drift=DriftConfig(numeric_metrics=["ks"], features={"income": {"ks": {"warning": 0.3, "alert": 0.99}}}),
    )
    records = compare(reference, loaded, config)
    assert records["feature"].dropna().unique().tolist() == ["income", "region"]
    ks = records[(records["feature"] == "income") & (records["metric"] == "ks")].iloc[0]
    assert ks["status"] == "warning" and ks["details"]["alert"] == 0.99
    assert set(records["model"]) == {"loan"}


def test_sql_query_source(engine: sa.Engine, log_schema: str, database_url: str) -> None:
    rng = np.random.default_rng(3)
    frame(rng, 500, "2026-03-01").to_sql("batch_rows", engine, schema=log_schema, index=False)
    query = f'SELECT income, region FROM "{log_schema}".batch_rows WHERE age >= 18'
    by_engine = load_source(query, engine)
    by_url = load_source(query, database_url)
    assert len(by_engine) == len(by_url) == 500
    assert list(by_engine.columns) == ["income", "region"]
    with pytest.raises(ConfigError, match="needs a database"):
        load_source(query)


def test_small_samples_and_bad_inputs_are_explained(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    small = frame(rng, 50, "2026-03-01")
    records = compare(small, small.copy())
    assert set(records["status"]) == {"unknown"}
    assert "fewer than min_rows=100" in records.iloc[0]["details"]["reason"]
    with pytest.raises(ConfigError, match="no such file"):
        load_source(str(tmp_path / "missing.csv"))
    (tmp_path / "data.xlsx").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown file type"):
        load_source(str(tmp_path / "data.xlsx"))
    only_ids = pd.DataFrame({"id": range(200), "ts": ["2026-03-01T00:00:00Z"] * 200})
    with pytest.raises(ConfigError, match="no column to compare"):
        compare(only_ids, only_ids)
    config = ModelConfig(
        name="m",
        table="t",
        timestamp_column="ts",
        task="regression",
        features=Features(numeric=["missing_col"]),
        prediction_column="p",
        reference=ReferenceRange(start="2026-03-01T00:00:00Z", end="2026-03-02T00:00:00Z"),
    )
    with pytest.raises(SchemaMismatchError, match="missing_col"):
        compare(small, small, config)


def test_role_inference_rules() -> None:
    data = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4],
            "store_id": [1, 1, 2, 2],  # repeats: not an identifier, a number
            "when": pd.to_datetime(["2026-03-01"] * 4),
            "empty": [None] * 4,
            "flag": [True, False, True, False],
            "amount": [1.5, 2.5, 3.5, 4.5],
            "code": ["a", "b", "a", "c"],
        }
    )
    roles = infer_roles(data, data.drop(columns=["code"]))
    assert roles.numeric == ["store_id", "amount"]
    assert roles.categorical == ["flag"]
    assert roles.ignored == {
        "customer_id": "identifier (every value distinct)",
        "when": "timestamp",
        "empty": "no values in the reference",
        "code": "not in the current data",
    }


def test_comparison_report(csv_pair: tuple[Path, Path], tmp_path: Path) -> None:
    reference, current = (load_source(str(p)) for p in csv_pair)
    current = current.rename(columns={"region": "<b>region</b>"})
    reference = reference.rename(columns={"region": "<b>region</b>"})
    out = compare_report(reference, current, tmp_path, reference_name="reference.csv", current_name="<i>now</i>.csv")
    assert out == tmp_path / "driftline-compare.html"
    document = out.read_text(encoding="utf-8")
    assert "<b>region</b>" not in document and "<i>now</i>" not in document
    assert "&lt;b&gt;region&lt;/b&gt;" in document and "&lt;i&gt;now&lt;/i&gt;.csv" in document
    specs = re.findall(r'<script type="application/json" id="spec-\d+">(.*?)</script>', document, flags=re.S)
    assert len(specs) == 4, "one distribution chart per compared column"
    income = next(json.loads(s) for s in specs if json.loads(s)["encoding"]["x"]["title"] == "income")
    totals = {"reference": 0, "current": 0}
    for row in income["data"]["values"]:
        totals[row["src"]] += row["n"]
    assert totals == {"reference": 3000, "current": 1200}
    comparison = run_comparison(reference, current)
    alerts = {r.feature for r in comparison.results if r.status == "alert" and r.feature}
    assert alerts == {"income"}
    assert document.count('class="badge s-alert"') >= 2
