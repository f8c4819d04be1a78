"""The streamed window: profiles folded block by block equal the whole frame's, and a model whose
monitors work from profiles alone never holds the window in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

import driftline.tasks.pipeline as pipeline
from driftline.config.monitors import parse_config
from driftline.core.window import Window
from driftline.flows.monitor import monitor_model
from driftline.stats.model_profile import ModelProfile
from driftline.stats.profile import CategoricalProfile, NumericProfile
from driftline.storage.results import load_results
from driftline.tasks.extract import iter_rows, read_rows
from driftline.tasks.profiles import fit_reference, profile_window, stream_window_profile
from tests.conftest import DAY, model_entry, write_config

T0 = datetime(2026, 4, 2, 9, tzinfo=UTC)
ROWS = 20_000
#: A float column used as a category: integral, fractional, huge, tiny and non-finite values.
GRADES = [1.0, 2.0, 2.5, None, float("nan"), float("inf"), -float("inf"), 1e20, 0.1, -3.0, 1.5e-07, 12345.678]


@pytest.fixture
def awkward_log(engine: sa.Engine, log_schema: str) -> dict[str, Any]:
    """An hour of rows with NULL, NaN and +-Infinity in the numbers, an integer categorical with NULLs
    in some stretches only, and text that looks like numbers."""
    table = sa.Table(
        "awkward",
        sa.MetaData(schema=log_schema),
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("x", sa.Float),
        sa.Column("n", sa.Integer),
        sa.Column("code", sa.Integer),
        sa.Column("zip", sa.Text),
        sa.Column("grade", sa.Float),
        sa.Column("prediction", sa.Float),
    )
    with engine.begin() as connection:
        table.create(connection)
    rng = np.random.default_rng(11)
    rows = []
    for i in range(ROWS):
        x: float | None = float(rng.normal())
        if i % 97 == 0:
            x = None
        elif i % 101 == 0:
            x = float("nan")
        elif i % 499 == 0:
            x = float("inf") if i % 2 else float("-inf")
        rows.append(
            {
                "id": i,
                "ts": T0 + timedelta(seconds=3599 * i / ROWS),
                "x": x,
                "n": int(rng.integers(0, 1000)),
                # NULLs only in the second half: per block, the column arrives as int64 or as float64.
                "code": None if i > ROWS // 2 and i % 7 == 0 else int(rng.integers(1, 4)),
                "zip": f"{int(rng.integers(0, 30)):05d}" if i % 13 else None,
                "grade": GRADES[i % len(GRADES)],
                "prediction": float(rng.uniform()),
            }
        )
    with engine.begin() as connection:
        connection.execute(table.insert(), rows)
    entry = model_entry(
        "awkward",
        f"{log_schema}.awkward",
        id_column="id",
        task="regression",
        features={"numeric": ["x", "n"], "categorical": ["code", "zip", "grade"]},
        score_column=None,
        label_column=None,
        latency_column=None,
        reference={"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()},
    )
    return {"model": parse_config({"models": [entry]}).models[0], "rows": rows}


def assert_same_profile(streamed: ModelProfile, whole: ModelProfile) -> None:
    assert streamed.row_count == whole.row_count
    assert streamed.features.keys() == whole.features.keys()
    for name, mine in streamed.features.items():
        theirs = whole.features[name]
        if isinstance(mine, NumericProfile):
            assert isinstance(theirs, NumericProfile)
            np.testing.assert_array_equal(mine.counts, theirs.counts)
            assert (mine.nulls, mine.pos_inf, mine.neg_inf) == (theirs.nulls, theirs.pos_inf, theirs.neg_inf)
            assert (mine.minimum, mine.maximum) == (theirs.minimum, theirs.maximum)
            assert mine.total == pytest.approx(theirs.total, rel=1e-9, abs=1e-6)
            assert mine.total_sq == pytest.approx(theirs.total_sq, rel=1e-9)
        else:
            assert isinstance(mine, CategoricalProfile) and isinstance(theirs, CategoricalProfile)
            assert (mine.counts, mine.nulls, mine.overflow) == (theirs.counts, theirs.nulls, theirs.overflow)


def test_streamed_profile_equals_the_whole_frames(engine: sa.Engine, awkward_log: dict[str, Any]) -> None:
    model = awkward_log["model"]
    window = Window(T0, T0 + timedelta(hours=1))
    frame = read_rows(engine, model, window.start, window.end)
    reference = fit_reference(frame, model)
    # Small blocks: the 20,000 rows arrive in many blocks, some with NULL codes and some without.
    blocks = list(iter_rows(engine, model, window.start, window.end, block_bytes=64 << 10))
    assert len(blocks) > 5 and sum(len(b) for b in blocks) == ROWS
    assert {str(b["code"].dtype) for b in blocks} == {"int64", "float64"}
    folded: ModelProfile | None = None
    for block in blocks:
        part = profile_window(block, reference, model)
        folded = part if folded is None else folded.merge(part)
    assert folded is not None
    assert_same_profile(folded, profile_window(frame, reference, model))
    assert_same_profile(
        stream_window_profile(engine, model, window, reference), profile_window(frame, reference, model)
    )
    # The integer categories read alike with and without a NULL beside them.
    code = folded.features["code"]
    assert isinstance(code, CategoricalProfile) and set(code.counts) == {"1", "2", "3"}
    expected_nulls = sum(1 for r in awkward_log["rows"] if r["code"] is None)
    assert code.nulls == expected_nulls > 0
    zip_codes = folded.features["zip"]
    assert isinstance(zip_codes, CategoricalProfile) and "00007" in zip_codes.counts


def test_an_empty_window_streams_one_empty_block(engine: sa.Engine, awkward_log: dict[str, Any]) -> None:
    model = awkward_log["model"]
    blocks = list(iter_rows(engine, model, T0 - timedelta(hours=2), T0 - timedelta(hours=1)))
    assert len(blocks) == 1 and blocks[0].empty and list(blocks[0].columns) == model.columns()


def test_a_reader_that_stops_early_leaves_the_pool_usable(engine: sa.Engine, awkward_log: dict[str, Any]) -> None:
    model = awkward_log["model"]
    for _ in range(3):
        stream = iter_rows(engine, model, T0, T0 + timedelta(hours=1), block_bytes=64 << 10)
        first = next(stream)
        assert 0 < len(first) < ROWS
        stream.close()  # abandons the COPY mid-way
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT 1")).scalar() == 1
    assert len(read_rows(engine, model, T0, T0 + timedelta(hours=1))) == ROWS


@pytest.mark.slow
def test_profile_only_monitors_never_read_the_frame(
    store: sa.Engine, loan_log: dict[str, Any], database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only data_drift configured the window is streamed; its verdicts equal the full read's."""
    streamed = write_config(
        tmp_path / "streamed.yaml",
        [model_entry("loan", loan_log["table"], monitors=[{"name": "data_drift"}])],
        database_url,
    )
    whole = write_config(tmp_path / "whole.yaml", [model_entry("loan_whole", loan_log["table"])], database_url)
    end = DAY + timedelta(hours=15)
    outcome_whole = monitor_model("loan_whole", end, str(whole))

    def no_frame(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the window's rows were read into a frame")

    monkeypatch.setattr(pipeline, "read_rows", no_frame)  # where every window's frame is read
    outcome = monitor_model("loan", end, str(streamed))
    assert outcome["rows"] == outcome_whole["rows"] == 200
    assert outcome["alerts"] == ["income"]
    window = Window.hour_ending(end)

    def drift_rows(model: str) -> dict[tuple[str, str | None], tuple[float | None, str]]:
        rows = load_results(store, model, window.start, window.end)
        return {(r.metric, r.feature): (r.value, str(r.status)) for r in rows if str(r.kind) == "data_drift"}

    streamed_rows, whole_rows = drift_rows("loan"), drift_rows("loan_whole")
    assert streamed_rows and streamed_rows.keys() == whole_rows.keys()
    for key, (value, status) in streamed_rows.items():
        other_value, other_status = whole_rows[key]
        assert status == other_status, key
        assert (value is None and other_value is None) or value == pytest.approx(other_value, rel=1e-9, abs=1e-12)
