"""Clocks. Everything that asks "what time is it" goes through one, so tests can use virtual time."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "SystemClock", "VirtualClock", "to_datetime"]


def to_datetime(ts: float) -> datetime:
    """Epoch seconds (how the store keeps time) as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime: ...

    def timestamp(self) -> float: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def timestamp(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


class VirtualClock:
    """A clock that only moves when told to: journeys over weeks, tested in milliseconds."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def timestamp(self) -> float:
        return self._now.timestamp()

    def advance(self, delta: timedelta | None = None, /, **kwargs: float) -> datetime:
        """Move forward by a timedelta or timedelta keywords (`advance(hours=1)`)."""
        step = (delta or timedelta()) + timedelta(**kwargs)
        if step < timedelta():
            raise ValueError("a VirtualClock cannot go back in time")
        with self._lock:
            self._now += step
        return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to `when` (not earlier than now)."""
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        return self.advance(when - self._now)

    def __repr__(self) -> str:
        return f"VirtualClock({self._now.isoformat()})"
