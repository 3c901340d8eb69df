"""The touchpoints table: the one place a touchpoint row is written.

Writers do not call this directly; they hand their rows to the `Recorder`, which stores them here
and then announces them (`touchpoint_recorded`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._base import Transaction

__all__ = ["TouchpointRow", "insert_touchpoints"]

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


from .._touchpoints import Touchpoint  # noqa: E402 - appended by the delivery repositories


def latest_touchpoints(tx: Transaction, customer_ids: Sequence[str], per_customer: int) -> list[Touchpoint]:
    """The latest `per_customer` touchpoints of each customer, by customer and oldest first (what
    templates that mention recent behaviour read); unreadable rows are quarantined."""
    from ._quarantine import decode_rows
    from ._rows import touchpoint_from_row

    rows = tx.query(
        "SELECT seq, id, customer_id, channel, name, properties, occurred_at FROM ("
        "SELECT seq, id, customer_id, channel, name, properties, occurred_at, ROW_NUMBER() OVER ("
        "PARTITION BY customer_id ORDER BY occurred_at DESC, seq DESC) AS latest FROM touchpoints "
        f"WHERE customer_id IN ({','.join('?' * len(customer_ids))})) AS recent WHERE latest <= ? "
        "ORDER BY customer_id, occurred_at, seq",
        (*customer_ids, per_customer),
    )
    return decode_rows(tx, "touchpoints", rows, touchpoint_from_row)
