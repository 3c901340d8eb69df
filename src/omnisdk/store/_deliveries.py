"""Deliveries: the outbox rows, their claims, leases and statuses.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ._base import Transaction, dumps, json_table


# -- written by journeys and broadcasts (h15-journeys): a batch of queued messages, their progress
@attrs.frozen(kw_only=True, slots=True)
class QueuedDelivery:
    """A message a journey step queues (`key` is its idempotency key, run_id:step)."""

    id: str
    key: str
    customer_id: str
    template: str
    channels: Sequence[str]
    purpose: str
    data: Mapping[str, Any]
    due_at: float
    run_id: str | None = None
    journey: str | None = None
    step: str | None = None


def insert_queued_deliveries(tx: Transaction, rows: Sequence[QueuedDelivery], now: float) -> int:
    """Queue many messages in one statement; a key already queued is left as it is. Returns how
    many are new (fewer than `rows`: some key was taken, and its row holds another id)."""
    if not rows:
        return 0
    source, (did, key, cid, template, channels, purpose, data, run_id, journey, step, due) = json_table(
        tx, "ttttjtjtttf")
    return tx.execute(
        "INSERT INTO deliveries (id, idempotency_key, customer_id, template, channels, purpose, data, run_id, "
        f"journey, step, status, due_at, decisions, created_at, updated_at) SELECT {did}, {key}, {cid}, {template}, "
        f"{channels}, {purpose}, {data}, {run_id}, {journey}, {step}, 'queued', {due}, '[]', ?, ? FROM {source} "
        "WHERE TRUE ON CONFLICT (idempotency_key) DO NOTHING",
        (now, now, dumps([[r.id, r.key, r.customer_id, r.template, list(r.channels), r.purpose, dict(r.data),
                           r.run_id, r.journey, r.step, r.due_at] for r in rows])),
    )


def broadcast_delivery_counts(tx: Transaction, broadcast_id: str) -> dict[str, int]:
    """A broadcast's deliveries counted by status."""
    return {str(status): int(n) for status, n in tx.query(
        "SELECT status, COUNT(*) FROM deliveries WHERE broadcast_id = ? GROUP BY status", (broadcast_id,)
    )}


def cancel_broadcast_deliveries(tx: Transaction, broadcast_id: str, now: float) -> int:
    """Cancel a broadcast's deliveries that are queued but not yet being sent."""
    return tx.execute(
        "UPDATE deliveries SET status = 'cancelled', error = 'broadcast cancelled', updated_at = ? "
        "WHERE broadcast_id = ? AND status IN ('queued', 'deferred')", (now, broadcast_id),
    )
