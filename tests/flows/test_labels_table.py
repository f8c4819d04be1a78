"""Ground truth from a separate labels table, joined on the id, arriving late."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from driftline.core.results import Kind, Status
from driftline.flows.monitor import monitor_model
from driftline.storage.results import load_results
from tests.conftest import DAY, model_entry, write_config

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_labels_from_a_separate_table(
    store: sa.Engine,
    engine: sa.Engine,
    loan_log: dict[str, Any],
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DRIFTLINE_DATABASE_URL", raising=False)
    schema = loan_log["schema"]
    truth = sa.Table(
        "ground_truth",
        sa.MetaData(schema=schema),
        sa.Column("request_id", sa.BigInteger),
        sa.Column("outcome", sa.Float),
        sa.Column("labelled_at", sa.DateTime(timezone=True)),
    )
    rows = loan_log["rows"]
    reference_end = DAY
    with engine.begin() as connection:
        truth.create(connection)
        # Reference labels are all in; the window's (hour 9) are not yet.
        connection.execute(
            truth.insert(),
            [
                {"request_id": r["request_id"], "outcome": r["label"], "labelled_at": r["ts"] + timedelta(hours=2)}
                for r in rows
                if r["ts"] < reference_end
            ],
        )
    entry = model_entry(
        "loan",
        loan_log["table"],
        label_column=None,
        labels={
            "table": f"{schema}.ground_truth",
            "id_column": "request_id",
            "label_column": "outcome",
            "timestamp_column": "labelled_at",
        },
    )
    config = write_config(tmp_path / "m.yaml", [entry], database_url)
    end = DAY + timedelta(hours=10)
    monitor_model("loan", end, str(config))
    first = {
        r.metric: r
        for r in load_results(store, "loan", end - timedelta(hours=1), end)
        if r.kind == Kind.PERFORMANCE and r.feature is None
    }
    assert first["accuracy"].status == Status.UNKNOWN and first["accuracy"].details["labelled_rows"] == 0

    # The labels arrive (flipped against the scores), in the labels table only.
    window_rows = [r for r in rows if end - timedelta(hours=1) <= r["ts"] < end]
    with engine.begin() as connection:
        connection.execute(
            truth.insert(),
            [
                {
                    "request_id": r["request_id"],
                    "outcome": float(r["score"] <= 0.5),
                    "labelled_at": end + timedelta(hours=1),
                }
                for r in window_rows
            ],
        )
    outcome = monitor_model("loan", end + timedelta(hours=1), str(config))
    assert outcome["refreshed_windows"] == [(end - timedelta(hours=1)).isoformat()]
    refreshed = {
        r.metric: r
        for r in load_results(store, "loan", end - timedelta(hours=1), end)
        if r.kind == Kind.PERFORMANCE and r.feature is None
    }
    assert refreshed["accuracy"].details["labelled_rows"] == len(window_rows) == 200
    assert refreshed["accuracy"].status == Status.ALERT and refreshed["accuracy"].value < 0.3


def test_labels_config_needs_an_id_and_one_source() -> None:
    from driftline.config.monitors import parse_config
    from driftline.core.errors import ConfigError

    labels = {"table": "gt", "id_column": "request_id", "label_column": "outcome"}
    with pytest.raises(ConfigError, match="labels from a separate table need id_column"):
        parse_config({"models": [model_entry("m", "t", id_column=None, label_column=None, labels=labels)]})
    with pytest.raises(ConfigError, match="set either label_column or labels, not both"):
        parse_config({"models": [model_entry("m", "t", labels=labels)]})
