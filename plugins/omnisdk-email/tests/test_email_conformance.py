"""The three email providers pass the provider conformance kit."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from omnisdk_email import MailgunEmail, SendGridEmail, SMTPEmail

import omnisdk
from omnisdk.testing.conformance import ProviderSuite, Reply, Requirements, SMTPEndpoint

# The official SendGrid Event Webhook vector (webhook_vectors.md §2).
SENDGRID_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eN"
    "Ec6wEA3F+g=="
)
SENDGRID_WRONG_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R"
    "1NGe1OPzpA=="
)
SENDGRID_SIGNATURE = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
)
SENDGRID_TIMESTAMP = "1600112502"
SENDGRID_BODY = (
    b'[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address","sg_event_id":'
    b'"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA","sg_message_id":'
    b'"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0","smtp-id":'
    b'"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]\r\n'
)
# The derived Mailgun vector (webhook_vectors.md §7).
MAILGUN_KEY = "key-7e55d003b2ff6c1e5d4b1e9b5a2e8a11"
MAILGUN_SIGNATURE = {
    "timestamp": "1770920772",
    "token": "e0b5477167110d68991efc6b9f89f0a11066af27834600e123",
    "signature": "4c13889705cabfa1240050a694d193ad97aea74163061534dd62b1efac8cb557",
}


def email_outgoing(i: int) -> omnisdk.Outgoing:
    content = omnisdk.Email(subject="Your cart is waiting", text="Come back", html="<p>Come back</p>")
    return ProviderSuite.make_outgoing(
        to=f"ada{i}@example.com", content=content,
        metadata={"unsubscribe_url": f"https://shop.example/u/token-{i}"},
    )


def sendgrid_webhook(body: bytes = SENDGRID_BODY, timestamp: str = SENDGRID_TIMESTAMP) -> omnisdk.WebhookRequest:
    return omnisdk.WebhookRequest(
        method="POST", url="https://shop.example/omnisdk/webhooks/sendgrid",
        headers={"Content-Type": "application/json", "X-Twilio-Email-Event-Webhook-Signature": SENDGRID_SIGNATURE,
                 "X-Twilio-Email-Event-Webhook-Timestamp": timestamp},
        body=body,
    )


def mailgun_webhook(signature: Mapping[str, str] = MAILGUN_SIGNATURE) -> omnisdk.WebhookRequest:
    body = {"signature": dict(signature), "event-data": {
        "id": "CPgfbmQMTCKtHW6uIWtuVe", "event": "delivered", "timestamp": 1770920770.5, "recipient": "ada@example.com",
        "message": {"headers": {"message-id": "20260212.abc@mg.acme.example"}},
        "user-variables": {"omnisdk_delivery_id": "dlv_1"}}}
    return omnisdk.WebhookRequest(method="POST", url="https://shop.example/omnisdk/webhooks/mailgun",
                                  headers={"Content-Type": "application/json"}, body=json.dumps(body).encode())


class TestSMTPConformance(ProviderSuite):
    provider = SMTPEmail
    config: ClassVar[Mapping[str, Any]] = {
        "host": "127.0.0.1", "from": "Acme <hello@acme.example>", "username": "shop", "password": "smtp-pass-1",
        "timeout": 0.5, "starttls": False,
    }
    invalid_settings: ClassVar[Mapping[str, Any]] = {"from": "not an address", "port": 70000, "timeout": 0}
    requirements = Requirements(webhooks=False, retry_after=False)

    def endpoint(self) -> SMTPEndpoint:
        return SMTPEndpoint(auth=("shop", "smtp-pass-1"))

    def outgoing(self, i: int) -> omnisdk.Outgoing:
        return email_outgoing(i)


class TestSendGridConformance(ProviderSuite):
    provider = SendGridEmail
    config: ClassVar[Mapping[str, Any]] = {
        "api_key": "SG.conformance-secret-key", "from": "Acme <hello@acme.example>", "webhook_public_key": SENDGRID_KEY,
    }
    invalid_settings: ClassVar[Mapping[str, Any]] = {"webhook_public_key": "bm90IGEga2V5", "from": "acme"}
    requirements = Requirements(webhook_timestamps=True)
    ok_reply = Reply(202, {"X-Message-Id": "LRzXl_NHStOGhQ4kofSm_A"})
    reject_reply = Reply(400, body={"errors": [{"message": "Invalid email", "field": "personalizations.0.to"}]})
    signature_headers = ("X-Twilio-Email-Event-Webhook-Signature",)
    webhook_time = datetime.fromtimestamp(int(SENDGRID_TIMESTAMP) + 5, UTC)

    def outgoing(self, i: int) -> omnisdk.Outgoing:
        return email_outgoing(i)

    def webhook(self) -> omnisdk.WebhookRequest:
        return sendgrid_webhook()

    def wrong_key_settings(self) -> Mapping[str, Any]:
        return {**self.config, "webhook_public_key": SENDGRID_WRONG_KEY}

    def stale_webhook(self) -> omnisdk.WebhookRequest:
        return sendgrid_webhook()  # verified an hour later, see test below

    def test_stale_webhook_is_refused(self) -> None:
        provider = self.build()
        provider.clock.advance(hours=1)  # type: ignore[attr-defined]
        try:
            provider.verify_webhook(self.stale_webhook())
        except omnisdk.WebhookError as exc:
            assert exc.status == 401
        else:
            raise AssertionError("a webhook signed an hour ago was accepted")


class TestMailgunConformance(ProviderSuite):
    provider = MailgunEmail
    config: ClassVar[Mapping[str, Any]] = {
        "api_key": "key-conformance-api", "domain": "mg.acme.example", "from": "hello@mg.acme.example",
        "webhook_signing_key": MAILGUN_KEY,
    }
    invalid_settings: ClassVar[Mapping[str, Any]] = {"domain": "not a domain", "base_url": "api.mailgun.net"}
    requirements = Requirements(webhook_timestamps=True)
    ok_reply = Reply(200, body={"id": "<20260212.abc@mg.acme.example>", "message": "Queued. Thank you."})
    reject_reply = Reply(400, body={"message": "'to' parameter is not a valid address. please check documentation"})
    webhook_time = datetime.fromtimestamp(int(MAILGUN_SIGNATURE["timestamp"]) + 5, UTC)

    def outgoing(self, i: int) -> omnisdk.Outgoing:
        return email_outgoing(i)

    def webhook(self) -> omnisdk.WebhookRequest:
        return mailgun_webhook()

    def tampered_webhook(self) -> omnisdk.WebhookRequest:
        return mailgun_webhook({**MAILGUN_SIGNATURE, "token": MAILGUN_SIGNATURE["token"][:-1] + "4"})

    def unsigned_webhook(self) -> omnisdk.WebhookRequest:
        body = json.loads(mailgun_webhook().body)
        del body["signature"]
        return omnisdk.WebhookRequest(method="POST", url="https://shop.example/omnisdk/webhooks/mailgun",
                                      headers={}, body=json.dumps(body).encode())

    def stale_webhook(self) -> omnisdk.WebhookRequest:
        from omnisdk_email.mailgun import mailgun_signature

        timestamp = str(int(MAILGUN_SIGNATURE["timestamp"]) - 3600)
        token = "f" * 50
        return mailgun_webhook({"timestamp": timestamp, "token": token,
                                "signature": mailgun_signature(MAILGUN_KEY, timestamp, token)})

