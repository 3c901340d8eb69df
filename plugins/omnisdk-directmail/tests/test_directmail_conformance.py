"""The provider conformance kit, run against the Lob direct-mail provider."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any, ClassVar

from omnisdk_directmail import LobDirectMail

import omnisdk
from omnisdk import Outgoing, WebhookRequest
from omnisdk.testing.conformance import ProviderSuite, Reply, Requirements

SIGNED_AT = 1_700_000_000
#: One answer that reads as a verification (deliverable) and as a created piece.
VERIFIED_AND_CREATED = {"id": "psc_conformance1", "deliverability": "deliverable", "primary_line": "185 BERRY ST",
                        "components": {"city": "SAN FRANCISCO", "state": "CA", "zip_code": "94107"},
                        "expected_delivery_date": "2026-03-09"}


def signed(body: bytes, secret: str = "whsec_conformance", at: int = SIGNED_AT) -> WebhookRequest:
    signature = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return WebhookRequest(method="POST", url="https://shop.example/webhooks/lob", body=body,
                          headers={"Lob-Signature": signature, "Lob-Signature-Timestamp": str(at)})


class TestLobConformance(ProviderSuite):
    provider = LobDirectMail
    config: ClassVar[dict[str, Any]] = {"api_key": "test_conformance_key", "webhook_secret": "whsec_conformance",
              "from_address": {"name": "Acme", "line1": "210 King St", "city": "San Francisco", "state": "CA",
                               "postal_code": "94107"}}
    invalid_settings: ClassVar[dict[str, Any]] = {"lead_time_days": -2, "from_address": {"name": "Acme"}}
    requirements = Requirements(webhooks=True, webhook_timestamps=True)
    ok_reply = Reply(200, body=VERIFIED_AND_CREATED)
    reject_reply = Reply(422, body={"error": {"message": "address_line1 is required", "status_code": 422,
                                              "code": "invalid"}})
    signature_headers = ("Lob-Signature",)
    webhook_time = datetime.fromtimestamp(SIGNED_AT + 5, UTC)

    def outgoing(self, i: int) -> Outgoing:
        address = {"name": f"Ada {i}", "line1": "185 Berry St", "city": "San Francisco", "state": "CA",
                   "postal_code": "94107"}
        return self.make_outgoing(to=f"postal-{i}", content=omnisdk.Postcard(front_html="<h1>Hi</h1>",
                                                                            back_html="<p>Back</p>"), address=address)

    def webhook(self) -> WebhookRequest:
        return signed(b'{"id":"evt_1","event_type":{"id":"postcard.in_transit","resource":"postcards"},'
                      b'"body":{"id":"psc_conformance1","metadata":{"omnisdk_delivery_id":"d-1"}}}')

    def stale_webhook(self) -> WebhookRequest:
        return signed(self.webhook().body, at=SIGNED_AT - 3600)
