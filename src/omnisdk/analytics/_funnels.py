"""Conversion funnels over any sequence of events, with a time window.

Ordering semantics, per customer (counted once, whatever the number of attempts):

- an attempt starts at an occurrence of the first step in [since, until);
- each later step is the customer's first occurrence of that event *after* the previous step
  (later in time, or at the same time but recorded later), and no later than `within` after the
  attempt's first step; taking the earliest one never loses a deeper match;
- the customer's attempt that gets furthest counts (the earliest of those when several tie), so
  "reached step k" means "did steps 1..k in order within the window at least once".

The breakdown `by="channel"` groups customers by the channel of the first step of their counted
attempt. Median times are between consecutive steps of the counted attempts.
"""

from __future__ import annotations

import statistics
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

import attrs

from .._clock import to_datetime
from .._errors import ValidationError
from ..store import SQLStore
from ..store._analytics import customer_pages
from ._kpis import period_bounds

__all__ = ["BREAKDOWNS", "Funnel", "FunnelStep", "funnel"]

#: What a funnel can be broken down by.
BREAKDOWNS: Final = ("channel",)


@attrs.frozen(kw_only=True)
class FunnelStep:
    """How many customers reached this step, and how fast they got there from the previous one."""

    event: str
    customers: int
    #: share of the previous step's customers (1.0 for the first step; None when it had none)
    from_previous: float | None
    #: share of the first step's customers
    from_first: float | None
    #: median time from the previous step (None for the first step, or when nobody got here)
    median_time: timedelta | None


def _frozen_breakdown(mapping: Mapping[str, tuple[FunnelStep, ...]]) -> Mapping[str, tuple[FunnelStep, ...]]:
    return MappingProxyType(dict(mapping))


@attrs.frozen(kw_only=True)
class Funnel:
    """A funnel's steps for everyone, and per breakdown value when `by` was given."""

    events: tuple[str, ...]
    within: timedelta
    by: str | None
    since: datetime | None
    until: datetime | None
    steps: tuple[FunnelStep, ...]
    breakdown: Mapping[str, tuple[FunnelStep, ...]] = attrs.field(factory=dict, converter=_frozen_breakdown)

    @property
    def conversion(self) -> float | None:
        """Share of the customers who started the funnel and finished it."""
        return self.steps[-1].from_first

    def as_dicts(self) -> list[dict[str, Any]]:
        """One row per step (and per breakdown value, first), ready for a table or a CSV file."""
        rows = []
        groups: list[tuple[str | None, tuple[FunnelStep, ...]]] = [(None, self.steps), *self.breakdown.items()]
        for value, steps in groups:
            for number, step in enumerate(steps, 1):
                rows.append({
                    self.by or "group": "all" if value is None else value,
                    "step": number, "event": step.event, "customers": step.customers,
                    "from_previous": step.from_previous, "from_first": step.from_first,
                    "median_seconds": None if step.median_time is None else step.median_time.total_seconds(),
                })
        return rows


class _Tally:
    """Customers per step and the seconds between steps, kept compactly (8 bytes per customer per step)."""

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.gaps = [array("d") for _ in range(size)]

    def add(self, times: Sequence[float]) -> None:
        for index, at in enumerate(times):
            self.counts[index] += 1
            if index:
                self.gaps[index].append(at - times[index - 1])

    def steps(self, events: Sequence[str]) -> tuple[FunnelStep, ...]:
        steps = []
        for index, event in enumerate(events):
            count = self.counts[index]
            previous = self.counts[index - 1] if index else count
            gaps = self.gaps[index]
            steps.append(FunnelStep(
                event=event, customers=count,
                from_previous=count / previous if previous else None,
                from_first=count / self.counts[0] if self.counts[0] else None,
                median_time=timedelta(seconds=statistics.median(gaps)) if gaps else None,
            ))
        return tuple(steps)


def _best_attempt(
    events: Sequence[str], timeline: Sequence[tuple[str, str, float]], start: float | None, end: float | None,
    within: float,
) -> tuple[list[float], str] | None:
    """The times of the furthest-reaching attempt (earliest among equals) and its first step's channel."""
    positions: dict[str, list[int]] = {}
    for index, (name, _, _) in enumerate(timeline):
        positions.setdefault(name, []).append(index)
    best: tuple[list[float], str] | None = None
    for first in positions.get(events[0], ()):
        _, channel, began = timeline[first]
        if (start is not None and began < start) or (end is not None and began >= end):
            continue
        times, at = [began], first
        for event in events[1:]:
            candidates = positions.get(event, [])
            nxt = bisect_right(candidates, at)
            if nxt == len(candidates) or timeline[candidates[nxt]][2] > began + within:
                break
            at = candidates[nxt]
            times.append(timeline[at][2])
        if best is None or len(times) > len(best[0]):
            best = (times, channel)
            if len(times) == len(events):
                break
    return best


def _check(events: Any, within: Any, by: Any) -> tuple[str, ...]:
    if isinstance(events, str) or not isinstance(events, Iterable):
        raise ValidationError("expected a list of event names", field="steps", value=events)
    names = tuple(events)
    if len(names) < 2:
        raise ValidationError("a funnel needs at least two steps", field="steps", value=events)
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ValidationError("expected a non-empty event name", field=f"steps[{index}]", value=name)
    if not isinstance(within, timedelta) or within <= timedelta(0):
        raise ValidationError("must be a positive timedelta", field="within", value=within)
    if by is not None and by not in BREAKDOWNS:
        raise ValidationError(f"expected one of {', '.join(BREAKDOWNS)} or None", field="by", value=by)
    return names


def funnel(
    store: SQLStore,
    steps: Sequence[str],
    *,
    within: timedelta = timedelta(days=7),
    by: str | None = None,
    since: datetime | float | None = None,
    until: datetime | float | None = None,
) -> Funnel:
    """Customers reaching each of `steps` in order within `within` of the first (see the module docs)."""
    events = _check(steps, within, by)
    start, end = period_bounds(since, until)
    window = within.total_seconds()
    distinct = sorted(set(events))
    total = _Tally(len(events))
    groups: dict[str, _Tally] = {}
    for rows in customer_pages(store, distinct, since=start, until=None if end is None else end + window):
        begin = 0
        for index in range(1, len(rows) + 1):
            if index < len(rows) and rows[index].customer_id == rows[begin].customer_id:
                continue
            timeline = [(row.name, row.channel, row.occurred_at) for row in rows[begin:index]]
            begin = index
            attempt = _best_attempt(events, timeline, start, end, window)
            if attempt is None:
                continue
            times, channel = attempt
            total.add(times)
            if by is not None:
                groups.setdefault(channel, _Tally(len(events))).add(times)
    return Funnel(
        events=events, within=within, by=by,
        since=to_datetime(start) if start is not None else None, until=to_datetime(end) if end is not None else None,
        steps=total.steps(events),
        breakdown={value: tally.steps(events) for value, tally in sorted(groups.items())},
    )
