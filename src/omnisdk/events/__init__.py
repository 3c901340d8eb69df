"""The outbound event stream: `omni.events(after=cursor)` and signed event webhooks.

A receiver checks each request with `verify_signature(body, headers["Omnisdk-Signature"], secret)`
and keeps one of each `Omnisdk-Event-Id` (delivery is at least once).
"""

from ._signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign, verify_signature
from ._stream import Event, EventPage
from ._webhooks import EventWebhooks, WebhookEndpoint, endpoints_from_config

__all__ = [
    "EVENT_ID_HEADER", "SIGNATURE_HEADER", "Event", "EventPage", "EventWebhooks", "WebhookEndpoint",
    "endpoints_from_config", "sign", "verify_signature",
]
