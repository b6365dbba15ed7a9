"""Clocks: the system clock for production and a fake clock for tests."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from citybrain.errors import ValidationError


class Clock(Protocol):
    """Where the runtime gets the time from."""

    def now(self) -> datetime:
        """Return the current UTC time (timezone-aware)."""
        ...

    def monotonic(self) -> float:
        """Return a monotonic number of seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for `seconds` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Return time.monotonic()."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Sleep with asyncio."""
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to; sleepers wake when it passes their deadline."""

    def __init__(self, start: datetime | str = "2026-01-01T00:00:00Z") -> None:
        self._now = parse_time(start) if isinstance(start, str) else start
        self._mono = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        """Return the fake current time."""
        return self._now

    def monotonic(self) -> float:
        """Return fake monotonic seconds."""
        return self._mono

    def set(self, when: datetime | str) -> None:
        """Jump to `when` (forward only)."""
        target = parse_time(when) if isinstance(when, str) else when
        self.advance((target - self._now).total_seconds())

    def advance(self, seconds: float) -> None:
        """Move the clock forward and wake sleepers whose time has come."""
        if seconds < 0:
            raise ValueError("a fake clock only moves forward")
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        due = [s for s in self._sleepers if s[0] <= self._mono]
        self._sleepers = [s for s in self._sleepers if s[0] > self._mono]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by `seconds`."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._mono + seconds, fut))
        await fut


def iso(dt: datetime) -> str:
    """Format a datetime as UTC ISO 8601 with a Z suffix (millisecond precision)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_time(value: str, field: str = "observedAt") -> datetime:
    """Parse an ISO 8601 timestamp with a timezone; raise ValidationError naming `field` otherwise."""
    if not isinstance(value, str) or len(value) < 10:
        raise ValidationError(f"{field}: expected an ISO 8601 timestamp, got {value!r}", field=field)
    text = value.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"{field}: {value!r} is not an ISO 8601 timestamp (e.g. 2016-07-20T08:00:00Z)", field=field
        ) from None
    if dt.tzinfo is None:
        raise ValidationError(f"{field}: {value!r} has no timezone; use Z or +08:00", field=field)
    return dt.astimezone(UTC)


def normalise_time(value: str, field: str = "observedAt") -> str:
    """Validate an ISO 8601 timestamp and return it in citybrain's canonical UTC form."""
    return iso(parse_time(value, field))
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: Any) -> float | None:
    """Return seconds for '30s', '10m', '6h', '2d' (or a bare number of seconds); None when invalid."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text) if text > 0 else None
    if not isinstance(text, str):
        return None
    m = _DURATION.match(text)
    return float(m.group(1)) * _UNIT[m.group(2)] if m else None
_EPOCH_CACHE: dict[str, float] = {}


def epoch(observed_at: str) -> float:
    """Return epoch seconds of a canonical UTC timestamp (cached: replays repeat the same hours)."""
    ts = _EPOCH_CACHE.get(observed_at)
    if ts is None:
        ts = datetime.fromisoformat(observed_at).timestamp()
        if len(_EPOCH_CACHE) > 20_000:  # bounded: ~2 MB; a replay repeats far fewer distinct instants
            _EPOCH_CACHE.clear()
        _EPOCH_CACHE[observed_at] = ts
    return ts


def iso_of(ts: float) -> str:
    """Return canonical UTC ISO 8601 for epoch seconds."""
    return iso(datetime.fromtimestamp(ts, UTC))
