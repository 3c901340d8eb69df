"""What the policies need from the store, loaded for a whole batch of deliveries in two queries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from ..store import Transaction, decode_rows, text, timestamp
from ._rules import ENGAGEMENT_EVENTS, PolicyRules

__all__ = ["PastDelivery", "PastEvent", "RecentActivity", "load_recent"]

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


@attrs.frozen
class PastEvent:
    name: str
    channel: str
    at: float


@attrs.frozen
class RecentActivity:
    """One customer's recent sends (for caps and dedupe) and touchpoints (goals, engagement)."""

    deliveries: tuple[PastDelivery, ...] = ()
    events: tuple[PastEvent, ...] = ()

    def with_delivery(self, delivery: PastDelivery) -> RecentActivity:
        """This activity plus a send decided in the same batch, so caps hold within a batch too."""
        return RecentActivity((*self.deliveries, delivery), self.events)


EMPTY_ACTIVITY = RecentActivity()


def load_recent(
    tx: Transaction, requests: Sequence[Any], *, now: float, rules: PolicyRules
) -> dict[str, RecentActivity]:
    """Recent activity of every customer in `requests` (`SendRequest`s), keyed by customer id.

    Deliveries count from the time they were sent (`sent_at`, else their last update while sending),
    and only within the longest cap or dedupe window of the requests' purposes (none for a batch of
    transactional sends when no rule covers them); touchpoints are only those that suppress a send
    (its goals) or show engagement.
    """
    customer_ids = list(dict.fromkeys(r.customer.id for r in requests))
    if not customer_ids:
        return {}
    deliveries: dict[str, list[PastDelivery]] = {}
    window = rules.window_for({r.purpose for r in requests})
    if window > 0:
        for chunk in _chunks(customer_ids):
            marks = ",".join("?" * len(chunk))
            rows = tx.query(  # deliveries that reached, or may have reached, the customer
                f"SELECT customer_id, id, template, channel, purpose, COALESCE(sent_at, updated_at), run_id, step "
                f"FROM deliveries WHERE customer_id IN ({marks}) AND status IN ('sending', 'sent', 'delivered') "
                f"AND COALESCE(sent_at, updated_at) >= ?",
                (*chunk, now - window),
            )
            for cid, past in decode_rows(tx, "deliveries", rows, _past_delivery, key=lambda r: (r[1],)):
                deliveries.setdefault(cid, []).append(past)
    names: set[str] = set()
    since = now
    for request in requests:
        goals = rules.goals_for(request.template, request.data)
        if goals:
            names.update(goals)
            since = min(since, request.queued_at if request.queued_at is not None else now)
        if not request.channels:
            names.update(ENGAGEMENT_EVENTS)
            since = min(since, now - rules.engagement_window)
    events: dict[str, list[PastEvent]] = {}
    if names:
        ordered = sorted(names)
        for chunk in _chunks(customer_ids):
            rows = tx.query(
                f"SELECT seq, customer_id, name, channel, occurred_at FROM touchpoints WHERE customer_id IN "
                f"({','.join('?' * len(chunk))}) AND name IN ({','.join('?' * len(ordered))}) AND occurred_at >= ?",
                (*chunk, *ordered, since),
            )
            for cid, event in decode_rows(tx, "touchpoints", rows, _past_event):
                events.setdefault(cid, []).append(event)
    return {
        cid: RecentActivity(tuple(deliveries.get(cid, ())), tuple(events.get(cid, ())))
        if cid in deliveries or cid in events else EMPTY_ACTIVITY  # most customers: one shared empty activity
        for cid in customer_ids
    }


def _past_delivery(row: Sequence[Any]) -> tuple[str, PastDelivery]:
    cid, did, template, channel, purpose, at, run_id, step = row
    return cid, PastDelivery(did, text(template), channel, text(purpose), timestamp(at), run_id, step)


def _past_event(row: Sequence[Any]) -> tuple[str, PastEvent]:
    _, cid, name, channel, at = row
    return cid, PastEvent(text(name), text(channel), timestamp(at))


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]
