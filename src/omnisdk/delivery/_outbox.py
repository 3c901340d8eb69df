"""Writing to the outbox: the only way a message gets queued, always inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._identity import register_customer_table
from .._touchpoints import MESSAGE_CHANNELS, check_channel, new_id
from ..store import Transaction, dumps

__all__ = ["DELIVERY_STATUSES", "cancel_run_deliveries", "enqueue_deliveries", "enqueue_delivery"]

DELIVERY_STATUSES = ("queued", "deferred", "sending", "sent", "delivered", "failed", "skipped", "cancelled")

register_customer_table("deliveries")


def enqueue_delivery(
    tx: Transaction,
    *,
    key: str,
    customer_id: str,
    template: str,
    channels: Sequence[str],
    now: float,
    due_at: float | None = None,
    purpose: str = "marketing",
    data: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    journey: str | None = None,
    step: str | None = None,
    broadcast_id: str | None = None,
    fallback_after: float | None = None,
) -> str:
    """Queue one message; returns the delivery id. The same `key` twice returns the first delivery's id.

    `channels` is the waterfall: the dispatcher takes the first reachable, consented one
    (an empty list means: choose from the customer's preferences and engagement).
    `fallback_after` (seconds) times the waterfall: when the message sent on one channel is not
    delivered (or opened) within that time, the next channel of `channels` gets the message too.
    """
    for i, channel in enumerate(channels):
        check_channel(channel, field=f"channels[{i}]", allowed=MESSAGE_CHANNELS)
    existing = tx.scalar("SELECT id FROM deliveries WHERE idempotency_key = ?", (key,))
    if existing:
        return str(existing)
    delivery_id = "dlv_" + new_id()
    tx.execute(
        "INSERT INTO deliveries (id, idempotency_key, customer_id, template, channels, purpose, data, run_id, journey, "
        "step, broadcast_id, status, due_at, decisions, fallback_after, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, '[]', ?, ?, ?)",
        (delivery_id, key, customer_id, template, dumps(list(channels)), purpose, dumps(dict(data or {})), run_id,
         journey, step, broadcast_id, now if due_at is None else due_at, fallback_after, now, now),
    )
    return delivery_id


def enqueue_deliveries(
    tx: Transaction,
    rows: Sequence[tuple[str, str, float]],
    *,
    template: str,
    channels: Sequence[str],
    now: float,
    purpose: str = "marketing",
    data: Mapping[str, Any] | None = None,
    broadcast_id: str | None = None,
) -> int:
    """Queue one message to many customers: `rows` of (idempotency key, customer id, due_at).

    A key already in the outbox is left as it is (a page queued again adds nothing). Returns how
    many deliveries are new.
    """
    for i, channel in enumerate(channels):
        check_channel(channel, field=f"channels[{i}]", allowed=MESSAGE_CHANNELS)
    if not rows:
        return 0
    per_row = dumps([["dlv_" + new_id(), key, cid, due_at] for key, cid, due_at in rows])
    source, (did, key, cid, due) = _json_rows(tx.dialect.name, 4)
    json = tx.dialect.types["json"]
    return tx.execute(  # the rows travel as one JSON parameter: one statement for the whole batch
        "INSERT INTO deliveries (id, idempotency_key, customer_id, template, channels, purpose, data, broadcast_id, "
        f"status, due_at, decisions, created_at, updated_at) SELECT {did}, {key}, {cid}, ?, CAST(? AS {json}), ?, "
        f"CAST(? AS {json}), ?, 'queued', {due}, '[]', ?, ? FROM {source} WHERE TRUE "
        "ON CONFLICT (idempotency_key) DO NOTHING",
        (template, dumps(list(channels)), purpose, dumps(dict(data or {})), broadcast_id, now, now, per_row),
    )


def _json_rows(dialect: str, width: int) -> tuple[str, list[str]]:
    """A table over a JSON array of arrays (one `?`), and its columns: text, and the last a number."""
    if dialect == "sqlite":
        columns = [f"json_extract(r.value, '$[{i}]')" for i in range(width)]
        return "json_each(?) AS r", columns
    columns = [f"(r.value ->> {i})" for i in range(width)]
    columns[-1] = f"CAST({columns[-1]} AS DOUBLE PRECISION)"
    return "jsonb_array_elements(CAST(? AS JSONB)) AS r", columns


def cancel_run_deliveries(tx: Transaction, run_id: str, *, reason: str, now: float) -> int:
    """Cancel what a run queued but has not started sending (its journey exited)."""
    return tx.execute(
        "UPDATE deliveries SET status = 'cancelled', error = ?, updated_at = ? "
        "WHERE run_id = ? AND status IN ('queued', 'deferred')",
        (reason, now, run_id),
    )
