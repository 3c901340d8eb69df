"""Writing to the outbox: the only way a message gets queued, always inside the caller's transaction.

Journey steps, broadcasts and the app's own one-off sends (`omni.send`) all queue here, so each
message goes through the same dispatcher: the same policies, the same exactly-once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .._identity import register_customer_table
from .._touchpoints import MESSAGE_CHANNELS, check_channel
from ..store import Transaction
from ..store._deliveries import DELIVERY_STATUSES, cancel_run, insert_deliveries, insert_delivery

__all__ = ["DELIVERY_STATUSES", "cancel_run_deliveries", "enqueue_deliveries", "enqueue_delivery"]

register_customer_table("deliveries")


def _check_channels(channels: Sequence[str]) -> None:
    for i, channel in enumerate(channels):
        check_channel(channel, field=f"channels[{i}]", allowed=MESSAGE_CHANNELS)


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
    parent_id: str | None = None,
) -> str:
    """Queue one message; returns the delivery id. The same `key` twice returns the first delivery's id
    (exactly once: a replayed step or a retried request queues nothing more).

    `channels` is the waterfall: the dispatcher takes the first reachable, consented one
    (an empty list means: choose from the customer's preferences and engagement).
    `fallback_after` (seconds) times the waterfall: when the message sent on one channel is not
    delivered (or opened) within that time, the next channel of `channels` gets the message too.
    """
    _check_channels(channels)
    return insert_delivery(
        tx, key=key, customer_id=customer_id, template=template, channels=channels, now=now, due_at=due_at,
        purpose=purpose, data=data, run_id=run_id, journey=journey, step=step, broadcast_id=broadcast_id,
        fallback_after=fallback_after, parent_id=parent_id,
    )


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
    _check_channels(channels)
    return insert_deliveries(tx, rows, template=template, channels=channels, now=now, purpose=purpose, data=data,
                             broadcast_id=broadcast_id)


def cancel_run_deliveries(tx: Transaction, run_id: str, *, reason: str, now: float) -> int:
    """Cancel what a run queued but has not started sending (its journey exited); logged as the journey's."""
    return len(cancel_run(tx, run_id, reason=reason, now=now, actor="journey"))
