"""Both SMS providers pass the provider conformance kit."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlencode

from omnisdk_sms import TwilioSMS, VonageSMS
from omnisdk_sms.twilio import twilio_signature
from omnisdk_sms.vonage import vonage_signature

import omnisdk
from omnisdk.testing.conformance import ProviderSuite, Reply, Requirements

ACCOUNT_SID = "AC" + "1" * 32
HOOK_URL = "https://shop.example/omnisdk/webhooks/twilio"


def sms_outgoing(i: int) -> omnisdk.Outgoing:
    return ProviderSuite.make_outgoing(to=f"+1415555{i:04d}", content=omnisdk.SMS(text="Your cart misses you"))


class TestTwilioConformance(ProviderSuite):
    provider = TwilioSMS
    config: ClassVar[Mapping[str, Any]] = {
        "account_sid": ACCOUNT_SID, "auth_token": "tw-secret-token-1", "from": "+14155550100"
    }
    invalid_settings: ClassVar[Mapping[str, Any]] = {
        "from": "+1 (nope)!", "account_sid": "XX123", "status_callback": "ftp://x", "base_url": "nope"
    }
    ok_reply = Reply(201, body={"sid": "SM" + "a" * 32, "status": "queued", "num_segments": "1"})
    reject_reply = Reply(400, body={"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400})
    signature_headers = ("X-Twilio-Signature",)

    def outgoing(self, i: int) -> omnisdk.Outgoing:
        return sms_outgoing(i)

    def webhook(self) -> omnisdk.WebhookRequest:
        params = {"MessageSid": "SM" + "b" * 32, "MessageStatus": "delivered", "To": "+14155550001"}
        signature = twilio_signature("tw-secret-token-1", HOOK_URL, {k: [v] for k, v in params.items()})
        return omnisdk.WebhookRequest(
            method="POST",
            url=HOOK_URL,
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
            body=urlencode(params).encode(),
        )


class TestVonageConformance(ProviderSuite):
    provider = VonageSMS
    config: ClassVar[Mapping[str, Any]] = {
        "api_key": "abcd1234",
        "api_secret": "vonage-api-secret-1",
        "from": "AcmeShop",
        "signature_secret": "vonage-signing-secret-1",
        "signature_method": "sha256",
    }
    invalid_settings: ClassVar[Mapping[str, Any]] = {"signature_method": "rot13", "from": "+1"}
    requirements = Requirements(webhook_timestamps=True)
    ok_reply = Reply(200, body={"message-count": "1", "messages": [
        {"to": "14155550000", "message-id": "0A0000001234567B", "status": "0", "message-price": "0.0333"}]})
    reject_reply = Reply(401, body={"type": "https://developer.vonage.com/api-errors#unauthorized"})

    def outgoing(self, i: int) -> omnisdk.Outgoing:
        return sms_outgoing(i)

    def signed(self, params: dict[str, str], secret: str = "vonage-signing-secret-1") -> omnisdk.WebhookRequest:
        params = {**params, "sig": vonage_signature(secret, params, "sha256")}
        return omnisdk.WebhookRequest(
            method="POST", url="https://shop.example/omnisdk/webhooks/vonage",
            headers={"Content-Type": "application/x-www-form-urlencoded"}, body=urlencode(params).encode(),
        )

    def receipt(self, timestamp: float) -> dict[str, str]:
        return {"msisdn": "14155550001", "to": "AcmeShop", "messageId": "0A0000001234567B", "status": "delivered",
                "err-code": "0", "client-ref": "dlv_1", "timestamp": str(int(timestamp)), "nonce": "n-1"}

    def webhook(self) -> omnisdk.WebhookRequest:
        return self.signed(self.receipt(time.time()))

    def unsigned_webhook(self) -> omnisdk.WebhookRequest:
        return omnisdk.WebhookRequest(method="POST", url="https://shop.example/omnisdk/webhooks/vonage",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"},
                                      body=urlencode(self.receipt(time.time())).encode())

    def stale_webhook(self) -> omnisdk.WebhookRequest:
        return self.signed(self.receipt(time.time() - 3600))
