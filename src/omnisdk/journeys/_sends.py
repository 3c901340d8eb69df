"""How a journey step's message reaches the outbox: at once, or with its batch.

A batch of runs replayed together queues its messages in one statement after the replays
(`BatchedSends.flush`); a run replayed on its own queues each message as its step runs.
Either way the message is written in the transaction that records the step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .._touchpoints import MESSAGE_CHANNELS, check_channel, new_id
from ..delivery import enqueue_delivery
from ..store import Transaction
from ..store._deliveries import QueuedDelivery, insert_queued_deliveries

__all__ = ["BatchedSends", "DirectSends", "Sends", "TracedSends"]


class Sends(Protocol):
    """Where `ctx.send` queues its message; returns the delivery id."""

    def queue(self, tx: Transaction, message: QueuedDelivery, now: float) -> str: ...


class DirectSends:
    """Queue each message now (the same key twice returns the first delivery's id)."""

    def queue(self, tx: Transaction, message: QueuedDelivery, now: float) -> str:
        return enqueue_delivery(
            tx, key=message.key, customer_id=message.customer_id, template=message.template,
            channels=message.channels, now=now, due_at=message.due_at, purpose=message.purpose,
            data=message.data, run_id=message.run_id, journey=message.journey, step=message.step,
        )


class TracedSends:
    """`Sends` that also keep the ids queued (telemetry stores the step's trace context with them)."""

    def __init__(self, sends: Sends) -> None:
        self.sends = sends
        self.ids: list[str] = []

    def queue(self, tx: Transaction, message: QueuedDelivery, now: float) -> str:
        delivery_id = self.sends.queue(tx, message, now)
        self.ids.append(delivery_id)
        return delivery_id


class BatchedSends:
    """Collect the messages of a batch's replays; `flush` queues them all in one statement."""

    def __init__(self) -> None:
        self.pending: list[QueuedDelivery] = []

    def queue(self, tx: Transaction, message: QueuedDelivery, now: float) -> str:
        for i, channel in enumerate(message.channels):
            check_channel(channel, field=f"channels[{i}]", allowed=MESSAGE_CHANNELS)
        self.pending.append(message)
        return message.id

    def flush(self, tx: Transaction, now: float) -> bool:
        """Queue what was collected; False when some key was already queued (that message holds
        another id than the one its step returned: the batch must be redone one by one)."""
        pending, self.pending = self.pending, []
        return insert_queued_deliveries(tx, pending, now) == len(pending)


def new_message(
    *, key: str, customer_id: str, template: str, channels: Sequence[str], due_at: float, purpose: str,
    data: Mapping[str, Any] | None, run_id: str, journey: str, step: str,
) -> QueuedDelivery:
    return QueuedDelivery(
        id="dlv_" + new_id(), key=key, customer_id=customer_id, template=template, channels=tuple(channels),
        purpose=purpose, data=dict(data or {}), due_at=due_at, run_id=run_id, journey=journey, step=step,
    )
