"""What the policies read of a customer's recent past: sends (deliveries that reached, or may have
reached, them) and touchpoints that suppress a send or show engagement, for a whole batch at once.

A read model over `deliveries` and `touchpoints`; the rows become the policies' own attrs objects
here. Every SQL statement of these reads lives here (see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from ._base import Transaction
from ._quarantine import decode_rows
from ._rows import text, timestamp
from ._touchpoints import touchpoints_named

__all__ = ["PastDelivery", "PastEvent", "recent_deliveries", "recent_events"]

_CHUNK = 500


@attrs.frozen
class PastDelivery:
    delivery_id: str
    template: str
    channel: str | None
    purpose: str
    #: When it was sent (or last touched while sending), epoch seconds.
    at: float
    run_id: str | None = None
    step: str | None = None
    #: The send's topic (`data.topic`), for per-topic frequency preferences.
    topic: str | None = None


@attrs.frozen
class PastEvent:
    name: str
    channel: str
    at: float


def recent_deliveries(tx: Transaction, customer_ids: Sequence[str], *, since: float) -> dict[str, list[PastDelivery]]:
    """Deliveries sending, sent or delivered to the customers since `since`, counted from when they
    were sent (`sent_at`, else their last update while sending)."""
    found: dict[str, list[PastDelivery]] = {}
    topic = "json_extract(data, '$.topic')" if tx.dialect.name == "sqlite" else "(data ->> 'topic')"
    for start in range(0, len(customer_ids), _CHUNK):
        chunk = customer_ids[start:start + _CHUNK]
        rows = tx.query(
            f"SELECT customer_id, id, template, channel, purpose, COALESCE(sent_at, updated_at), run_id, step, {topic} "
            f"FROM deliveries WHERE customer_id IN ({','.join('?' * len(chunk))}) "
            f"AND status IN ('sending', 'sent', 'delivered') AND COALESCE(sent_at, updated_at) >= ?",
            (*chunk, since),
        )
        for cid, past in decode_rows(tx, "deliveries", rows, _past_delivery, key=lambda r: (r[1],)):
            found.setdefault(cid, []).append(past)
    return found


def recent_events(
    tx: Transaction, customer_ids: Sequence[str], names: Sequence[str], *, since: float
) -> dict[str, list[PastEvent]]:
    """The customers' touchpoints named `names` since `since`."""
    found: dict[str, list[PastEvent]] = {}
    for cid, event in touchpoints_named(tx, customer_ids, names, since=since, decode=_past_event):
        found.setdefault(cid, []).append(event)
    return found


def _past_delivery(row: Sequence[Any]) -> tuple[str, PastDelivery]:
    cid, did, template, channel, purpose, at, run_id, step, topic = row
    return cid, PastDelivery(did, text(template), channel, text(purpose), timestamp(at), run_id, step,
                             topic if isinstance(topic, str) else None)


def _past_event(row: Sequence[Any]) -> tuple[str, PastEvent]:
    _, cid, channel, name, at = row
    return cid, PastEvent(text(name), text(channel), timestamp(at))
