"""What send-time optimisation learns from the store: engagement counts by local hour of the day.

A customer's own habits are read from their touchpoints (an indexed range per customer). The
population prior is one aggregate query grouped by (time zone, channel, signal, week, quarter of
the day): the database does the counting, Python only turns each group into a local hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..store import MAX_TIMESTAMP, Transaction, decode_rows, text, timestamp

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

_CHUNK = 500
_WEEK = 7 * 86400


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_zone(name: str | None, default: str) -> ZoneInfo:
    """The customer's zone; the configured default when they have none or an unknown one."""
    if name:
        try:
            return _zone(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return _zone(default)


def _add(counts: Counts, key: str, hour: int, weight: float = 1.0) -> None:
    hours = counts.get(key)
    if hours is None:
        hours = counts[key] = [0.0] * 24
    hours[hour] += weight


def load_habits(tx: Transaction, zones: Mapping[str, ZoneInfo], *, since: float) -> dict[str, Counts]:
    """Each customer's engagement since `since` by local hour (in the zone given for them)."""
    habits: dict[str, Counts] = {}
    names = (*SIGNALS, PURCHASE)
    ids = list(zones)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        rows = tx.query(
            f"SELECT seq, customer_id, channel, name, occurred_at FROM touchpoints WHERE customer_id IN "
            f"({','.join('?' * len(chunk))}) AND name IN ({','.join('?' * len(names))}) AND occurred_at >= ?",
            (*chunk, *names, since),
        )
        for cid, channel, name, hour in decode_rows(tx, "touchpoints", rows, lambda r: _local_hour(r, zones)):
            _add(habits.setdefault(cid, {}), PURCHASES if name == PURCHASE else channel, hour)
    return habits


def _local_hour(row: Sequence[object], zones: Mapping[str, ZoneInfo]) -> tuple[str, str, str, int]:
    _, cid, channel, name, occurred = row
    return text(cid), text(channel), text(name), datetime.fromtimestamp(timestamp(occurred), zones[str(cid)]).hour


def _floor(tx: Transaction, expr: str) -> str:
    """Portable floor of a non-negative number (SQLite's CAST truncates; PostgreSQL's rounds)."""
    return f"CAST({expr} AS INTEGER)" if tx.dialect.name == "sqlite" else f"FLOOR({expr})"


def population_counts(tx: Transaction, *, since: float, default_zone: str) -> Counts:
    """Everyone's engagement since `since` by local hour, per channel key, plus ALL (every signal).

    The local hour of a group is taken mid-week, so only the week of a DST change is off by an hour.
    """
    names = (*SIGNALS, PURCHASE)
    week, quarter, day = (_floor(tx, f"t.occurred_at / {n}") for n in (_WEEK, 900, 86400))
    rows = tx.query(
        f"SELECT c.timezone, t.channel, t.name, {week}, {quarter} - {day} * 96, COUNT(*) "
        "FROM touchpoints t JOIN customers c ON c.id = t.customer_id "
        f"WHERE t.name IN ({','.join('?' * len(names))}) AND t.occurred_at >= ? AND t.occurred_at <= ? "
        "GROUP BY 1, 2, 3, 4, 5",  # rows out of range are left to the readers that quarantine them
        (*names, since, MAX_TIMESTAMP),
    )
    counts: Counts = {ALL: [0.0] * 24}
    for hour, key, weight in _local_hours(rows, default_zone):
        _add(counts, key, hour, weight)
        counts[ALL][hour] += weight
    return counts


def _local_hours(rows: Iterable[Sequence[object]], default_zone: str) -> Iterable[tuple[int, str, float]]:
    hours: dict[tuple[object, int, int], int] = {}
    for timezone, channel, name, week, quarter, n in rows:
        key = (timezone, int(week), int(quarter))  # type: ignore[call-overload]
        hour = hours.get(key)
        if hour is None:
            midweek_day = (key[1] * _WEEK + 3 * 86400) // 86400 * 86400
            zone = local_zone(timezone if isinstance(timezone, str) else None, default_zone)
            hour = hours[key] = datetime.fromtimestamp(midweek_day + key[2] * 900, zone).hour
        yield hour, PURCHASES if name == PURCHASE else str(channel), float(n)  # type: ignore[arg-type]
