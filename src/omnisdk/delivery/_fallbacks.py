"""Step 2 of a tick, the waterfall's timing: a message not delivered within its `fallback_after`
goes out on the waterfall's next channel too (push not delivered in 10 minutes → SMS)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._recorder import Recorder
from ..store import SQLStore
from ..store._deliveries import Change, due_fallbacks
from ._held import Writes, entry, rest_of_waterfall
from ._outbox import enqueue_delivery

__all__ = ["queue_timed_fallbacks"]


def queue_timed_fallbacks(
    store: SQLStore, recorder: Recorder, load: Callable[[Sequence[str]], Sequence[Any]], now: float
) -> int:
    """Queue the next channel for messages still not delivered when their `fallback_after` ran out;
    how many were queued. Each is a child delivery of the same message (`parent_id`), once only."""
    created = 0
    writes = Writes()
    with store.transaction() as tx:
        for row in due_fallbacks(tx, now):
            rest = rest_of_waterfall(row.channels, row.channel, row.failed_channels)
            if row.status not in ("sent", "failed") or not rest:
                continue
            child = enqueue_delivery(
                tx, key=f"{row.idempotency_key}:after:{row.channel}", customer_id=row.customer_id,
                template=row.template, channels=rest, now=now, purpose=row.purpose, data=row.data,
                run_id=row.run_id, journey=row.journey, step=row.step, fallback_after=row.fallback_after,
                parent_id=row.id,
            )
            reason = f"{row.channel}: {row.status}, not delivered within {row.fallback_after:g}s; queued {child}"
            writes.change(Change(row.id, {"updated_at": now}), entry(row.id, now, "fallback", rest[0], reason),
                          announce=False)
            created += 1
        writes.flush(tx, recorder, load)
    return created
