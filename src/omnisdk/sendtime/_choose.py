"""Choosing a send time: smooth a customer's hours towards the population's, then pick the best slot.

Pure functions, so the maths can be checked by hand: for 24 local hours with the customer's counts
`n_h` (total `N`) and the population's share `p_h`, the estimate is the Dirichlet posterior mean
`(n_h + a * p_h) / (N + a)`, where `a` (the prior's strength, in pseudo-events) says how many of
their own events it takes for a customer's habits to outweigh everyone's. A new customer gets `p`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from .._localtime import wall_instant
from ..policies import QuietHours

__all__ = ["candidate_times", "choose", "posterior", "shares"]


def shares(weights: Sequence[float]) -> list[float]:
    """The population's share of each hour, with one pseudo-event per hour (no data: uniform)."""
    total = sum(weights) + len(weights)
    return [(w + 1.0) / total for w in weights]


def posterior(counts: Sequence[float], prior: Sequence[float], strength: float) -> list[float]:
    """The customer's engagement share per hour, smoothed towards `prior` (shares summing to 1)."""
    n = sum(counts)
    return [(c + strength * p) / (n + strength) for c, p in zip(counts, prior, strict=True)]


def candidate_times(now: float, within: float, zone: ZoneInfo) -> list[float]:
    """`now`, then the start of every later local hour up to `now + within` (epoch seconds).

    Hour starts are wall times (`wall_instant`), so they stay on the hour across a DST change of
    any size; an hour the clocks skip starts when they jump, the same slot as the next one.
    """
    local = datetime.fromtimestamp(now, zone)
    day, hour = local.date(), local.hour
    times = [now]
    while True:
        day, hour = (day + timedelta(days=1), 0) if hour == 23 else (day, hour + 1)
        slot = wall_instant(day, time(hour), zone)
        if slot > now + within:
            return times
        if slot > times[-1]:
            times.append(slot)


def choose(
    now: float, within: float, zone: ZoneInfo, scores: Sequence[float], quiet: QuietHours | None = None
) -> float:
    """The slot in `[now, now + within]` whose local hour scores highest (the earliest of equals),
    outside `quiet` hours; when every slot is quiet, the end of the quiet window."""
    best: tuple[float, float] | None = None
    for slot in candidate_times(now, within, zone):
        if quiet is not None and quiet.ends_at(slot, zone) is not None:
            continue
        score = scores[datetime.fromtimestamp(slot, zone).hour]
        if best is None or score > best[0] + 1e-12:
            best = (score, slot)
    if best is not None:
        return best[1]
    ends = quiet.ends_at(now, zone) if quiet is not None else None
    return ends if ends is not None else now
