"""Vonage (Nexmo) SMS API: errors arrive inside HTTP 200, one status per message part.

Delivery receipts and inbound messages are accepted only when signed (Vonage "signed webhooks",
`signature_secret`): an unsigned webhook could forge a STOP or a delivery. Vonage cannot answer
an inbound message inline, so STOP/START are recorded as consent changes and not confirmed here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any, Final

import attrs
import httpx

import omnisdk
from omnisdk.providers import (
    Outcome,
    fresh_timestamp,
    http_error_outcome,
    response_object,
    retry_after_seconds,
    signatures_match,
    transport_error_outcome,
)

from ._common import (
    HTTP_URL,
    OPTIONAL_HTTP_URL,
    check_outgoing,
    inbound_event,
    segment_details,
    sender,
    single_values,
    webhook_params,
)

__all__ = ["VonageSMS", "vonage_signature"]

#: Statuses worth retrying: 1 throttled, 5 internal error, 10 too many existing binds.
RETRYABLE_STATUSES: Final = frozenset({"1", "5", "10"})
#: 33: the number was deactivated; it will never take messages again.
DEAD_NUMBER_STATUSES: Final = frozenset({"33"})
SIGNATURE_METHODS: Final = ("md5hash", "md5", "sha1", "sha256", "sha512")
#: Vonage's documented limits, as its SDK's `SmsMessage` enforces them.
MAX_CALLBACK: Final = 100
MAX_CLIENT_REF: Final = 100


def _short_callback(_instance: object, _attribute: Any, value: str | None) -> None:
    """attrs validator: a longer `callback` would be refused (or cut) by Vonage, so refuse it at startup."""
    if value is not None and len(value) > MAX_CALLBACK:
        raise omnisdk.ConfigError(
            f"Vonage accepts a callback URL of at most {MAX_CALLBACK} characters, this one has {len(value)}",
            field="status_callback",
        )


def vonage_signature(secret: str, params: dict[str, str], method: str = "md5hash") -> str:
    """Vonage's signature: `&name=value` for each sorted parameter (`&`, `=` in values as `_`), hashed."""
    payload = "".join(
        f"&{name}={params[name].replace('&', '_').replace('=', '_')}" for name in sorted(params) if name != "sig"
    ).encode()
    if method == "md5hash":
        return hashlib.md5(payload + secret.encode()).hexdigest()
    return hmac.new(secret.encode(), payload, method).hexdigest()


