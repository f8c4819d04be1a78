"""Hourly window profiles stored in PostgreSQL carry the latency sketch: a day merged from them has
the very sketch of the day's rows, and its percentiles within 1% of numpy's on the raw latencies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce

import numpy as np
import pandas as pd
import sqlalchemy as sa

from driftline.config.monitors import parse_config
from driftline.core.window import Window
from driftline.stats.checks import OperationalState
from driftline.stats.sketch import QuantileSketch
from driftline.storage.profiles import load_window_profiles, store_window_profile
from driftline.tasks.operational import OPERATIONAL_STATE
from driftline.tasks.profiles import fit_reference, profile_window
from tests.conftest import model_entry, synthetic_rows

T0 = datetime(2026, 7, 1, tzinfo=UTC)


def test_a_day_merged_from_stored_hours_has_the_sketch_of_its_rows(store: sa.Engine) -> None:
    model = parse_config({"models": [model_entry("lat", "unused.table")]}).models[0]
    rng = np.random.default_rng(11)
    reference = fit_reference(pd.DataFrame(synthetic_rows(rng, T0 - timedelta(days=1), 4, 300)), model)
    hours = []
    for h in range(5):
        frame = pd.DataFrame(synthetic_rows(rng, T0 + timedelta(hours=h), 1, 300 + 50 * h))
        # A heavy tail, some zeros and some invalid latencies (negative: rejected, NULL: skipped).
        frame["latency_ms"] = rng.pareto(1.3, len(frame)) * 20
        frame.loc[frame.index[:5], "latency_ms"] = 0.0
        frame.loc[frame.index[5:7], "latency_ms"] = -1.0
        frame.loc[frame.index[7:9], "latency_ms"] = np.nan
        hours.append(frame)
        window = Window(T0 + timedelta(hours=h), T0 + timedelta(hours=h + 1))
        store_window_profile(store, "lat", "def", window, profile_window(frame, reference, model, window))

    stored = load_window_profiles(store, "lat", "def", reference, T0, T0 + timedelta(days=1))
    assert len(stored) == 5
    day = reduce(lambda a, b: a.merge(b), stored).states[OPERATIONAL_STATE]
    assert isinstance(day, OperationalState) and day.latency is not None
    latencies = pd.concat(hours)["latency_ms"].to_numpy(dtype=float)
    assert day.latency == QuantileSketch.of(latencies)
    assert day.latency.rejected == 10 and day.latency.zeros == 25
    valid = latencies[np.isfinite(latencies) & (latencies >= 0)]
    for q in (50, 95, 99):
        exact = float(np.percentile(valid, q))
        assert abs(day.latency.quantile(q) - exact) <= 0.01 * exact
