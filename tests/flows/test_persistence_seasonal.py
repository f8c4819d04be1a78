"""Persistence (alert_after) and a seasonal reference, opt-in per model (#16 item 3)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from driftline.config.monitors import load_config
from driftline.core.results import Kind, Status
from driftline.core.window import Window
from driftline.flows.monitor import monitor_model
from driftline.stats.reference_state import SeasonalProvenance
from driftline.storage.results import load_results
from driftline.tasks.profiles import ensure_reference, seasonal_reference
from tests.conftest import DAY

pytestmark = pytest.mark.usefixtures("prefect_api")


def _with(config: Path, **keys: Any) -> Path:
    raw = yaml.safe_load(config.read_text())
    raw["models"][0].update(keys)
    config.write_text(yaml.safe_dump(raw))
    return config


def _income(store: sa.Engine, hour: int) -> Any:
    (row,) = [
        r
        for r in load_results(store, "loan", DAY + timedelta(hours=hour), DAY + timedelta(hours=hour + 1))
        if r.kind == Kind.DATA_DRIFT and r.feature == "income" and r.details.get("primary")
    ]
    return row


def test_alert_after_two_of_three_holds_the_first_alert_back(store: sa.Engine, loan_config: Path) -> None:
    """Income shifts from 12:00: the 12:00 alert is held at warning (1 of the last 3 windows), the
    13:00 one stands (2 of 3). Without alert_after 12:00 is an alert."""
    config = _with(loan_config, alert_after={"alerts": 2, "of_last": 3})
    for hour in (11, 12, 13):
        monitor_model("loan", DAY + timedelta(hours=hour + 1), str(config))
    first, second = _income(store, 12), _income(store, 13)
    assert first.status is Status.WARNING
    assert first.details["level_before_persistence"] == "alert"
    assert first.details["persistence"] == {"alerts": 1, "of_last": 3, "needed": 2}
    assert "held at warning: alert level in 1 of the last 3 windows, alert_after needs 2" in first.details["reason"]
    assert second.status is Status.ALERT and second.details["persistence"]["alerts"] == 2
    assert _income(store, 11).status is Status.OK


def test_alert_after_holds_back_an_alert_that_late_labels_reveal(
    store: sa.Engine, engine: sa.Engine, loan_log: dict[str, Any], loan_config: Path
) -> None:
    """The late-label refresh applies alert_after as the hourly run does. Hours 8 and 9 are judged
    before their labels arrive; then labels that contradict the scores arrive for both. Refreshed in
    order, hour 8's accuracy alert is its first (held at warning), hour 9's is the second of its last
    three windows (an alert)."""
    config = _with(loan_config, alert_after={"alerts": 2, "of_last": 3})
    table = f'"{loan_log["schema"]}"."loan_predictions"'
    hours = {"s": DAY + timedelta(hours=8), "e": DAY + timedelta(hours=10)}
    with engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE {table} SET label = NULL WHERE ts >= :s AND ts < :e"), hours)
    for hour in (8, 9):
        monitor_model("loan", DAY + timedelta(hours=hour + 1), str(config))
    assert _accuracy(store, 8).status is Status.UNKNOWN
    with engine.begin() as connection:
        connection.execute(
            sa.text(f"UPDATE {table} SET label = CASE WHEN score > 0.5 THEN 0 ELSE 1 END WHERE ts >= :s AND ts < :e"),
            hours,
        )
    outcome = monitor_model("loan", DAY + timedelta(hours=11), str(config))
    assert outcome["refreshed_windows"] == [h.isoformat() for h in (DAY + timedelta(hours=8), DAY + timedelta(hours=9))]
    first, second = _accuracy(store, 8), _accuracy(store, 9)
    assert first.status is Status.WARNING
    assert first.details["level_before_persistence"] == "alert"
    assert first.details["persistence"] == {"alerts": 1, "of_last": 3, "needed": 2}
    assert first.details["reason"].startswith("accuracy: ")
    assert first.details["reason"].endswith(
        "held at warning: alert level in 1 of the last 3 windows, alert_after needs 2"
    )
    assert second.status is Status.ALERT and second.details["persistence"]["alerts"] == 2


def _accuracy(store: sa.Engine, hour: int) -> Any:
    start = DAY + timedelta(hours=hour)
    (row,) = [
        r
        for r in load_results(store, "loan", start, start + timedelta(hours=1))
        if r.kind == Kind.PERFORMANCE and r.metric == "accuracy"
    ]
    return row


def test_seasonal_reference_merges_the_same_hour_of_earlier_days(store: sa.Engine, loan_config: Path) -> None:
    config = _with(loan_config, seasonal_reference={"every": "day", "last": 7})
    model = load_config(config).model("loan")
    # Hour 3 of DAY; its stored hourly profile becomes the seasonal reference of hour 3 a day later.
    monitor_model("loan", DAY + timedelta(hours=4), str(config))
    first = _income(store, 3)
    assert first.details["seasonal_reference"]["used"] is False  # nothing stored yet: the fitted reference
    window = Window(DAY + timedelta(days=1, hours=3), DAY + timedelta(days=1, hours=4))
    reference = ensure_reference(store, store, model, window)
    seasonal = seasonal_reference(store, model, reference, window)
    assert seasonal.fitted.seasonal == SeasonalProvenance("day", 7, 1, 200, True)
    assert seasonal.row_count == 200 and seasonal.features["income"].n == 200
    assert reference.fitted.performance is not None
    assert seasonal.fitted.performance == reference.fitted.performance
    other_hour = seasonal_reference(
        store, model, reference, Window(window.start + timedelta(hours=1), window.end + timedelta(hours=1))
    )
    assert other_hour.fitted.seasonal is not None and not other_hour.fitted.seasonal.used
    assert other_hour.row_count == reference.row_count
