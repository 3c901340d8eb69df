"""Delivery: the outbox, the dispatcher, send-time policies, and inbound webhooks."""

from ._outbox import DELIVERY_STATUSES, cancel_run_deliveries, enqueue_delivery

__all__ = ["DELIVERY_STATUSES", "cancel_run_deliveries", "enqueue_delivery"]
