"""Messenger Send API to a page-scoped id (PSID), inside the 24-hour window or with a message tag.

Inside the window a message goes out as `RESPONSE`. Outside it Meta allows only tagged, non-promotional
updates, so a `Social.tag` is used for transactional sends only; anything else is a permanent error
that falls back to the next channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

import omnisdk
from omnisdk import Accepted, ConfigError, Events, Outgoing, PermanentError, Social, WebhookEvent
from omnisdk.providers import Outcome, response_object

from ._base import MetaConfig, MetaProvider, timestamp
from ._graph import graph_outcome, in_window, obj, objs, text

__all__ = ["Messenger", "messenger_message"]

#: 100/2018001: no user with this PSID on the page (it will never work again).
DEAD_PSID_CODES = frozenset({"100/2018001"})


def messenger_message(psid: str, content: Social, *, messaging_type: str) -> dict[str, Any]:
    message: dict[str, Any] = {"text": content.text}
    if content.quick_replies:
        message["quick_replies"] = [
            {"content_type": "text", "title": title[:20], "payload": title} for title in content.quick_replies[:13]
        ]
    body: dict[str, Any] = {"recipient": {"id": psid}, "messaging_type": messaging_type, "message": message}
    if messaging_type == "MESSAGE_TAG":
        body["tag"] = content.tag
    return body


class Messenger(MetaProvider):
    name = "messenger"

    @attrs.define(kw_only=True)
    class Config(MetaConfig):
        #: The page's access token (pages_messaging).
        page_access_token: str = omnisdk.secret()
        #: "me" sends as the page the token belongs to.
        page_id: str = "me"

        def __attrs_post_init__(self) -> None:
            if self.page_id != "me" and not self.page_id.isdigit():
                raise ConfigError('"me" or the page\'s numeric id', field="page_id")

    async def send_one(self, message: Outgoing, content: Social) -> Outcome:
        if in_window(message.last_inbound_at, self.clock.now()):
            messaging_type = "RESPONSE"
        elif content.tag and message.purpose == "transactional":
            messaging_type = "MESSAGE_TAG"
        else:
            why = "a message tag cannot carry marketing" if content.tag else "no message tag"
            return PermanentError(reason=f"outside Messenger's 24-hour window and {why}", code="outside_window",
                                  fallback=True)
        response = await self.http.post(
            self.graph_url(f"{self.config.page_id}/messages"),
            json=messenger_message(message.to, content, messaging_type=messaging_type),
            headers={"Authorization": f"Bearer {self.config.page_access_token}"},
        )
        if response.is_success:
            return Accepted(provider_message_id=str(response_object(response).get("message_id", message.delivery_id)),
                            details={"messaging_type": messaging_type})
        return graph_outcome(response, self.clock.timestamp(), forget_codes=DEAD_PSID_CODES)

    def events(self, payload: Mapping[str, Any]) -> Sequence[WebhookEvent]:
        if payload.get("object") != "page":
            return []
        found: list[WebhookEvent] = []
        for entry in objs(payload.get("entry")):
            for event in objs(entry.get("messaging")):
                psid = text(obj(event.get("sender")).get("id"))
                when = timestamp(event.get("timestamp"), millis=True)
                message, postback = obj(event.get("message")), obj(event.get("postback"))
                if message and psid and not message.get("is_echo"):
                    properties = {"provider": "messenger", "text": text(message.get("text"))}
                    if quick_reply := text(obj(message.get("quick_reply")).get("payload")):
                        properties["quick_reply"] = quick_reply
                    found.append(WebhookEvent(name=Events.MESSAGE_REPLIED, channel="social",
                                              id=text(message.get("mid")), who={"messenger_psid": psid},
                                              properties=properties, occurred_at=when))
                elif postback and psid:
                    found.append(WebhookEvent(
                        name=Events.MESSAGE_REPLIED, channel="social", id=text(postback.get("mid")),
                        who={"messenger_psid": psid}, occurred_at=when,
                        properties={"provider": "messenger", "postback": text(postback.get("payload")),
                                    "text": text(postback.get("title"))},
                    ))
                mids = obj(event.get("delivery")).get("mids")
                for mid in [m for m in mids if text(m)] if isinstance(mids, list) else ():
                    found.append(WebhookEvent(name=Events.MESSAGE_DELIVERED, channel="social", id=f"{mid}:delivered",
                                              provider_message_id=mid, properties={"provider": "messenger"},
                                              occurred_at=when))
        return found
