"""WhatsApp Cloud API: free-form text inside the 24-hour customer-service window, approved templates outside it.

`Outgoing.last_inbound_at` (the customer's last inbound social touchpoint) decides the window. Outside
it, a `Social` without `template` cannot go out on WhatsApp at all: the outcome is a permanent error
with `fallback=True`, so the send moves on to the next channel of its waterfall.

The Graph API cannot be asked what became of a send whose answer was lost, so WhatsApp stays at most
once. Every message carries its delivery id as `biz_opaque_callback_data`, which Meta returns in
each status webhook: a delivered/read/failed status still finds its delivery without the wamid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import phonenumbers

import omnisdk
from omnisdk import Accepted, ConfigError, Events, Outgoing, PermanentError, Social, WebhookEvent
from omnisdk.providers import Outcome, response_object

from ._base import MetaConfig, MetaProvider, timestamp
from ._graph import graph_outcome, in_window, obj, objs, text

__all__ = ["WhatsAppCloud", "whatsapp_message"]

#: 131026: the number cannot receive WhatsApp messages.
DEAD_NUMBER_CODES = frozenset({"131026"})
#: Meta's limit on `biz_opaque_callback_data`.
MAX_CALLBACK_DATA = 512
STATUS_EVENTS = {"delivered": Events.MESSAGE_DELIVERED, "read": Events.MESSAGE_OPENED, "failed": Events.MESSAGE_FAILED}


def whatsapp_message(to: str, content: Social, *, free_form: bool) -> dict[str, Any]:
    """The request body: text inside the window, the approved template otherwise."""
    body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                            "to": "".join(c for c in to if c.isdigit())}
    if free_form:
        body["type"] = "text"
        body["text"] = {"body": content.text, "preview_url": "http" in content.text}
        return body
    # The spec requires `policy`; "deterministic" (the only value) means exactly this language, no fallback.
    language = {"policy": "deterministic", "code": content.template_language}
    template: dict[str, Any] = {"name": content.template, "language": language}
    if content.template_params:
        template["components"] = [
            {"type": "body", "parameters": [{"type": "text", "text": str(p)} for p in content.template_params]}
        ]
    body["type"] = "template"
    body["template"] = template
    return body


class WhatsAppCloud(MetaProvider):
    name = "whatsapp"

    @attrs.define(kw_only=True)
    class Config(MetaConfig):
        #: WhatsApp Manager → API setup: the sending number's id (not the phone number itself).
        phone_number_id: str
        #: A system user's permanent token with whatsapp_business_messaging.
        access_token: str = omnisdk.secret()

        def __attrs_post_init__(self) -> None:
            if not self.phone_number_id.isdigit():
                raise ConfigError("the phone number *id* from WhatsApp Manager, all digits", field="phone_number_id")

    async def send_one(self, message: Outgoing, content: Social) -> Outcome:
        free_form = in_window(message.last_inbound_at, self.clock.now())
        if not free_form and not content.template:
            return PermanentError(
                reason="outside WhatsApp's 24-hour window and the message has no approved template",
                code="outside_window", fallback=True,
            )
        body = whatsapp_message(message.to, content, free_form=free_form)
        body["biz_opaque_callback_data"] = message.delivery_id[:MAX_CALLBACK_DATA]
        response = await self.http.post(
            self.graph_url(f"{self.config.phone_number_id}/messages"),
            json=body,
            headers={"Authorization": f"Bearer {self.config.access_token}"},
        )
        if response.is_success:
            messages = response_object(response).get("messages") or [{}]
            return Accepted(provider_message_id=str(messages[0].get("id", message.delivery_id)),
                            details={"template": not free_form})
        # 131047 (re-engagement: the window closed meanwhile) is permanent with fallback like any other.
        return graph_outcome(response, self.clock.timestamp(), forget_codes=DEAD_NUMBER_CODES)

    def events(self, payload: Mapping[str, Any]) -> Sequence[WebhookEvent]:
        if payload.get("object") != "whatsapp_business_account":
            return []
        found: list[WebhookEvent] = []
        for entry in objs(payload.get("entry")):
            for change in objs(entry.get("changes")):
                value = obj(change.get("value"))
                names = {text(c.get("wa_id")): text(obj(c.get("profile")).get("name"))
                         for c in objs(value.get("contacts"))}
                found += [_inbound(m, names.get(text(m.get("from")))) for m in objs(value.get("messages"))
                          if text(m.get("from"))]
                found += [e for s in objs(value.get("statuses")) if (e := _status(s)) is not None]
        return found


def _who(wa_id: str) -> dict[str, str]:
    """The WhatsApp id, and the phone it is when it parses, so the message joins the customer who gave it."""
    who = {"whatsapp_id": wa_id}
    try:
        number = phonenumbers.parse(f"+{wa_id}")
    except phonenumbers.NumberParseException:
        return who
    if phonenumbers.is_valid_number(number):
        who["phone"] = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return who


def _inbound(message: Mapping[str, Any], profile_name: str | None) -> WebhookEvent:
    kind = text(message.get("type")) or "unknown"
    properties: dict[str, Any] = {"provider": "whatsapp", "type": kind}
    body = text(obj(message.get("text")).get("body")) or text(obj(message.get("button")).get("text"))
    if body:
        properties["text"] = body
    if profile_name:
        properties["profile_name"] = profile_name
    replied_to = text(obj(message.get("context")).get("id"))
    if replied_to:
        properties["in_reply_to"] = replied_to
    return WebhookEvent(
        name=Events.MESSAGE_REPLIED, channel="social", id=text(message.get("id")), who=_who(str(message["from"])),
        properties=properties, occurred_at=timestamp(message.get("timestamp")),
    )


def _status(status: Mapping[str, Any]) -> WebhookEvent | None:
    name = STATUS_EVENTS.get(str(status.get("status")))
    if name is None or not text(status.get("id")):
        return None
    properties: dict[str, Any] = {"provider": "whatsapp"}
    errors = objs(status.get("errors"))
    if errors:
        properties["error_code"] = errors[0].get("code")
    delivery_id = status.get("biz_opaque_callback_data")
    return WebhookEvent(
        name=name, channel="social", id=f"{status['id']}:{status.get('status')}", provider_message_id=str(status["id"]),
        delivery_id=delivery_id if isinstance(delivery_id, str) and delivery_id else None,
        properties=properties, occurred_at=timestamp(status.get("timestamp")),
    )
