"""The provider conformance kit, run against the POS providers: Square (offers out, webhooks in), Shopify (webhooks)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from _pos_helpers import SHOPIFY_SECRET, SQUARE_KEY, SQUARE_URL, shopify_headers, square_event, square_headers
from omnisdk_pos import ShopifyPOS, SquarePOS

from omnisdk import Outgoing, PosOffer, WebhookRequest
from omnisdk.testing.conformance import ProviderSuite, Reply, Requirements

#: One answer that reads as each Loyalty call the offer makes (search, program, adjust, reward).
LOYALTY_ANSWERS = {"loyalty_accounts": [{"id": "loy-1"}], "program": {"reward_tiers": [{"id": "T10", "points": 100}]},
                   "event": {"id": "evt-adjust-1"}, "reward": {"id": "rwd-1"}}


class TestSquareConformance(ProviderSuite):
    provider = SquarePOS
    config: ClassVar[dict[str, Any]] = {"access_token": "EAAAl-conformance", "signature_key": SQUARE_KEY,
                                        "notification_url": SQUARE_URL, "reward_tiers": {"10%": "T10"}}
    invalid_settings: ClassVar[dict[str, Any]] = {"inventory_cache_seconds": 0, "lookup_timeout": -1}
    ok_reply = Reply(200, body=LOYALTY_ANSWERS)
    reject_reply = Reply(400, body={"errors": [{"category": "INVALID_REQUEST_ERROR", "code": "BAD_REQUEST",
                                                "detail": "bad request"}]})
    signature_headers = ("x-square-hmacsha256-signature",)

    def outgoing(self, i: int) -> Outgoing:
        return self.make_outgoing(to=f"SQCUSTOMER{i}", content=PosOffer(title="10% off", discount_percent=10))

    def webhook(self) -> WebhookRequest:
        body = square_event("payment.updated", {"payment": {
            "id": "pay-1", "status": "COMPLETED", "customer_id": "SQ9", "order_id": "ord-1",
            "amount_money": {"amount": 2000, "currency": "USD"}}})
        return WebhookRequest(method="POST", url=SQUARE_URL, headers=square_headers(body), body=body)


class TestShopifyConformance(ProviderSuite):
    """Shopify POS only receives webhooks: the kit checks config, secrets and webhooks, and that sends refuse."""

    provider = ShopifyPOS
    config: ClassVar[dict[str, Any]] = {"webhook_secret": SHOPIFY_SECRET}
    requirements = Requirements(sends=False)
    signature_headers = ("X-Shopify-Hmac-Sha256",)

    def outgoing(self, i: int) -> Outgoing:
        return self.make_outgoing(to=f"gid://shopify/Customer/{i}", content=PosOffer(title="10% off"))

    def webhook(self) -> WebhookRequest:
        body = json.dumps({"id": 820982911946154508, "email": "jon@example.com", "total_price": "199.00",
                           "currency": "USD", "source_name": "pos", "financial_status": "paid",
                           "created_at": "2026-01-05T12:30:00Z", "updated_at": "2026-01-05T12:30:00Z"}).encode()
        return WebhookRequest(method="POST", url="https://shop.example/webhooks/shopify", body=body,
                              headers={**shopify_headers(body, "orders/paid"), "X-Shopify-Webhook-Id": "wh-1"})
