"""WhatsApp Cloud and Messenger pass the provider conformance kit."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from omnisdk_social import Messenger, WhatsAppCloud

from omnisdk import Outgoing, Social, WebhookRequest
from omnisdk.testing.conformance import ProviderSuite, Reply

APP_SECRET = "meta-app-secret-1"
GRAPH_REJECT = Reply(400, body={"error": {"message": "(#100) Invalid parameter", "type": "OAuthException",
                                          "code": 100, "fbtrace_id": "A1"}})


def signed(body: Mapping[str, Any]) -> WebhookRequest:
    raw = json.dumps(body, separators=(",", ":")).encode()
    signature = "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return WebhookRequest(method="POST", url="https://shop.example/omnisdk/webhooks/meta",
                          headers={"X-Hub-Signature-256": signature, "Content-Type": "application/json"}, body=raw)


def in_window(to: str) -> Outgoing:
    # The window is measured on the provider's clock: the system clock, as the kit builds it.
    return ProviderSuite.make_outgoing(to=to, content=Social(text="Your cart is waiting"),
                                       last_inbound_at=datetime.now(UTC) - timedelta(hours=1))


class TestWhatsAppConformance(ProviderSuite):
    provider = WhatsAppCloud
    config: ClassVar[Mapping[str, Any]] = {"phone_number_id": "106540352242922", "access_token": "EAAG-wa-token",
                                           "app_secret": APP_SECRET, "verify_token": "verify-me"}
    invalid_settings: ClassVar[Mapping[str, Any]] = {"phone_number_id": "+1 631 555"}
    ok_reply = Reply(200, body={"messaging_product": "whatsapp", "contacts": [{"input": "x", "wa_id": "1"}],
                                "messages": [{"id": "wamid.conformance"}]})
    reject_reply = GRAPH_REJECT
    signature_headers = ("X-Hub-Signature-256",)

    def outgoing(self, i: int) -> Outgoing:
        return in_window(f"+1631555{i:04d}")

    def webhook(self) -> WebhookRequest:
        message = {"from": "16315551181", "id": "wamid.in1", "timestamp": "1504902988", "type": "text",
                   "text": {"body": "Is it in stock?"}}
        return signed({"object": "whatsapp_business_account", "entry": [{"id": "0", "changes": [
            {"field": "messages", "value": {"messaging_product": "whatsapp", "messages": [message]}}]}]})


class TestMessengerConformance(ProviderSuite):
    provider = Messenger
    config: ClassVar[Mapping[str, Any]] = {"page_access_token": "EAAG-page-token", "app_secret": APP_SECRET,
                                           "verify_token": "verify-me"}
    invalid_settings: ClassVar[Mapping[str, Any]] = {"page_id": "My Shop Page"}
    ok_reply = Reply(200, body={"recipient_id": "PSID", "message_id": "m_conformance"})
    reject_reply = GRAPH_REJECT
    signature_headers = ("X-Hub-Signature-256",)

    def outgoing(self, i: int) -> Outgoing:
        return in_window(f"PSID-{i}")

    def webhook(self) -> WebhookRequest:
        return signed({"object": "page", "entry": [{"id": "PAGE", "time": 1, "messaging": [
            {"sender": {"id": "PSID-1"}, "recipient": {"id": "PAGE"}, "timestamp": 1700000000000,
             "message": {"mid": "m_in1", "text": "hello"}}]}]})
