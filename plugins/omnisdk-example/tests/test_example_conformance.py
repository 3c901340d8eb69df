"""The example plugin of docs/plugin-authoring.md passes the conformance kit."""

import hashlib
import hmac
import json

from omnisdk_example import AcmeSMS

import omnisdk
from omnisdk.testing.conformance import ProviderSuite, Reply


class TestAcmeConformance(ProviderSuite):
    provider = AcmeSMS
    config = {"api_key": "acme-key-1", "webhook_secret": "acme-hook-secret", "from": "+15550001111"}  # noqa: RUF012
    invalid_settings = {"from": "Acme"}  # noqa: RUF012
    ok_reply = Reply(201, body={"id": "msg-1"})
    reject_reply = Reply(400, body={"error": "invalid recipient"})
    signature_headers = ("X-Acme-Signature",)

    def outgoing(self, i):
        return self.make_outgoing(to=f"+1415555{i:04d}", content=omnisdk.SMS(text="Your order is ready"))

    def webhook(self):
        body = json.dumps({"event_id": "evt-1", "message_id": "msg-1", "status": "delivered"}).encode()
        signature = hmac.new(b"acme-hook-secret", body, hashlib.sha256).hexdigest()
        return omnisdk.WebhookRequest(method="POST", url="https://shop.example/omnisdk/webhooks/acme",
                                      headers={"X-Acme-Signature": signature}, body=body)
