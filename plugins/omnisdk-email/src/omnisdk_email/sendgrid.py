"""SendGrid v3 Mail Send, many recipients per request, and its ECDSA-signed Event Webhook.

Messages of one batch that share their body (a broadcast) go out in one request with one
personalization each (up to 1000): subject, unsubscribe headers and our delivery id (a custom
arg, echoed in every event) stay per recipient. Messages whose bodies differ go in requests of
their own, sent concurrently.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Mapping, Sequence
from email.utils import parseaddr
from typing import Any, Final

import attrs
import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

import omnisdk
from omnisdk.providers import (
    InDoubt,
    NotSent,
    Outcome,
    Reconciliation,
    StillUnknown,
    absent,
    event_time,
    fresh_timestamp,
    http_error_outcome,
    lookup_error,
    reconcile_each,
    response_object,
    retry_after_seconds,
    transport_error_outcome,
    webhook_json,
)

from ._common import DELIVERY_ARG, HTTP_URL, check_outgoing, mailbox, unsubscribe_headers

__all__ = ["SendGridEmail", "load_verification_key"]

SIGNATURE_HEADER: Final = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER: Final = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_PERSONALIZATIONS: Final = 1000


def load_verification_key(value: str) -> ec.EllipticCurvePublicKey:
    """The Event Webhook verification key: base64 DER SubjectPublicKeyInfo, an EC P-256 key."""
    try:
        key = load_der_public_key(base64.b64decode(value, validate=True))
    except (ValueError, binascii.Error):
        raise ValueError("webhook_public_key: not a base64 DER public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("webhook_public_key: not an elliptic-curve key")
    return key


def _public_key(_instance: object, _attribute: Any, value: Any) -> None:
    if value is not None:
        load_verification_key(value)


def _address(value: str) -> dict[str, str]:
    name, email = parseaddr(value)
    return {"email": email, "name": name} if name else {"email": email}


class SendGridEmail(omnisdk.Provider):
    """`[channels.email] provider = "sendgrid"`."""

    name = "sendgrid"
    channel = "email"
    capabilities = omnisdk.Capabilities(max_batch_size=MAX_PERSONALIZATIONS, max_concurrency=16, reconcile=True)

    @attrs.define(kw_only=True)
    class Config:
        api_key: str = omnisdk.secret()
        from_: str = attrs.field(validator=mailbox)
        base_url: str = attrs.field(default="https://api.sendgrid.com", validator=HTTP_URL)
        #: The Event Webhook's verification key; webhooks are refused without it.
        webhook_public_key: str | None = attrs.field(default=None, validator=_public_key)
        #: Oldest signed webhook accepted, in seconds (replay protection).
        webhook_tolerance: float = 600.0
        unsubscribe_mailto: str | None = attrs.field(default=None, validator=mailbox)
        #: Send with mail_settings.sandbox_mode: validated by SendGrid, never delivered.
        sandbox: bool = False
        #: The account has the Email Activity add-on: a message whose send outcome is unknown is then
        #: looked up by its delivery id. Without it nothing can be looked up (see the operations docs).
        email_activity: bool = False
        #: Seconds after an attempt before a message missing from Email Activity counts as not sent.
        reconcile_lag: float = attrs.field(default=600.0, validator=attrs.validators.ge(0))

    config: Config

    async def check_credentials(self) -> Sequence[str]:
        """List the API key's scopes (GET /v3/scopes): a wrong key is a 401, a key without mail.send cannot send."""
        try:
            response = await self.http.get(f"{self.config.base_url.rstrip('/')}/v3/scopes",
                                           headers={"Authorization": f"Bearer {self.config.api_key}"})
        except httpx.TransportError as exc:
            return [f"SendGrid at {self.config.base_url} could not be reached ({type(exc).__name__})"]
        if response.status_code in (401, 403):
            return [f"SendGrid refused the API key ({response.status_code}): check channels.email.api_key"]
        if response.status_code != 200:
            return [f"SendGrid answered the scopes lookup with HTTP {response.status_code}"]
        scopes = response_object(response).get("scopes")
        if not isinstance(scopes, list) or "mail.send" not in scopes:
            return ["the SendGrid API key lacks the mail.send scope, so it cannot send"]
        return []

    async def send(self, batch: Sequence[omnisdk.Outgoing]) -> Sequence[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(batch)
        groups: dict[tuple[Any, ...], list[tuple[int, omnisdk.Outgoing, omnisdk.Email]]] = {}
        for index, message in enumerate(batch):
            content = check_outgoing(message, unsubscribe_mailto=self.config.unsubscribe_mailto)
            if isinstance(content, omnisdk.PermanentError):
                outcomes[index] = content
                continue
            key = (content.from_, content.reply_to, content.text, content.html, content.preheader,
                   tuple(content.categories), tuple(sorted(content.headers.items())))
            groups.setdefault(key, []).append((index, message, content))
        results = await asyncio.gather(*(self._send_group(group) for group in groups.values()))
        for group, outcome in zip(groups.values(), results, strict=True):
            for index, _, _ in group:
                outcomes[index] = outcome
        return [o for o in outcomes if o is not None]

    def payload(self, group: Sequence[tuple[int, omnisdk.Outgoing, omnisdk.Email]]) -> dict[str, Any]:
        """The Mail Send body for messages that share their content."""
        first = group[0][2]
        personalizations = []
        for _, message, content in group:
            personalization: dict[str, Any] = {
                "to": [{"email": message.to}],
                "subject": content.subject,
                "custom_args": {DELIVERY_ARG: message.delivery_id},
            }
            headers = unsubscribe_headers(message, self.config.unsubscribe_mailto)
            if headers:
                personalization["headers"] = headers
            personalizations.append(personalization)
        body: dict[str, Any] = {
            "personalizations": personalizations,
            "from": _address(first.from_ or self.config.from_),
            "subject": first.subject,
            "content": [{"type": t, "value": v} for t, v in (("text/plain", first.text), ("text/html", first.html))
                        if v],
        }
        if first.reply_to:
            body["reply_to"] = _address(first.reply_to)
        if first.categories:
            body["categories"] = list(first.categories)[:10]
        if first.headers:
            body["headers"] = dict(first.headers)
        if self.config.sandbox:
            body["mail_settings"] = {"sandbox_mode": {"enable": True}}
        return body

    async def _send_group(self, group: Sequence[tuple[int, omnisdk.Outgoing, omnisdk.Email]]) -> Outcome:
        try:
            response = await self.http.post(
                f"{self.config.base_url.rstrip('/')}/v3/mail/send",
                json=self.payload(group),
                headers={"Authorization": f"Bearer {self.config.api_key}"},
            )
        except httpx.TransportError as exc:
            return transport_error_outcome(exc)
        if response.status_code in (200, 202):
            return omnisdk.Accepted(provider_message_id=response.headers.get("X-Message-Id", ""))
        errors = response_object(response).get("errors")
        first = errors[0] if isinstance(errors, list) and errors else None
        detail = first.get("message", "") if isinstance(first, dict) else ""
        now = self.clock.timestamp()
        retry_after = retry_after_seconds(response.headers.get("Retry-After"), now)
        reset = response.headers.get("X-RateLimit-Reset", "")
        if retry_after is None and reset.isdigit():
            retry_after = max(0.0, int(reset) - now)
        return http_error_outcome(response.status_code, f"sendgrid {response.status_code}: {detail}".rstrip(": "),
                                  retry_after=retry_after)

    async def reconcile(self, batch: Sequence[InDoubt]) -> Sequence[Reconciliation]:
        if not self.config.email_activity:
            reason = "sendgrid: no lookup without the Email Activity add-on (email_activity = false)"
            return [StillUnknown(reason=reason) for _ in batch]
        return await reconcile_each(batch, self._reconcile_one)

    async def _reconcile_one(self, item: InDoubt) -> Reconciliation:
        """Every personalization carries the delivery id as a custom arg, which Email Activity indexes as
        `unique_args`: look the message up by it. The id SendGrid answered with is the request's
        X-Message-Id, the part of the activity's msg_id before the first dot."""
        content = check_outgoing(item.outgoing, unsubscribe_mailto=self.config.unsubscribe_mailto)
        if isinstance(content, omnisdk.PermanentError):
            return NotSent(reason=f"never sendable: {content.reason}")
        now = self.clock.now()
        query = f"unique_args['{DELIVERY_ARG}']=\"{item.outgoing.delivery_id}\""
        response = await self.http.get(f"{self.config.base_url.rstrip('/')}/v3/messages",
                                       params={"query": query, "limit": "10"},
                                       headers={"Authorization": f"Bearer {self.config.api_key}"})
        if response.status_code != 200:
            return lookup_error(response, "sendgrid's Email Activity", self.clock.timestamp())
        messages = response_object(response).get("messages")
        if not isinstance(messages, list):
            return StillUnknown(reason="sendgrid's Email Activity answered without messages")
        to = item.outgoing.to.lower()
        for found in messages:
            if isinstance(found, Mapping) and str(found.get("to_email", "")).lower() == to:
                msg_id = str(found.get("msg_id", "")).split(".")[0]
                if msg_id:
                    return omnisdk.Accepted(provider_message_id=msg_id)
        return absent(item, now, lag=self.config.reconcile_lag, where="sendgrid's Email Activity")

    def verify_webhook(self, request: omnisdk.WebhookRequest) -> None:
        if not self.config.webhook_public_key:
            raise omnisdk.WebhookError("sendgrid webhooks need `webhook_public_key` (signed event webhook)", status=401)
        signature, timestamp = request.header(SIGNATURE_HEADER), request.header(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise omnisdk.WebhookError(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}", status=401)
        key = load_verification_key(self.config.webhook_public_key)
        try:
            der = base64.b64decode(signature, validate=True)
            if base64.b64encode(der).decode() != signature.strip():
                raise ValueError("not canonical base64")  # the same signature spelt another way: a re-encoding
            key.verify(der, timestamp.encode("utf-8", "surrogatepass") + request.body, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, binascii.Error, ValueError):
            raise omnisdk.WebhookError("event webhook signature does not verify", status=401) from None
        fresh_timestamp(timestamp, now=self.clock.timestamp(), tolerance=self.config.webhook_tolerance,
                        what=TIMESTAMP_HEADER)

    def parse_webhook(self, request: omnisdk.WebhookRequest) -> omnisdk.WebhookResult:
        items = webhook_json(request.body, provider="sendgrid")
        if not isinstance(items, list):
            raise omnisdk.WebhookError("event webhook body is not a JSON array", status=400)
        events = [event for item in items if isinstance(item, Mapping) and (event := _event(item)) is not None]
        return omnisdk.WebhookResult(events=events)


def _event(item: Mapping[str, Any]) -> omnisdk.WebhookEvent | None:
    kind = item.get("event")
    properties: dict[str, Any] = {"provider": "sendgrid"}
    E = omnisdk.Events
    if kind == "bounce":
        name = E.MESSAGE_BOUNCED
        properties["bounce_type"] = "soft" if item.get("type") == "blocked" else "hard"
        properties["reason"] = item.get("reason", "")
    elif kind == "dropped":
        name, properties["reason"] = E.MESSAGE_FAILED, item.get("reason", "")
    elif kind == "click":
        name, properties["url"] = E.LINK_CLICKED, item.get("url", "")
    elif kind == "open":
        name, properties["machine_open"] = E.MESSAGE_OPENED, bool(item.get("sg_machine_open", False))
    else:
        simple = {"delivered": E.MESSAGE_DELIVERED, "spamreport": E.MESSAGE_COMPLAINED, "unsubscribe": E.UNSUBSCRIBED,
                  "group_unsubscribe": E.UNSUBSCRIBED, "group_resubscribe": E.SUBSCRIBED}
        if kind not in simple:
            return None  # processed, deferred: not something the customer experienced
        name = simple[kind]
    if "asm_group_id" in item:
        properties["asm_group_id"] = item["asm_group_id"]
    message_id = str(item.get("sg_message_id", "")).split(".")[0] or None
    timestamp = item.get("timestamp")
    return omnisdk.WebhookEvent(
        name=name,
        channel="email",
        id=f"sendgrid:{item.get('sg_event_id') or f'{message_id}:{kind}:{timestamp}'}",
        provider_message_id=message_id,
        delivery_id=str(item[DELIVERY_ARG]) if item.get(DELIVERY_ARG) else None,
        who={"email": str(item["email"])} if item.get("email") else {},
        properties=properties,
        occurred_at=event_time(timestamp) if isinstance(timestamp, int | float) else None,
    )
