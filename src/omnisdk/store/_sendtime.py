"""Send-time model rows: the engagement history send-time optimisation learns from, and the stored
population prior (`sendtime_prior`).

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._base import Transaction
from ._quarantine import decode_rows
from ._rows import MAX_TIMESTAMP, integer, optional_number, text, timestamp
from ._touchpoints import touchpoints_named

__all__ = ["Engagement", "EngagementGroup", "PriorWeight", "engagement_groups", "engagements", "prior_weights",
           "save_prior"]



@attrs.frozen
class Engagement:
    """One touchpoint that shows when a customer is active."""

    customer_id: str
    channel: str
    name: str
    occurred_at: float


def engagements(
    tx: Transaction, customer_ids: Sequence[str], names: Sequence[str], *, since: float
) -> list[Engagement]:
    """The customers' touchpoints named `names` since `since` (an indexed range per customer)."""
    return touchpoints_named(tx, customer_ids, names, since=since, decode=_engagement)


def _engagement(row: Sequence[Any]) -> Engagement:
    _, cid, channel, name, occurred = row
    return Engagement(text(cid), text(channel), text(name), timestamp(occurred))


@attrs.frozen
class EngagementGroup:
    """How many touchpoints named `name` on `channel` customers in `timezone` had in one quarter of an
    hour (`quarter` of the day, 0-95) of one week since the epoch."""

    timezone: object
    channel: str
    name: str
    week: int
    quarter: int
    count: int


def engagement_groups(tx: Transaction, names: Sequence[str], *, since: float, week: int) -> list[EngagementGroup]:
    """Everyone's touchpoints named `names` since `since`, counted by the database per (time zone,
    channel, name, week of `week` seconds, quarter of the day)."""
    floor = _floor(tx)
    weeks, quarter, day = (floor(f"t.occurred_at / {n}") for n in (week, 900, 86400))
    rows = tx.query(
        f"SELECT c.timezone, t.channel, t.name, {weeks}, {quarter} - {day} * 96, COUNT(*) "
        "FROM touchpoints t JOIN customers c ON c.id = t.customer_id "
        f"WHERE t.name IN ({','.join('?' * len(names))}) AND t.occurred_at >= ? AND t.occurred_at <= ? "
        "GROUP BY 1, 2, 3, 4, 5",  # rows out of range are left to the readers that quarantine them
        (*names, since, MAX_TIMESTAMP),
    )
    return [EngagementGroup(zone, str(channel), str(name), int(w), int(q), int(n)) for zone, channel, name, w, q, n
            in rows]


def _floor(tx: Transaction) -> Any:
    """Portable floor of a non-negative number (SQLite's CAST truncates; PostgreSQL's rounds)."""
    if tx.dialect.name == "sqlite":
        return lambda expr: f"CAST({expr} AS INTEGER)"
    return lambda expr: f"FLOOR({expr})"


@attrs.frozen
class PriorWeight:
    channel: str
    hour: int
    weight: float
    computed_at: float


def prior_weights(tx: Transaction) -> list[PriorWeight]:
    """The stored population prior, one weight per (channel key, local hour)."""
    rows = tx.query("SELECT channel, hour, weight, computed_at FROM sendtime_prior")
    return decode_rows(tx, "sendtime_prior", rows, _prior_row, key=lambda r: (r[0], r[1]))


def _prior_row(row: Sequence[Any]) -> PriorWeight:
    channel, hour, weight, at = row
    if not 0 <= integer(hour) < 24:
        raise ValueError(f"hour {hour!r} is not an hour of the day")
    return PriorWeight(text(channel), hour, optional_number(weight) or 0.0, timestamp(at))


def save_prior(tx: Transaction, counts: Mapping[str, Sequence[float]], now: float) -> None:
    """Replace the stored prior by `counts` (24 weights per channel key), computed at `now`."""
    tx.executemany(
        "INSERT INTO sendtime_prior (channel, hour, weight, computed_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (channel, hour) DO UPDATE SET weight = excluded.weight, computed_at = excluded.computed_at",
        [(key, hour, weight, now) for key, hours in counts.items() for hour, weight in enumerate(hours)],
    )
    tx.execute("DELETE FROM sendtime_prior WHERE computed_at < ?", (now,))
