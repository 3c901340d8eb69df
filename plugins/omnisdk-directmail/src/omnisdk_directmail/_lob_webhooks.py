"""Lob tracking webhooks: the `Lob-Signature` check and the mail-piece events as touchpoints.

Signature: hex HMAC-SHA256 over `timestamp + "." + raw body` with the webhook secret. Lob's
timestamp header has been seen in milliseconds (the published integrations use `Date.now()`), and
the documentation we could reach does not say, so a value above 10^11 is read as milliseconds and
anything smaller as seconds; either way it must lie within the tolerance (300 s by default) of now,
past or future, or the request is treated as a replay.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from omnisdk import Events, WebhookError, WebhookEvent, WebhookRequest, WebhookResult
from omnisdk.providers import fresh_timestamp, signatures_match, webhook_json

__all__ = ["TRACKING_EVENTS", "parse_tracking_event", "verify_signature"]

#: Lob event types (after "postcard." / "letter.") and the touchpoint each one records.
TRACKING_EVENTS: Final[Mapping[str, str]] = {
    "mailed": Events.MAIL_MAILED,
    "in_transit": Events.MAIL_IN_TRANSIT,
    "in_local_area": Events.MAIL_IN_TRANSIT,
    "processed_for_delivery": Events.MAIL_IN_TRANSIT,
    "re-routed": Events.MAIL_IN_TRANSIT,
    "delivered": Events.MAIL_DELIVERED,
    "returned_to_sender": Events.MAIL_RETURNED,
}
MILLISECONDS_ABOVE = 10**11


def verify_signature(request: WebhookRequest, secret: str, *, now: float, tolerance: float) -> None:
    """Raise `WebhookError` (401) unless the body was signed with `secret` recently."""
    if not secret:
        raise WebhookError("Lob webhooks need webhook_secret in the direct_mail channel config", status=401)
    signature, timestamp = request.header("Lob-Signature"), request.header("Lob-Signature-Timestamp")
    if not signature or not timestamp:
        raise WebhookError("Lob webhook without Lob-Signature and Lob-Signature-Timestamp headers", status=401)
    fresh_timestamp(timestamp, now=now, tolerance=tolerance, what="Lob-Signature-Timestamp",
                    millis_above=MILLISECONDS_ABOVE)
    expected = hmac.new(secret.encode(), timestamp.strip().encode() + b"." + request.body, hashlib.sha256).hexdigest()
    if not signatures_match(expected, signature.strip().lower()):
        raise WebhookError("Lob-Signature does not match the body", status=401)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _occurred_at(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_tracking_event(request: WebhookRequest) -> WebhookResult:
    """A mail-piece tracking event as a touchpoint; other Lob events are acknowledged and ignored."""
    payload = webhook_json(request.body, provider="Lob")
    if not isinstance(payload, dict) or not isinstance(payload.get("event_type"), dict):
        raise WebhookError("Lob webhook body has no event_type", status=400)
    event_type = str(payload["event_type"].get("id") or "")
    kind, _, status = event_type.partition(".")
    name = TRACKING_EVENTS.get(status)
    if name is None or kind not in ("postcard", "letter"):
        return WebhookResult()
    piece = _mapping(payload.get("body"))
    metadata = _mapping(piece.get("metadata"))
    properties = {"lob_event": event_type, "piece": kind, "status": status}
    if piece.get("expected_delivery_date"):
        properties["expected_delivery_date"] = str(piece["expected_delivery_date"])
    event = WebhookEvent(
        name=name,
        channel="direct_mail",
        id=f"lob:{payload['id']}" if payload.get("id") else None,
        provider_message_id=str(piece.get("id") or payload.get("reference_id") or "") or None,
        delivery_id=metadata.get("omnisdk_delivery_id"),
        properties=properties,
        occurred_at=_occurred_at(payload.get("date_created")),
    )
    return WebhookResult(events=[event])
