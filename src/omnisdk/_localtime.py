"""A customer's wall clock and the instants it names, across DST gaps and folds.

Every rule written in local time (quiet hours, send-time slots) maps wall times to epoch seconds
here, so a skipped hour (spring forward) or a repeated one (fall back) is handled one way:

- a wall time in a **gap** does not exist; it is taken as the first instant after the gap (the
  moment the clocks jump past it);
- a wall time in a **fold** happens twice; it is taken at its **first** occurrence.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["is_repeated", "wall_instant", "zone"]


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA zone `name` (cached; raises ZoneInfoNotFoundError or ValueError for a bad name)."""
    return ZoneInfo(name)


def _wall(ts: float, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ts, tz).replace(tzinfo=None, fold=0)


@lru_cache(maxsize=8192)
def wall_instant(day: date, wall: time, tz: ZoneInfo) -> float:
    """The first instant (epoch seconds) at or after wall time `wall` on `day` in `tz`."""
    naive = datetime.combine(day, wall.replace(tzinfo=None, fold=0))
    first = naive.replace(tzinfo=tz).timestamp()  # fold=0: the first occurrence, if it exists
    if _wall(first, tz) == naive:
        return first
    # In a gap, fold=0 reads the wall time with the offset from before the jump (an instant after
    # it) and fold=1 with the offset from after (an instant before it): the jump lies between.
    before = math.floor(naive.replace(tzinfo=tz, fold=1).timestamp())
    after = math.ceil(first)
    while after - before > 1:  # zones change offset on whole seconds
        middle = (before + after) // 2
        if _wall(middle, tz) >= naive:
            after = middle
        else:
            before = middle
    return float(after)


def is_repeated(ts: float, tz: ZoneInfo) -> bool:
    """Whether the wall time at `ts` is one the clocks show twice that night (a fold)."""
    local = datetime.fromtimestamp(ts, tz)
    return local.utcoffset() != local.replace(fold=1 - local.fold).utcoffset()
