"""Twilio Programmable Messaging: SMS/MMS, RCS with automatic SMS fallback, status callbacks, replies.

Webhooks (status callbacks and inbound messages) are checked against `X-Twilio-Signature`
before anything is read. An inbound STOP/START becomes a consent change for the core; HELP is
answered. With Twilio's Advanced Opt-Out on (`advanced_opt_out = true`) Twilio confirms STOP and
START itself, so the plugin stays silent for those to avoid double replies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from xml.sax.saxutils import escape

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
    http_error_outcome,
    lookup_error,
    lookup_window,
    reconcile_each,
    response_object,
    retry_after_seconds,
    transport_error_outcome,
)

from ._common import (
    HTTP_URL,
    OPTIONAL_HTTP_URL,
    check_outgoing,
    inbound_event,
    segment_details,
    sender,
    webhook_params,
)
from .phone import _E164

__all__ = ["TwilioSMS", "twilio_signature"]

#: Error codes for a number that will never take SMS (invalid, not mobile, landline).
DEAD_NUMBER_CODES: Final = frozenset({21211, 21614, 30006})
#: Status callback error codes that mean the address itself is bad (hard bounce).
HARD_BOUNCE_CODES: Final = frozenset({30005, 30006})
SOFT_BOUNCE_CODES: Final = frozenset({30003})
TWIML = "application/xml"
#: A lookup reads at most LOOKUP_PAGES pages of LOOKUP_PAGE_SIZE messages to one number.
LOOKUP_PAGE_SIZE: Final = 100
LOOKUP_PAGES: Final = 20


def twilio_signature(auth_token: str, url: str, params: dict[str, list[str]] | None = None) -> str:
    """base64(HMAC-SHA1(token, url + every sorted name and its sorted unique values))."""
    payload = url
    for name in sorted(params or {}):
        for value in sorted(set((params or {})[name])):
            payload += name + value
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> list[str]:
    """Twilio signs the URL with or without the default port: accept both forms."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    with_port = f"{host}:{parts.port or default}" if default or parts.port else host
    variants = [url, urlunsplit(parts._replace(netloc=with_port))]
    if parts.port in (None, default):
        variants.append(urlunsplit(parts._replace(netloc=host)))
    return list(dict.fromkeys(variants))


def _created(message: Any) -> datetime | None:
    """A listed message's date_created (RFC 2822), or None when it is missing or malformed."""
    value = message.get("date_created") if isinstance(message, dict) else None
    try:
        return parsedate_to_datetime(value) if isinstance(value, str) else None
    except (TypeError, ValueError):
        return None


def twiml(text: str | None) -> omnisdk.WebhookResponse:
    body = f"<Message>{escape(text)}</Message>" if text else ""
    xml = f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'
    return omnisdk.WebhookResponse(status=200, headers={"Content-Type": TWIML}, body=xml.encode())


_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
#: `quote_plus` as a translation table over the bytes of UTF-8 text (read as Latin-1, one character
#: per byte): unreserved characters stay, the space becomes "+", every other byte becomes %XX.
_FORM_ESCAPES: Final = str.maketrans({
    chr(byte): "+" if byte == 0x20 else chr(byte) if chr(byte) in _UNRESERVED else f"%{byte:02X}"
    for byte in range(256)
})


def _encode_form(pairs: list[tuple[str, str]]) -> bytes:
    """`urlencode(pairs).encode()`, escaped by one `str.translate` per value instead of `quote_plus`'s
    call per character; the names are this module's ASCII constants."""
    return "&".join([
        f"{name}={value.encode().decode('latin-1').translate(_FORM_ESCAPES)}" for name, value in pairs
    ]).encode("ascii")


def _checked(message: omnisdk.Outgoing) -> omnisdk.SMS | omnisdk.PermanentError:
    """`check_outgoing`, minus the numbering-plan lookup for a number the core took from the profile
    (validated when it was recorded; Twilio's own error 21211 still catches one that went dead)."""
    if message.from_profile and isinstance(message.content, omnisdk.SMS) and _E164.match(message.to):
        return message.content
    return check_outgoing(message)


