from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from driftline.core.errors import ConfigError
from driftline.core.window import Window, hourly_windows, last_full_hour_end, optional_instant, parse_instant


def test_hour_ending_is_half_open_hour() -> None:
    window = Window.hour_ending("2026-03-08T14:00:00Z")
    assert window.start == datetime(2026, 3, 8, 13, tzinfo=UTC)
    assert window.end == datetime(2026, 3, 8, 14, tzinfo=UTC)


def test_hour_ending_rejects_off_hour() -> None:
    with pytest.raises(ConfigError, match="on the hour"):
        Window.hour_ending("2026-03-08T14:30:00Z")


def test_default_is_last_full_hour() -> None:
    now = datetime(2026, 3, 8, 14, 37, 12, tzinfo=UTC)
    assert last_full_hour_end(now) == datetime(2026, 3, 8, 14, tzinfo=UTC)
    window = Window.hour_ending(None)
    assert window.end - window.start == timedelta(hours=1)
    assert window.end <= datetime.now(UTC)


def test_naive_and_offset_times_become_utc() -> None:
    assert parse_instant("2026-03-08T14:00:00") == datetime(2026, 3, 8, 14, tzinfo=UTC)
    assert parse_instant("2026-03-08T16:00:00+02:00") == datetime(2026, 3, 8, 14, tzinfo=UTC)
    with pytest.raises(ConfigError, match="not an ISO 8601 time"):
        parse_instant("yesterday")


def test_an_optional_instant_is_parsed_the_same_way_or_stays_none() -> None:
    assert optional_instant(None) is None
    assert optional_instant("2026-03-03T14:00:00+02:00") == datetime(2026, 3, 3, 12, tzinfo=UTC)
    assert optional_instant(datetime(2026, 3, 3, 14)) == datetime(2026, 3, 3, 14, tzinfo=UTC)  # naive = UTC
    with pytest.raises(ConfigError, match="not an ISO 8601 time"):
        optional_instant("yesterday")


def test_hourly_windows_cover_range_exactly() -> None:
    windows = list(hourly_windows("2026-03-08T00:00Z", "2026-03-08T03:00Z"))
    assert [w.start.hour for w in windows] == [0, 1, 2]
    assert all(a.end == b.start for a, b in zip(windows, windows[1:], strict=False))
    partial = list(hourly_windows("2026-03-08T00:30Z", "2026-03-08T02:10Z"))
    assert [w.start.hour for w in partial] == [0, 1, 2]
    with pytest.raises(ConfigError):
        list(hourly_windows("2026-03-08T03:00Z", "2026-03-08T01:00Z"))
