"""The touchpoints table: the one place a touchpoint row is written.

Writers do not call this directly; they hand their rows to the `Recorder`, which stores them here
and then announces them (`touchpoint_recorded`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from .._touchpoints import Touchpoint
from ._base import Transaction
from ._quarantine import decode_row, decode_rows
from ._rows import TOUCHPOINT_COLUMNS, touchpoint_from_row

__all__ = ["TouchpointRow", "customer_timeline", "insert_touchpoints", "latest_touchpoints", "recent_touchpoints",
           "touchpoints_after", "touchpoints_named"]

#: (id, customer_id, channel, name, properties as JSON text, occurred_at, recorded_at)
TouchpointRow = tuple[str, str, str, str, str, float, float]

_INSERT = "INSERT INTO touchpoints (id, customer_id, channel, name, properties, occurred_at, recorded_at) VALUES "
_ROW = "(?, ?, ?, ?, ?, ?, ?)"
#: Rows per statement: 7 parameters each stays far below SQLite's and PostgreSQL's limits.
_CHUNK = 500

T = TypeVar("T")


def insert_touchpoints(tx: Transaction, rows: Sequence[Sequence[Any]], *, skip_existing: bool = True) -> list[str]:
    """Store touchpoint rows, many per statement; with `skip_existing` a row whose id is already
    stored (or comes twice) is left out (ingestion is idempotent on the touchpoint id). Returns the
    ids of the rows that were new, so only those are announced."""
    new: list[str] = []
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start:start + _CHUNK]
        sql = _INSERT + ", ".join([_ROW] * len(chunk))
        params = [value for row in chunk for value in row]
        if skip_existing:
            new.extend(str(r[0]) for r in tx.query(sql + " ON CONFLICT (id) DO NOTHING RETURNING id", params))
        else:
            tx.execute(sql, params)
            new.extend(str(row[0]) for row in chunk)
    return new


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


def latest_touchpoints(tx: Transaction, customer_ids: Sequence[str], per_customer: int) -> list[Touchpoint]:
    """The latest `per_customer` touchpoints of each customer, by customer and oldest first (what
    templates that mention recent behaviour read); unreadable rows are quarantined."""
    rows = tx.query(
        "SELECT seq, id, customer_id, channel, name, properties, occurred_at FROM ("
        "SELECT seq, id, customer_id, channel, name, properties, occurred_at, ROW_NUMBER() OVER ("
        "PARTITION BY customer_id ORDER BY occurred_at DESC, seq DESC) AS latest FROM touchpoints "
        f"WHERE customer_id IN ({','.join('?' * len(customer_ids))})) AS recent WHERE latest <= ? "
        "ORDER BY customer_id, occurred_at, seq",
        (*customer_ids, per_customer),
    )
    return decode_rows(tx, "touchpoints", rows, touchpoint_from_row)


# -- reads of a journey run: its customer's history and its inbox
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


def touchpoints_named(
    tx: Transaction, customer_ids: Sequence[str], names: Sequence[str], *, since: float,
    decode: Callable[[Sequence[Any]], T],
) -> list[T]:
    """The customers' touchpoints named `names` since `since` (an indexed range per customer), each
    row `(seq, customer_id, channel, name, occurred_at)` through `decode`; unreadable rows quarantined."""
    found: list[T] = []
    for start in range(0, len(customer_ids), _CHUNK):
        chunk = customer_ids[start:start + _CHUNK]
        rows = tx.query(
            f"SELECT seq, customer_id, channel, name, occurred_at FROM touchpoints WHERE customer_id IN "
            f"({','.join('?' * len(chunk))}) AND name IN ({','.join('?' * len(names))}) AND occurred_at >= ?",
            (*chunk, *names, since),
        )
        found.extend(decode_rows(tx, "touchpoints", rows, decode))
    return found