class TwilioSMS(omnisdk.Provider):
    """`[channels.sms] provider = "twilio"`."""

    name = "twilio"
    channel = "sms"
    capabilities = omnisdk.Capabilities(max_batch_size=1, content_limits={"body_chars": 1600}, reconcile=True)

    @attrs.define(kw_only=True)
    class Config:
        account_sid: str = attrs.field(validator=attrs.validators.matches_re(r"^AC[0-9a-fA-F]{32}$"))
        auth_token: str = omnisdk.secret()
        #: An E.164 number, short code or alphanumeric sender id; or use `messaging_service_sid`.
        from_: str | None = attrs.field(default=None, validator=sender)
        messaging_service_sid: str | None = attrs.field(
            default=None, validator=attrs.validators.optional(attrs.validators.matches_re(r"^MG[0-9a-fA-F]{32}$"))
        )
        #: Where Twilio posts delivery status (this app's /webhooks/twilio URL).
        status_callback: str | None = attrs.field(default=None, validator=OPTIONAL_HTTP_URL)
        base_url: str = attrs.field(default="https://api.twilio.com", validator=HTTP_URL)
        #: RCS first, SMS when the handset can't take RCS: needs a Messaging Service with an RCS sender.
        rcs: bool = False
        #: Twilio's Advanced Opt-Out confirms STOP/START itself.
        advanced_opt_out: bool = False
        #: Seconds after an attempt before a message missing from Twilio's Message list counts as not sent.
        reconcile_lag: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))
        #: How far Twilio's clock may be from ours, in seconds: the lookup window's margin.
        clock_skew: float = attrs.field(default=120.0, validator=attrs.validators.ge(0))
        help_text: str = "Reply STOP to unsubscribe, START to resubscribe. Msg&data rates may apply."
        stop_text: str = "You are unsubscribed and will receive no more messages. Reply START to resubscribe."
        start_text: str = "You are subscribed again. Reply STOP to unsubscribe, HELP for help."

        def __attrs_post_init__(self) -> None:
            if not self.from_ and not self.messaging_service_sid:
                raise ValueError("from: set `from` (a sender) or `messaging_service_sid`")
            if self.rcs and not self.messaging_service_sid:
                raise ValueError("messaging_service_sid: RCS with SMS fallback needs a Messaging Service")

    config: Config

    @property
    def messages_url(self) -> str:
        return f"{self.config.base_url.rstrip('/')}/2010-04-01/Accounts/{self.config.account_sid}/Messages.json"

    def _form(self, message: omnisdk.Outgoing, content: omnisdk.SMS) -> list[tuple[str, str]]:
        config = self.config
        form = [("To", message.to), ("Body", content.text)]
        if config.messaging_service_sid:
            form.append(("MessagingServiceSid", config.messaging_service_sid))
            if config.rcs and config.from_:
                form.append(("FallbackFrom", config.from_))
        else:
            form.append(("From", config.from_ or ""))
        form += [("MediaUrl", url) for url in content.media_urls]
        if config.status_callback:
            form.append(("StatusCallback", config.status_callback))
        return form

    async def send(self, batch: Sequence[omnisdk.Outgoing]) -> Sequence[Outcome]:
        return [await self._send_one(message) for message in batch]

    async def _send_one(self, message: omnisdk.Outgoing) -> Outcome:
        content = _checked(message)
        if isinstance(content, omnisdk.PermanentError):
            return content
        try:
            response = await self.http.post(
                self.messages_url,
                content=_encode_form(self._form(message, content)),
                headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
                auth=(self.config.account_sid, self.config.auth_token),
            )
        except httpx.TransportError as exc:
            return transport_error_outcome(exc)
        body = response_object(response)
        if response.status_code in (200, 201) and isinstance(body.get("sid"), str):
            details = segment_details(content.text)
            if self.config.rcs:
                details["rcs"] = True
            return omnisdk.Accepted(provider_message_id=body["sid"], details=details)
        code = body.get("code")
        reason = f"twilio {response.status_code}" + (f" error {code}: {body.get('message', '')}" if code else "")
        outcome = http_error_outcome(
            response.status_code if response.status_code >= 400 else 502,
            reason,
            retry_after=retry_after_seconds(response.headers.get("Retry-After"), self.clock.timestamp()),
            code=str(code) if code is not None else None,
        )
        if isinstance(outcome, omnisdk.PermanentError) and code in DEAD_NUMBER_CODES:
            return attrs.evolve(outcome, forget_address=True)
        return outcome

    async def reconcile(self, batch: Sequence[InDoubt]) -> Sequence[Reconciliation]:
        return await reconcile_each(batch, self._reconcile_one)

    async def _reconcile_one(self, item: InDoubt) -> Reconciliation:
        """Twilio has no idempotency key and no field of ours it echoes: look for a message to the same
        number, from the same sender, with the same body, created since the attempt (less the skew)."""
        content = _checked(item.outgoing)
        if isinstance(content, omnisdk.PermanentError):
            return NotSent(reason=f"never sendable: {content.reason}")
        now = self.clock.now()
        since, _ = lookup_window(item, now, skew=self.config.clock_skew)
        query = [("To", item.outgoing.to), ("PageSize", str(LOOKUP_PAGE_SIZE))]
        if not self.config.messaging_service_sid and self.config.from_:
            query.append(("From", self.config.from_))
        url: str | None = f"{self.messages_url}?{urlencode(query)}"
        matches: list[tuple[datetime, str]] = []
        for _ in range(LOOKUP_PAGES):
            if url is None:
                break
            response = await self.http.get(url, auth=(self.config.account_sid, self.config.auth_token),
                                           headers={"Accept": "application/json"})
            if response.status_code != 200:
                return lookup_error(response, "twilio's Message list", self.clock.timestamp())
            page = response_object(response)
            listed = page.get("messages")
            if not isinstance(listed, list):
                return StillUnknown(reason="twilio's Message list answered without messages")
            older = False
            for found in listed:
                created = _created(found)
                if created is None:
                    continue
                if created < since:
                    older = True  # newest first: everything after this is older still
                    break
                if self._same(found, content.text):
                    matches.append((created, str(found["sid"])))
            following = page.get("next_page_uri")
            url = f"{self.config.base_url.rstrip('/')}{following}" if isinstance(following, str) and not older else None
        else:
            if url is not None:
                return StillUnknown(reason=f"more than {LOOKUP_PAGES} pages of messages to this number")
        if matches:
            return omnisdk.Accepted(provider_message_id=min(matches)[1], details=segment_details(content.text))
        return absent(item, now, lag=self.config.reconcile_lag, where="twilio's Message list")

    def _same(self, found: Any, text: str) -> bool:
        """The message we sent: outbound, this body, through this Messaging Service when there is one."""
        if not isinstance(found, dict) or not isinstance(found.get("sid"), str) or found.get("body") != text:
            return False
        if not str(found.get("direction", "")).startswith("outbound"):
            return False
        service = self.config.messaging_service_sid
        return service is None or found.get("messaging_service_sid") == service

    def verify_webhook(self, request: omnisdk.WebhookRequest) -> None:
        signature = request.header("X-Twilio-Signature")
        if not signature:
            raise omnisdk.WebhookError("missing X-Twilio-Signature header", status=401)
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        if content_type == "application/json":
            query = dict(parse_qsl(urlsplit(request.url).query))
            expected_hash = hashlib.sha256(request.body).hexdigest()
            if not hmac.compare_digest(query.get("bodySHA256", ""), expected_hash):
                raise omnisdk.WebhookError("bodySHA256 does not match the body", status=401)
            params: dict[str, list[str]] = {}
        elif request.method.upper() == "POST":
            params = webhook_params(request, query=False)  # the query string is signed as part of the URL
        else:
            params = {}
        for url in _url_variants(request.url):
            if hmac.compare_digest(twilio_signature(self.config.auth_token, url, params), signature):
                return
        raise omnisdk.WebhookError("X-Twilio-Signature does not match", status=401)

    def parse_webhook(self, request: omnisdk.WebhookRequest) -> omnisdk.WebhookResult:
        params = {k: v[-1] for k, v in webhook_params(request).items()}
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        if "MessageStatus" in params:
            return omnisdk.WebhookResult(events=self._status_events(sid, params), response=twiml(None))
        if "Body" in params and params.get("From"):
            phone = params["From"].removeprefix("rcs:").removeprefix("whatsapp:")
            event, keyword = inbound_event("twilio", sid, phone, params["Body"])
            return omnisdk.WebhookResult(events=[event], response=twiml(self._answer(keyword)))
        return omnisdk.WebhookResult(response=twiml(None))

    def _answer(self, keyword: str | None) -> str | None:
        if keyword == "HELP":
            return self.config.help_text
        if self.config.advanced_opt_out:
            return None
        return {"STOP": self.config.stop_text, "START": self.config.start_text}.get(keyword or "")

    def _status_events(self, sid: str, params: dict[str, str]) -> list[omnisdk.WebhookEvent]:
        status = params["MessageStatus"]
        error_code = int(params["ErrorCode"]) if params.get("ErrorCode", "").isdigit() else None
        properties: dict[str, Any] = {"status": status}
        if error_code is not None:
            properties["error_code"] = error_code
        if status == "delivered":
            name = omnisdk.Events.MESSAGE_DELIVERED
        elif status == "read":
            name = omnisdk.Events.MESSAGE_OPENED
        elif status in ("undelivered", "failed") and error_code in HARD_BOUNCE_CODES | SOFT_BOUNCE_CODES:
            name = omnisdk.Events.MESSAGE_BOUNCED
            properties["bounce_type"] = "hard" if error_code in HARD_BOUNCE_CODES else "soft"
        elif status in ("undelivered", "failed"):
            name = omnisdk.Events.MESSAGE_FAILED
        else:
            return []  # queued, sending, sent, accepted: nothing the customer experienced yet
        return [
            omnisdk.WebhookEvent(
                name=name, channel="sms", id=f"twilio:{sid}:{status}", provider_message_id=sid, properties=properties
            )
        ]
