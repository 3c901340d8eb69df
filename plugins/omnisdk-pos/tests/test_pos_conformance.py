"""The provider conformance kit, run against the Square POS provider (offers out, webhooks in)."""

from __future__ import annotations

from typing import Any, ClassVar

from _pos_helpers import SQUARE_KEY, SQUARE_URL, square_event, square_headers
from omnisdk_pos import SquarePOS

from omnisdk import Outgoing, PosOffer, WebhookRequest
from omnisdk.testing.conformance import ProviderSuite, Reply

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
