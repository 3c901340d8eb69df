"""Delivery: the outbox, the dispatcher, and inbound webhooks (send-time policies live in `omnisdk.policies`)."""

from ._dispatcher import Dispatcher
from ._limits import CircuitBreaker, TokenBucket, retry_delay
from ._outbox import DELIVERY_STATUSES, cancel_run_deliveries, enqueue_delivery
from ._providers import ConfiguredProvider, ProviderPool, new_http_client
from ._records import Decision, Delivery, query_deliveries
from ._sending import SendContext
from ._settings import DeliverySettings
from ._webhooks import MAX_WEBHOOK_BYTES, WebhookHandler

__all__ = [
    "DELIVERY_STATUSES",
    "MAX_WEBHOOK_BYTES",
    "CircuitBreaker",
    "ConfiguredProvider",
    "Decision",
    "Delivery",
    "DeliverySettings",
    "Dispatcher",
    "ProviderPool",
    "SendContext",
    "TokenBucket",
    "WebhookHandler",
    "cancel_run_deliveries",
    "enqueue_delivery",
    "new_http_client",
    "query_deliveries",
    "retry_delay",
]
