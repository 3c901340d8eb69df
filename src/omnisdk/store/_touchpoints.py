"""The touchpoints table: the one place a touchpoint row is written.

Writers do not call this directly; they hand their rows to the `Recorder`, which stores them here
and then announces them (`touchpoint_recorded`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .._touchpoints import Touchpoint
from ._base import Transaction
from ._quarantine import decode_row, decode_rows
from ._rows import TOUCHPOINT_COLUMNS, touchpoint_from_row

__all__ = ["TouchpointRow", "insert_touchpoints", "recent_touchpoints", "touchpoints_after"]

#: (id, customer_id, channel, name, properties as JSON text, occurred_at, recorded_at)
TouchpointRow = tuple[str, str, str, str, str, float, float]

_INSERT = (
    "INSERT INTO touchpoints (id, customer_id, channel, name, properties, occurred_at, recorded_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def insert_touchpoints(tx: Transaction, rows: Sequence[Sequence[Any]], *, skip_existing: bool = True) -> int:
    """Store touchpoint rows; with `skip_existing` a row whose id is already stored is left as it is
    (ingestion is idempotent on the touchpoint id). Returns how many rows were new."""
    if not rows:
        return 0
    sql = _INSERT + " ON CONFLICT (id) DO NOTHING" if skip_existing else _INSERT
    if len(rows) == 1:
        return tx.execute(sql, rows[0])
    return tx.executemany(sql, rows)


# -- reads of a journey run (h15-journeys): its customer's history and its inbox
def recent_touchpoints(
    tx: Transaction, customer_id: str, *, event: str | None, channels: Sequence[str] | None, limit: int
) -> list[Touchpoint]:
    """The customer's latest `limit` touchpoints (of `event`, on `channels`), oldest first."""
    sql = f"SELECT {TOUCHPOINT_COLUMNS} FROM touchpoints WHERE customer_id = ?"
    params: list[Any] = [customer_id]
    if event is not None:
        sql += " AND name = ?"
        params.append(event)
    if channels:
        sql += f" AND channel IN ({','.join('?' * len(channels))})"
        params.extend(channels)
    sql += " ORDER BY occurred_at DESC, seq DESC LIMIT ?"
    params.append(int(limit))
    rows = tx.query(sql, params)
    return decode_rows(tx, "touchpoints", reversed(rows), touchpoint_from_row)


def touchpoints_after(
    tx: Transaction, customer_id: str, event: str, *, after_seq: int, recorded_by: float | None
) -> Iterator[Touchpoint]:
    """The customer's `event`s after `after_seq` (recorded by `recorded_by`), oldest first, each
    decoded only when the reader gets to it (an unreadable one is quarantined and skipped)."""
    sql = f"SELECT {TOUCHPOINT_COLUMNS} FROM touchpoints WHERE customer_id = ? AND name = ? AND seq > ?"
    params: list[Any] = [customer_id, event, after_seq]
    if recorded_by is not None:
        sql += " AND recorded_at <= ?"
        params.append(recorded_by)
    for row in tx.query(sql + " ORDER BY seq", params):
        touchpoint = decode_row(tx, "touchpoints", row, touchpoint_from_row)
        if touchpoint is not None:
            yield touchpoint
