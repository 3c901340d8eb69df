"""The touchpoints table: the one place a touchpoint row is written.

Writers do not call this directly; they hand their rows to the `Recorder`, which stores them here
and then announces them (`touchpoint_recorded`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._touchpoints import Touchpoint
from ._base import Transaction
from ._quarantine import decode_rows
from ._rows import TOUCHPOINT_COLUMNS, touchpoint_from_row

__all__ = ["TouchpointRow", "customer_timeline", "insert_touchpoints"]

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


def customer_timeline(
    tx: Transaction, customer_id: str, *, channels: Sequence[str] | None = None, since: float | None = None,
    limit: int | None = None,
) -> list[Touchpoint]:
    """The customer's touchpoints oldest first; with `limit`, the latest `limit` of them."""
    sql = f"SELECT {TOUCHPOINT_COLUMNS} FROM touchpoints WHERE customer_id = ?"
    params: list[Any] = [customer_id]
    if channels:
        sql += f" AND channel IN ({','.join('?' * len(channels))})"
        params.extend(channels)
    if since is not None:
        sql += " AND occurred_at >= ?"
        params.append(since)
    if limit is None:
        sql += " ORDER BY occurred_at, seq"
    else:
        sql = f"SELECT * FROM ({sql} ORDER BY occurred_at DESC, seq DESC LIMIT ?) AS recent ORDER BY occurred_at, seq"
        params.append(int(limit))
    return decode_rows(tx, "touchpoints", tx.query(sql, params), touchpoint_from_row)
