"""Shared by the POS plugin tests: signing Square and Shopify webhooks as the providers do."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

SQUARE_KEY = "sq-signature-key"
SQUARE_URL = "https://shop.example/webhooks/square"
SHOPIFY_SECRET = "hush"


def square_headers(body: bytes, key: str = SQUARE_KEY, url: str = SQUARE_URL) -> dict[str, str]:
    digest = hmac.new(key.encode(), url.encode() + body, hashlib.sha256).digest()
    return {"content-type": "application/json", "x-square-hmacsha256-signature": base64.b64encode(digest).decode()}


def shopify_headers(body: bytes, topic: str, secret: str = SHOPIFY_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {"Content-Type": "application/json", "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode()}


def square_event(kind: str, obj: dict[str, Any], event_id: str = "evt-1") -> bytes:
    return json.dumps({"merchant_id": "M1", "type": kind, "event_id": event_id,
                       "created_at": "2026-01-05T12:30:00Z", "data": {"type": kind.split(".")[0], "id": "x",
                                                                      "object": obj}}).encode()
