"""Broadcasts: one message to a segment, now, at a set time, at a local time or at each customer's
best time, queued page by page into the outbox and sent by the dispatcher like any other message."""

from ._plan import Broadcast, Timing, plan_broadcast
from ._progress import BROADCAST_STATES, BroadcastStatus, broadcast_status, cancel_broadcast, list_broadcasts
from ._worker import BroadcastSettings, BroadcastWorker

__all__ = [
    "BROADCAST_STATES",
    "Broadcast",
    "BroadcastSettings",
    "BroadcastStatus",
    "BroadcastWorker",
    "Timing",
    "broadcast_status",
    "cancel_broadcast",
    "list_broadcasts",
    "plan_broadcast",
]
