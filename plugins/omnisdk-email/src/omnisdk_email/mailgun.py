"""Mailgun Messages API and its webhooks (HMAC-SHA256 over timestamp and token).

Mailgun's signature covers the timestamp and the token only, not the event data. So the token is
the request's nonce (`webhook_nonce`): the core remembers it in the store with a digest of the
request, so the same webhook again (a retry) is acknowledged and records nothing, and the same
signature on another body is refused as a replay (409), in every process sharing the store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

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
    webhook_json,
)

from ._common import DELIVERY_ARG, HTTP_URL, check_outgoing, mailbox, unsubscribe_headers

__all__ = ["MailgunEmail", "mailgun_signature"]

#: A lookup reads at most this many pages of Events (300 events each).
LOOKUP_PAGES: Final = 20


def mailgun_signature(signing_key: str, timestamp: str, token: str) -> str:
    return hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


class MailgunEmail(omnisdk.Provider):
    """`[channels.email] provider = "mailgun"`."""

    name = "mailgun"
    channel = "email"
    capabilities = omnisdk.Capabilities(max_batch_size=1, max_concurrency=16, reconcile=True)

    @attrs.define(kw_only=True)
    class Config:
        api_key: str = omnisdk.secret()
        domain: str = attrs.field(validator=attrs.validators.matches_re(r"^[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"))
        from_: str = attrs.field(validator=mailbox)
        #: https://api.eu.mailgun.net for EU domains.
        base_url: str = attrs.field(default="https://api.mailgun.net", validator=HTTP_URL)
        #: The HTTP webhook signing key; webhooks are refused without it.
        webhook_signing_key: str | None = omnisdk.secret(None)
        webhook_tolerance: float = 300.0
        unsubscribe_mailto: str | None = attrs.field(default=None, validator=mailbox)
        #: Seconds after an attempt before a message missing from the Events API counts as not sent
        #: (Mailgun says events may take up to 30 minutes to show).
        reconcile_lag: float = attrs.field(default=1800.0, validator=attrs.validators.ge(0))
        #: How far Mailgun's clock may be from ours, in seconds: the lookup window's margin.
        clock_skew: float = attrs.field(default=120.0, validator=attrs.validators.ge(0))

    config: Config

    async def send(self, batch: Sequence[omnisdk.Outgoing]) -> Sequence[Outcome]:
        return [await self._send_one(message) for message in batch]

    def form(self, message: omnisdk.Outgoing, content: omnisdk.Email) -> list[tuple[str, str]]:
        fields = [("from", content.from_ or self.config.from_), ("to", message.to), ("subject", content.subject),
                  (f"v:{DELIVERY_ARG}", message.delivery_id)]
        fields += [(kind, body) for kind, body in (("text", content.text), ("html", content.html)) if body]
        if content.reply_to:
            fields.append(("h:Reply-To", content.reply_to))
        headers = {**content.headers, **unsubscribe_headers(message, self.config.unsubscribe_mailto)}
        fields += [(f"h:{name}", value) for name, value in headers.items()]
        fields += [("o:tag", tag) for tag in list(content.categories)[:3]]
        return fields

    async def _send_one(self, message: omnisdk.Outgoing) -> Outcome:
        content = check_outgoing(message, unsubscribe_mailto=self.config.unsubscribe_mailto)
        if isinstance(content, omnisdk.PermanentError):
            return content
        try:
            response = await self.http.post(
                f"{self.config.base_url.rstrip('/')}/v3/{self.config.domain}/messages",
                content=urlencode(self.form(message, content)).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                auth=("api", self.config.api_key),
            )
        except httpx.TransportError as exc:
            return transport_error_outcome(exc)
        body = response_object(response)
        if response.status_code == 200 and isinstance(body.get("id"), str):
            return omnisdk.Accepted(provider_message_id=body["id"].strip("<>"))
        retry_after = retry_after_seconds(response.headers.get("Retry-After"), self.clock.timestamp())
        reason = f"mailgun {response.status_code}: {body.get('message', '')}".rstrip(": ")
        return http_error_outcome(response.status_code if response.status_code >= 400 else 502, reason,
                                  retry_after=retry_after)

    async def reconcile(self, batch: Sequence[InDoubt]) -> Sequence[Reconciliation]:
        return await reconcile_each(batch, self._reconcile_one)

    async def _reconcile_one(self, item: InDoubt) -> Reconciliation:
        """Every send carries the delivery id as the user variable `v:omnisdk_delivery_id`: look for the
        `accepted` event that carries it, in the attempt's window, following Mailgun's pages."""
        content = check_outgoing(item.outgoing, unsubscribe_mailto=self.config.unsubscribe_mailto)
        if isinstance(content, omnisdk.PermanentError):
            return NotSent(reason=f"never sendable: {content.reason}")
        now = self.clock.now()
        begin, end = lookup_window(item, now, skew=self.config.clock_skew)
        base = self.config.base_url.rstrip("/")
        query = {"begin": f"{begin.timestamp():.0f}", "end": f"{end.timestamp():.0f}", "ascending": "yes",
                 "limit": "300", "event": "accepted", "recipient": item.outgoing.to,
                 "user-variables": json.dumps({DELIVERY_ARG: item.outgoing.delivery_id})}
        url: str | None = f"{base}/v3/{self.config.domain}/events?{urlencode(query)}"
        for _ in range(LOOKUP_PAGES):
            if url is None:
                break
            response = await self.http.get(url, auth=("api", self.config.api_key))
            if response.status_code != 200:
                return lookup_error(response, "mailgun's Events API", self.clock.timestamp())
            page = response_object(response)
            items = page.get("items")
            if not isinstance(items, list):
                return StillUnknown(reason="mailgun's Events API answered without items")
            for event in items:
                if (found := _accepted_id(event, item.outgoing.delivery_id)) is not None:
                    return omnisdk.Accepted(provider_message_id=found)
            following = page.get("paging", {}).get("next") if isinstance(page.get("paging"), dict) else None
            # An empty page ends the search; a next page elsewhere would carry our key off this host.
            url = following if items and isinstance(following, str) and following.startswith(base + "/") else None
        else:
            if url is not None:
                return StillUnknown(reason=f"more than {LOOKUP_PAGES} pages of events in the window")
        return absent(item, now, lag=self.config.reconcile_lag, where="mailgun's Events API")

    def verify_webhook(self, request: omnisdk.WebhookRequest) -> None:
        key = self.config.webhook_signing_key
        if not key:
            raise omnisdk.WebhookError("mailgun webhooks need `webhook_signing_key`", status=401)
        signature = _payload(request).get("signature")
        if not isinstance(signature, Mapping) or not all(
            isinstance(signature.get(k), str) for k in ("timestamp", "token", "signature")
        ):
            raise omnisdk.WebhookError("missing signature {timestamp, token, signature}", status=401)
        timestamp, token = signature["timestamp"], signature["token"]
        if not signatures_match(mailgun_signature(key, timestamp, token), signature["signature"]):
            raise omnisdk.WebhookError("webhook signature does not match", status=401)
        fresh_timestamp(timestamp, now=self.clock.timestamp(), tolerance=self.config.webhook_tolerance,
                        what="webhook timestamp")

    def webhook_nonce(self, request: omnisdk.WebhookRequest) -> str | None:
        """The signed token: one token, one body."""
        signature = _payload(request).get("signature")
        token = signature.get("token") if isinstance(signature, Mapping) else None
        return f"token:{token}" if isinstance(token, str) else None

    def parse_webhook(self, request: omnisdk.WebhookRequest) -> omnisdk.WebhookResult:
        data = _payload(request).get("event-data")
        if not isinstance(data, Mapping):
            raise omnisdk.WebhookError("missing event-data", status=400)
        event = _event(data)
        return omnisdk.WebhookResult(events=[event] if event else [])


def _accepted_id(event: Any, delivery_id: str) -> str | None:
    """The Message-Id of an `accepted` event for `delivery_id`, else None."""
    if not isinstance(event, Mapping) or event.get("event") != "accepted":
        return None
    variables = event.get("user-variables")
    if not isinstance(variables, Mapping) or variables.get(DELIVERY_ARG) != delivery_id:
        return None
    message = event.get("message")
    headers = message.get("headers") if isinstance(message, Mapping) else None
    found = headers.get("message-id") if isinstance(headers, Mapping) else None
    return found.strip("<>") if isinstance(found, str) and found else None


def _payload(request: omnisdk.WebhookRequest) -> Mapping[str, Any]:
    payload = webhook_json(request.body, provider="mailgun")
    if not isinstance(payload, Mapping):
        raise omnisdk.WebhookError("webhook body is not a JSON object", status=400)
    return payload


def _event(data: Mapping[str, Any]) -> omnisdk.WebhookEvent | None:
    E = omnisdk.Events
    kind = data.get("event")
    properties: dict[str, Any] = {"provider": "mailgun"}
    if kind == "failed":
        name = E.MESSAGE_BOUNCED
        properties["bounce_type"] = "hard" if data.get("severity") == "permanent" else "soft"
        properties["reason"] = str(data.get("reason", ""))
    elif kind == "clicked":
        name, properties["url"] = E.LINK_CLICKED, str(data.get("url", ""))
    else:
        simple = {"delivered": E.MESSAGE_DELIVERED, "opened": E.MESSAGE_OPENED, "complained": E.MESSAGE_COMPLAINED,
                  "unsubscribed": E.UNSUBSCRIBED}
        if kind not in simple:
            return None  # accepted, rejected by us, stored: nothing the customer experienced
        name = simple[kind]
    message = data.get("message")
    headers = message.get("headers") if isinstance(message, Mapping) else None
    message_id = headers.get("message-id") if isinstance(headers, Mapping) else None
    variables = data.get("user-variables")
    delivery_id = variables.get(DELIVERY_ARG) if isinstance(variables, Mapping) else None
    timestamp = data.get("timestamp")
    return omnisdk.WebhookEvent(
        name=name,
        channel="email",
        id=f"mailgun:{data['id']}" if data.get("id") else None,
        provider_message_id=str(message_id) if message_id else None,
        delivery_id=str(delivery_id) if delivery_id else None,
        who={"email": str(data["recipient"])} if data.get("recipient") else {},
        properties=properties,
        occurred_at=datetime.fromtimestamp(timestamp, UTC) if isinstance(timestamp, int | float) else None,
    )
