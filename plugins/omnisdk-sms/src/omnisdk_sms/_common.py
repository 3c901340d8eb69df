"""What Twilio and Vonage share: the text to send, recipient checks, webhook parameters, inbound replies."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs

from omnisdk import SMS, Events, Outgoing, PermanentError, WebhookError, WebhookEvent, WebhookRequest
from omnisdk.providers import unique_pairs, webhook_json

from .keywords import Keyword, keyword_of
from .phone import is_e164, is_sender_id
from .segments import count_segments

__all__ = [
    "HTTP_URL",
    "OPTIONAL_HTTP_URL",
    "check_outgoing",
    "inbound_event",
    "segment_details",
    "sender",
    "single_values",
    "webhook_params",
]

#: attrs validators for URL settings (base_url; status_callback, which may be left out).
HTTP_URL = attrs.validators.matches_re(r"https?://[^\s/]+", func=re.match)
OPTIONAL_HTTP_URL = attrs.validators.optional(HTTP_URL)


def sender(_instance: object, attribute: Any, value: Any) -> None:
    """attrs validator: `from` is an E.164 number, a short code or an alphanumeric sender id."""
    if value is not None and not is_sender_id(value):
        raise ValueError(f"{attribute.name.rstrip('_')}: {value!r} is not an E.164 number, short code or sender id")


def check_outgoing(message: Outgoing) -> SMS | PermanentError:
    """The SMS rendition to send, or why this message can never be sent."""
    if not isinstance(message.content, SMS):
        return PermanentError(reason=f"expected SMS content, got {type(message.content).__name__}", code="content")
    if not is_e164(message.to):
        return PermanentError(
            reason="recipient is not a valid E.164 number", code="invalid_number", forget_address=True
        )
    return message.content


def segment_details(text: str) -> dict[str, Any]:
    count = count_segments(text)
    return {"segments": count.segments, "encoding": count.encoding}



def webhook_params(request: WebhookRequest, *, query: bool = True) -> dict[str, list[str]]:
    """Every parameter of a webhook: the query string, then a form or JSON body (values as strings).

    Every value of a repeated name is kept (Twilio signs them all); `single_values` is what a
    reader uses. A GET has no body (the core refuses one; a direct caller gets the same 403).
    """
    if request.method.upper() in ("GET", "HEAD") and request.body:
        raise WebhookError("a GET request's body is covered by no signature", status=403)
    pairs = parse_qsl(urlsplit(request.url).query, keep_blank_values=True) if query else []
    content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
    if content_type == "application/json" and request.body:
        data = webhook_json(request.body, provider="sms")
        if not isinstance(data, Mapping):
            raise WebhookError("expected a JSON object", status=400)
        pairs += [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in data.items()]
    elif request.body:
        try:
            pairs += parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as exc:
            raise WebhookError(f"malformed webhook body: {type(exc).__name__}", status=400) from None
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    return params


def single_values(params: Mapping[str, list[str]]) -> dict[str, str]:
    """One value per name, refusing (403) a name given with two different values (in the query and
    the body, or twice in either): both providers' signatures sort or merge the values, so the
    signature cannot say which one counts."""
    return unique_pairs((name, value) for name, values in params.items() for value in values)


def inbound_event(provider: str, message_id: str, phone: str, body: str) -> tuple[WebhookEvent, Keyword | None]:
    """An inbound text as a consent change (STOP/START) or a reply, and the keyword it was. A YES is
    a reply carrying its keyword: the core grants consent only if it answers a prompt sent."""
    keyword = keyword_of(body)
    name = {"STOP": Events.UNSUBSCRIBED, "START": Events.SUBSCRIBED}.get(keyword or "", Events.MESSAGE_REPLIED)
    properties: dict[str, Any] = {"provider": provider, "message_id": message_id}
    if keyword:
        properties["keyword"] = keyword
    if name == Events.MESSAGE_REPLIED:
        properties["text"] = body
    event = WebhookEvent(
        name=name, channel="sms", id=f"{provider}:{message_id}", who={"phone": phone}, properties=properties
    )
    return event, keyword