class VonageSMS(omnisdk.Provider):
    """`[channels.sms] provider = "vonage"`."""

    name = "vonage"
    channel = "sms"
    capabilities = omnisdk.Capabilities(max_batch_size=1, rate_limit=30.0)
    #: Vonage calls webhooks with the method chosen in the dashboard: GET, POST or POST-JSON.
    webhook_methods = frozenset({"GET", "POST"})

    @attrs.define(kw_only=True)
    class Config:
        api_key: str = omnisdk.secret()
        api_secret: str = omnisdk.secret()
        from_: str = attrs.field(validator=sender)
        #: Signs delivery receipts and inbound messages; webhooks are refused without it.
        signature_secret: str | None = omnisdk.secret(None)
        signature_method: str = attrs.field(default="md5hash", validator=attrs.validators.in_(SIGNATURE_METHODS))
        #: Oldest signed webhook accepted, in seconds (replay protection).
        webhook_tolerance: float = 300.0
        status_callback: str | None = attrs.field(default=None, validator=[OPTIONAL_HTTP_URL, _short_callback])
        base_url: str = attrs.field(default="https://rest.nexmo.com", validator=HTTP_URL)

    config: Config

    async def send(self, batch: Sequence[omnisdk.Outgoing]) -> Sequence[Outcome]:
        return [await self._send_one(message) for message in batch]

    async def _send_one(self, message: omnisdk.Outgoing) -> Outcome:
        content = check_outgoing(message)
        if isinstance(content, omnisdk.PermanentError):
            return content
        details = segment_details(content.text)
        form = {
            "api_key": self.config.api_key,
            "api_secret": self.config.api_secret,
            "from": self.config.from_.removeprefix("+"),
            "to": message.to.removeprefix("+"),
            "text": content.text,
            "type": "unicode" if details["encoding"] == "UCS-2" else "text",
            "client-ref": message.delivery_id[:MAX_CLIENT_REF],
        }
        if self.config.status_callback:
            form["callback"] = self.config.status_callback
        try:
            response = await self.http.post(f"{self.config.base_url.rstrip('/')}/sms/json", data=form)
        except httpx.TransportError as exc:
            return transport_error_outcome(exc)
        if response.status_code != 200:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"), self.clock.timestamp())
            return http_error_outcome(response.status_code, f"vonage {response.status_code}", retry_after=retry_after)
        parts = response_object(response).get("messages")
        if not isinstance(parts, list) or not parts or not all(isinstance(p, dict) for p in parts):
            return omnisdk.RetryableError(reason="vonage answered 200 without message statuses", status=200)
        failed = next((p for p in parts if str(p.get("status")) != "0"), None)
        if failed is not None:
            return self._error(str(failed.get("status")), str(failed.get("error-text", "")))
        cost = sum(float(p.get("message-price", 0) or 0) for p in parts)
        return omnisdk.Accepted(provider_message_id=str(parts[0].get("message-id")), cost=cost, details=details)

    @staticmethod
    def _error(status: str, text: str) -> Outcome:
        reason = f"vonage status {status}: {text}".rstrip(": ")
        if status in RETRYABLE_STATUSES:
            return omnisdk.RetryableError(reason=reason, retry_after=1.0 if status == "1" else None, status=200)
        return omnisdk.PermanentError(reason=reason, code=status, forget_address=status in DEAD_NUMBER_STATUSES)

    def verify_webhook(self, request: omnisdk.WebhookRequest) -> None:
        if not self.config.signature_secret:
            raise omnisdk.WebhookError("vonage webhooks need `signature_secret` (signed webhooks)", status=401)
        params = single_values(webhook_params(request))
        signature = params.get("sig")
        if not signature:
            raise omnisdk.WebhookError("missing sig parameter", status=401)
        expected = vonage_signature(self.config.signature_secret, params, self.config.signature_method)
        if not signatures_match(expected, signature.lower()):
            raise omnisdk.WebhookError("sig does not match", status=401)
        fresh_timestamp(params.get("timestamp"), now=self.clock.timestamp(), tolerance=self.config.webhook_tolerance,
                        what="timestamp parameter")

    def webhook_nonce(self, request: omnisdk.WebhookRequest) -> str | None:
        """Vonage signs a `nonce` with each request; without one, the signature itself."""
        params = webhook_params(request)
        return (params.get("nonce") or params.get("sig") or [None])[-1]

    def parse_webhook(self, request: omnisdk.WebhookRequest) -> omnisdk.WebhookResult:
        params = single_values(webhook_params(request))
        message_id = params.get("messageId", "")
        if "status" in params:
            return omnisdk.WebhookResult(events=self._receipt_events(message_id, params))
        if "text" in params and params.get("msisdn"):
            event, _ = inbound_event("vonage", message_id, "+" + params["msisdn"].lstrip("+"), params["text"])
            return omnisdk.WebhookResult(events=[event])
        return omnisdk.WebhookResult()

    @staticmethod
    def _receipt_events(message_id: str, params: dict[str, str]) -> list[omnisdk.WebhookEvent]:
        status = params["status"]
        names = {
            "delivered": omnisdk.Events.MESSAGE_DELIVERED,
            "failed": omnisdk.Events.MESSAGE_FAILED,
            "rejected": omnisdk.Events.MESSAGE_FAILED,
            "expired": omnisdk.Events.MESSAGE_FAILED,
        }
        if status not in names:
            return []  # accepted, buffered, unknown: not final
        properties: dict[str, Any] = {"status": status, "error_code": params.get("err-code", "0")}
        return [
            omnisdk.WebhookEvent(
                name=names[status],
                channel="sms",
                id=f"vonage:{message_id}:{status}",
                provider_message_id=message_id,
                delivery_id=params.get("client-ref") or None,
                properties=properties,
            )
        ]
