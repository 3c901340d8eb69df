"""What send-time optimisation learns from the store: engagement counts by local hour of the day.

A customer's own habits are read from their touchpoints (an indexed range per customer). The
population prior is one aggregate query grouped by (time zone, channel, signal, week, quarter of
the day): the database does the counting, Python only turns each group into a local hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .._localtime import zone
from ..store import Transaction
from ..store._sendtime import EngagementGroup, engagement_groups, engagements

__all__ = ["ALL", "PURCHASE", "PURCHASES", "SIGNALS", "Counts", "load_habits", "local_zone", "population_counts"]

#: Engagement with a message, counted for the channel it happened on.
SIGNALS: Final = ("Message Opened", "Link Clicked", "Message Replied")
#: A purchase shows when the customer is active, whatever the channel: it counts for every channel.
PURCHASE: Final = "Order Completed"
#: Key of purchases in the counts, and key of everything together.
PURCHASES: Final = "*"
ALL: Final = ""

#: Counts by channel key ("email", ..., PURCHASES), 24 local hours each.
Counts = dict[str, list[float]]

_WEEK = 7 * 86400


def local_zone(name: str | None, default: str) -> ZoneInfo:
    """The customer's zone; the configured default when they have none or an unknown one."""
    if name:
        try:
            return zone(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return zone(default)


def _add(counts: Counts, key: str, hour: int, weight: float = 1.0) -> None:
    hours = counts.get(key)
    if hours is None:
        hours = counts[key] = [0.0] * 24
    hours[hour] += weight


def load_habits(tx: Transaction, zones: Mapping[str, ZoneInfo], *, since: float) -> dict[str, Counts]:
    """Each customer's engagement since `since` by local hour (in the zone given for them)."""
    habits: dict[str, Counts] = {}
    for seen in engagements(tx, list(zones), (*SIGNALS, PURCHASE), since=since):
        hour = datetime.fromtimestamp(seen.occurred_at, zones[seen.customer_id]).hour
        _add(habits.setdefault(seen.customer_id, {}), PURCHASES if seen.name == PURCHASE else seen.channel, hour)
    return habits


def population_counts(tx: Transaction, *, since: float, default_zone: str) -> Counts:
    """Everyone's engagement since `since` by local hour, per channel key, plus ALL (every signal).

    The local hour of a group is taken mid-week, so only the week of a DST change is off by an hour.
    """
    rows = engagement_groups(tx, (*SIGNALS, PURCHASE), since=since, week=_WEEK)
    counts: Counts = {ALL: [0.0] * 24}
    for hour, key, weight in _local_hours(rows, default_zone):
        _add(counts, key, hour, weight)
        counts[ALL][hour] += weight
    return counts


def _local_hours(groups: Iterable[EngagementGroup], default_zone: str) -> Iterable[tuple[int, str, float]]:
    hours: dict[tuple[object, int, int], int] = {}
    for group in groups:
        key = (group.timezone, group.week, group.quarter)
        hour = hours.get(key)
        if hour is None:
            midweek_day = (group.week * _WEEK + 3 * 86400) // 86400 * 86400
            zone_name = group.timezone if isinstance(group.timezone, str) else None
            hour = hours[key] = datetime.fromtimestamp(midweek_day + group.quarter * 900,
                                                       local_zone(zone_name, default_zone)).hour
        yield hour, PURCHASES if group.name == PURCHASE else group.channel, float(group.count)
