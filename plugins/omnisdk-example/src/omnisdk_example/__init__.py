"""A minimal omnisdk provider plugin: Acme SMS, a JSON API with HMAC-signed delivery webhooks."""

import hashlib
import hmac
import json

import attrs
import httpx

import omnisdk
from omnisdk.providers import http_error_outcome, retry_after_seconds, signatures_match, transport_error_outcome


class AcmeSMS(omnisdk.Provider):
    name = "acme"
    channel = "sms"
    capabilities = omnisdk.Capabilities(max_batch_size=1, idempotency_keys=True)

    @attrs.define(kw_only=True)
    class Config:
        api_key: str = omnisdk.secret()
        webhook_secret: str = omnisdk.secret()
        from_: str = attrs.field(validator=attrs.validators.matches_re(r"\+[1-9]\d{6,14}"))
        base_url: str = "https://api.acme-sms.example"

    async def send(self, batch):
        outcomes = []
        for message in batch:
            try:
                response = await self.http.post(
                    f"{self.config.base_url}/v1/messages",
                    json={"from": self.config.from_, "to": message.to, "text": message.content.text},
                    headers={"Authorization": f"Bearer {self.config.api_key}",
                             "Idempotency-Key": message.idempotency_key},
                )
            except httpx.TransportError as exc:
                outcomes.append(transport_error_outcome(exc))
                continue
            if response.status_code == 201:
                outcomes.append(omnisdk.Accepted(provider_message_id=response.json()["id"]))
            else:
                wait = retry_after_seconds(response.headers.get("Retry-After"), self.clock.timestamp())
                outcomes.append(http_error_outcome(response.status_code, f"acme {response.status_code}",
                                                   retry_after=wait))
        return outcomes

    def verify_webhook(self, request):
        expected = hmac.new(self.config.webhook_secret.encode(), request.body, hashlib.sha256).hexdigest()
        if not signatures_match(expected, request.header("X-Acme-Signature")):
            raise omnisdk.WebhookError("bad or missing X-Acme-Signature", status=401)

    def parse_webhook(self, request):
        event = json.loads(request.body)
        name = {"delivered": omnisdk.Events.MESSAGE_DELIVERED}.get(event["status"], omnisdk.Events.MESSAGE_FAILED)
        return omnisdk.WebhookResult(events=[omnisdk.WebhookEvent(
            name=name, channel="sms", id=event["event_id"], provider_message_id=event["message_id"])])


@omnisdk.hookimpl
def register_providers(register):
    register(AcmeSMS)
