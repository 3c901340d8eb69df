"""What the policies need from the store, loaded for a whole batch of deliveries in two queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from ..store import Transaction
from ..store._recent import PastDelivery, PastEvent, recent_deliveries, recent_events
from ._rules import ENGAGEMENT_EVENTS, PolicyRules

__all__ = ["PastDelivery", "PastEvent", "RecentActivity", "load_recent"]


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
    topic_windows = rules.topics.windows
    if topic_windows:
        window = max([window, *(topic_windows.get(str(r.data.get("topic")), 0.0) for r in requests)])
    if window > 0:
        deliveries = recent_deliveries(tx, customer_ids, since=now - window)
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
    events = recent_events(tx, customer_ids, sorted(names), since=since) if names else {}
    return {
        cid: RecentActivity(tuple(deliveries.get(cid, ())), tuple(events.get(cid, ())))
        if cid in deliveries or cid in events else EMPTY_ACTIVITY  # most customers: one shared empty activity
        for cid in customer_ids
    }
