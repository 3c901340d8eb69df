"""Vonage (Nexmo) SMS API: errors arrive inside HTTP 200, one status per message part.

Delivery receipts and inbound messages are accepted only when signed (Vonage "signed webhooks",
`signature_secret`): an unsigned webhook could forge a STOP or a delivery. Vonage cannot answer
an inbound message inline, so STOP/START are recorded as consent changes and not confirmed here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import attrs
import httpx

import omnisdk
from omnisdk.providers import (
    InDoubt,
    NotSent,
    Outcome,
    Reconciliation,
    StillUnknown,
    absent,
    fresh_timestamp,
    http_error_outcome,
    lookup_error,
    lookup_window,
    reconcile_each,
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
DEFAULT_BASE_URL: Final = "https://rest.nexmo.com"
REPORTS_URL: Final = "https://api.nexmo.com"
#: The Reports API serves records of at most 24 hours per request.
REPORTS_WINDOW: Final = timedelta(hours=24)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    capabilities = omnisdk.Capabilities(max_batch_size=1, rate_limit=30.0, reconcile=True)
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
        base_url: str = attrs.field(default=DEFAULT_BASE_URL, validator=HTTP_URL)
        #: The Reports API, where a message whose send outcome is unknown is looked up by its client-ref;
        #: by default api.nexmo.com, or `base_url` when that points elsewhere (a gateway serving both).
        reports_url: str | None = attrs.field(default=None, validator=OPTIONAL_HTTP_URL)
        #: Seconds after an attempt before a message missing from the Reports API counts as not sent.
        reconcile_lag: float = attrs.field(default=300.0, validator=attrs.validators.ge(0))
        #: How far Vonage's clock may be from ours, in seconds: the lookup window's margin.
        clock_skew: float = attrs.field(default=120.0, validator=attrs.validators.ge(0))

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

    @property
    def _reports_url(self) -> str:
        url = self.config.reports_url
        if url is None:
            url = REPORTS_URL if self.config.base_url.rstrip("/") == DEFAULT_BASE_URL else self.config.base_url
        return url.rstrip("/")

    async def reconcile(self, batch: Sequence[InDoubt]) -> Sequence[Reconciliation]:
        return await reconcile_each(batch, self._reconcile_one)

    async def _reconcile_one(self, item: InDoubt) -> Reconciliation:
        """Every send carries the delivery id as `client-ref`, which the Reports API keeps on each record:
        read the outbound SMS records of the attempt's window and find ours."""
        content = check_outgoing(item.outgoing)
        if isinstance(content, omnisdk.PermanentError):
            return NotSent(reason=f"never sendable: {content.reason}")
        now = self.clock.now()
        start, end = lookup_window(item, now, skew=self.config.clock_skew)
        end = min(end, start + REPORTS_WINDOW)
        query = {"account_id": self.config.api_key, "product": "SMS", "direction": "outbound",
                 "date_start": _iso(start), "date_end": _iso(end)}
        response = await self.http.get(f"{self._reports_url}/v2/reports/records", params=query,
                                       auth=(self.config.api_key, self.config.api_secret))
        if response.status_code != 200:
            return lookup_error(response, "vonage's Reports API", self.clock.timestamp())
        body = response_object(response)
        records = body.get("records")
        if not isinstance(records, list):
            return StillUnknown(reason="vonage's Reports API answered without records")
        if body.get("request_status", "SUCCESS") != "SUCCESS":  # TRUNCATED: ours may be among the missing
            return StillUnknown(reason=f"vonage's Reports API answered {body.get('request_status')}")
        ref = item.outgoing.delivery_id[:MAX_CLIENT_REF]
        ours = next((r for r in records if isinstance(r, dict) and r.get("client_ref") == ref
                     and isinstance(r.get("message_id"), str)), None)
        if ours is not None:
            return omnisdk.Accepted(provider_message_id=ours["message_id"], details=segment_details(content.text))
        return absent(item, now, lag=self.config.reconcile_lag, where="vonage's Reports API")

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
