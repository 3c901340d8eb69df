"""Twilio Programmable Messaging: SMS/MMS, RCS with automatic SMS fallback, status callbacks, replies.

Webhooks (status callbacks and inbound messages) are checked against `X-Twilio-Signature`
before anything is read, as twilio-python's `RequestValidator` checks it: HMAC-SHA1 under the
auth token, or the algorithm and SharedKey that `X-Twilio-Webhooks-Signature-Settings` names
(HMAC-SHA256), over the URL with and without its port. A GET is signed over its URL alone, so
its parameters are read from the query string only. An inbound STOP/START becomes a consent change for the core; HELP is
answered. With Twilio's Advanced Opt-Out on (`advanced_opt_out = true`) Twilio confirms STOP and
START itself, so the plugin stays silent for those to avoid double replies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import ParseResult, parse_qs, urlencode, urlparse
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
from .phone import _E164

__all__ = ["TwilioSMS", "twilio_signature"]

#: Error codes for a number that will never take SMS (invalid, not mobile, landline).
DEAD_NUMBER_CODES: Final = frozenset({21211, 21614, 30006})
#: Status callback error codes that mean the address itself is bad (hard bounce).
HARD_BOUNCE_CODES: Final = frozenset({30005, 30006})
SOFT_BOUNCE_CODES: Final = frozenset({30003})
TWIML = "application/xml"
#: A lookup reads at most LOOKUP_PAGES pages of LOOKUP_PAGE_SIZE messages to one number; past that
#: the outcome stays unknown.
LOOKUP_PAGE_SIZE: Final = 100
LOOKUP_PAGES: Final = 20


SETTINGS_HEADER: Final = "X-Twilio-Webhooks-Signature-Settings"
#: The algorithms `X-Twilio-Webhooks-Signature-Settings` may name, as twilio-python spells them.
ALGORITHMS: Final = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}


def twilio_signature(
    auth_token: str, url: str, params: dict[str, list[str]] | None = None, algorithm: str = "HMAC_SHA1"
) -> str:
    """base64(HMAC(token, url + every sorted name and its sorted unique values)), SHA1 or SHA256."""
    payload = url
    for name in sorted(params or {}):
        for value in sorted(set((params or {})[name])):
            payload += name + value
    digest = hmac.new(auth_token.encode(), payload.encode("utf-8", "surrogatepass"), ALGORITHMS[algorithm]).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> list[str]:
    """The URL without any port and with one (the scheme's default when it has none): Twilio signs
    either form, and twilio-python accepts a signature over either."""
    try:
        parts: ParseResult = urlparse(url)
        port = parts.port
    except ValueError:
        raise omnisdk.WebhookError("the webhook URL has a malformed port", status=400) from None
    if port:
        without, with_port = parts._replace(netloc=parts.netloc.split(":")[0]).geturl(), parts.geturl()
    else:
        default = 443 if parts.scheme == "https" else 80
        without, with_port = parts.geturl(), parts._replace(netloc=f"{parts.netloc}:{default}").geturl()
    return list(dict.fromkeys((without, with_port)))


def _signing(settings: str | None, auth_token: str, shared_keys: Mapping[str, str]) -> tuple[str, str]:
    """(secret, algorithm) a request says it was signed with; no settings header: the auth token, SHA1."""
    fields = dict(part.strip().partition("=")[::2] for part in (settings or "").split(",") if "=" in part)
    algorithm = fields.get("algorithm", "").strip() or "HMAC_SHA1"
    if algorithm.upper() not in ALGORITHMS:
        raise omnisdk.WebhookError(f"unsupported {SETTINGS_HEADER} algorithm", status=401)
    key_id = fields.get("key", "").strip()
    if not key_id:
        return auth_token, algorithm.upper()
    if key_id not in shared_keys:
        raise omnisdk.WebhookError(f"{SETTINGS_HEADER} names a SharedKey not in webhook_shared_keys", status=401)
    return shared_keys[key_id], algorithm.upper()


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
    #: Twilio calls a messaging webhook with the method configured for it: POST (default) or GET.
    webhook_methods = frozenset({"GET", "POST"})

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
        #: SharedKey id → secret, for webhooks signed with a SharedKey (HMAC-SHA256) instead of the auth token.
        webhook_shared_keys: Mapping[str, str] = omnisdk.secret(attrs.Factory(dict))
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
            keys = self.webhook_shared_keys
            if not isinstance(keys, Mapping) or not all(isinstance(k, str) and isinstance(v, str) and v
                                                        for k, v in keys.items()):
                raise ValueError("webhook_shared_keys: expected a table of SharedKey id = secret")
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

    async def check_credentials(self) -> Sequence[str]:
        """Fetch the Account resource: Twilio answers 401 to a wrong account SID or auth token."""
        url = f"{self.config.base_url.rstrip('/')}/2010-04-01/Accounts/{self.config.account_sid}.json"
        try:
            response = await self.http.get(url, auth=(self.config.account_sid, self.config.auth_token),
                                           headers={"Accept": "application/json"})
        except httpx.TransportError as exc:
            return [f"Twilio at {self.config.base_url} could not be reached ({type(exc).__name__})"]
        if response.status_code == 401:
            return ["Twilio refused the account SID and auth token (401): check channels.sms.auth_token"]
        if response.status_code != 200:
            return [f"Twilio answered the account lookup with HTTP {response.status_code}"]
        status = response_object(response).get("status")
        return [] if status in (None, "active") else [f"the Twilio account is {status}, not active"]

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
            # Every page is read: Twilio orders the list by date_sent, which a queued message does not have yet.
            for found in listed:
                created = _created(found)
                if created is not None and created >= since and self._same(found, content.text):
                    matches.append((created, str(found["sid"])))
            following = page.get("next_page_uri")
            url = f"{self.config.base_url.rstrip('/')}{following}" if isinstance(following, str) else None
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
        secret, algorithm = _signing(request.header(SETTINGS_HEADER), self.config.auth_token,
                                     self.config.webhook_shared_keys)
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        params: dict[str, list[str]] = {}
        if request.method == "GET" or request.method == "HEAD":
            webhook_params(request, query=False)  # refuses a body: the signature covers the URL alone
        elif content_type == "application/json":
            given = parse_qs(urlparse(request.url).query).get("bodySHA256", [""])[0]
            if not signatures_match(hashlib.sha256(request.body).hexdigest(), given):
                raise omnisdk.WebhookError("bodySHA256 does not match the body", status=401)
        else:
            params = webhook_params(request, query=False)  # the query string is signed as part of the URL
        for url in _url_variants(request.url):
            if signatures_match(twilio_signature(secret, url, params, algorithm), signature):
                return
        raise omnisdk.WebhookError("X-Twilio-Signature does not match", status=401)

    def parse_webhook(self, request: omnisdk.WebhookRequest) -> omnisdk.WebhookResult:
        params = single_values(webhook_params(request))
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
        code = params.get("ErrorCode", "")
        error_code = int(code) if code.isascii() and code.isdigit() else None
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
