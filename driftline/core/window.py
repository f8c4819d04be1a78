"""Half-open UTC windows ``[start, end)``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from driftline.core.errors import ConfigError

HOUR = timedelta(hours=1)


def parse_instant(text: str | datetime) -> datetime:
    """Parse an ISO 8601 instant; a naive value is taken as UTC. Returns an aware UTC datetime."""
    if isinstance(text, datetime):
        value = text
    else:
        try:
            value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(f"not an ISO 8601 time: {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def optional_instant(value: str | datetime | None) -> datetime | None:
    """``parse_instant`` for a bound that may be absent: ``None`` stays ``None``."""
    return None if value is None else parse_instant(value)


def floor_hour(instant: datetime) -> datetime:
    instant = parse_instant(instant)
    return instant.replace(minute=0, second=0, microsecond=0)


def last_full_hour_end(now: datetime | None = None) -> datetime:
    """End of the last complete hour before ``now`` (default: the current time)."""
    return floor_hour(now or datetime.now(UTC))


@dataclass(frozen=True, order=True)
class Window:
    """A half-open interval ``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if not self.start < self.end:
            raise ValueError(f"empty window: start {self.start} is not before end {self.end}")

    @classmethod
    def hour_ending(cls, end: datetime | str | None = None) -> Window:
        """The hour ``[end - 1h, end)``; ``end`` defaults to the last full hour and must be on the hour."""
        end_at = last_full_hour_end() if end is None else parse_instant(end)
        if end_at != floor_hour(end_at):
            raise ConfigError(f"window_end must be on the hour, got {end_at.isoformat()}")
        return cls(end_at - HOUR, end_at)

    def label(self) -> str:
        return f"{self.start:%Y-%m-%dT%H:%MZ}..{self.end:%H:%MZ}"


def hourly_windows(start: datetime | str, end: datetime | str) -> Iterator[Window]:
    """Consecutive hours covering ``[start, end)``; both bounds are floored/ceiled to the hour."""
    first = floor_hour(parse_instant(start))
    stop = parse_instant(end)
    if stop != floor_hour(stop):
        stop = floor_hour(stop) + HOUR
    if not first < stop:
        raise ConfigError(f"--start {first.isoformat()} must be before --end {stop.isoformat()}")
    cursor = first
    while cursor < stop:
        yield Window(cursor, cursor + HOUR)
        cursor += HOUR
