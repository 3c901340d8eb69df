"""The part of a Meta messaging provider that does not depend on the app: config, webhooks, one send."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import httpx

import omnisdk
from omnisdk import Capabilities, Outgoing, Provider, Social, WebhookEvent, WebhookRequest, WebhookResult
from omnisdk.providers import Outcome, transport_error_outcome

from ._graph import handshake, json_object, verify_meta_webhook

__all__ = ["MetaConfig", "MetaProvider", "timestamp"]


@attrs.define(kw_only=True)
class MetaConfig:
    """Keys every Meta app needs; each provider adds its own."""

    #: App dashboard → Settings → Basic → App secret: signs the webhooks.
    app_secret: str = omnisdk.secret()
    #: The string you typed in the webhook subscription form.
    verify_token: str = omnisdk.secret(default="")
    base_url: str = "https://graph.facebook.com"
    api_version: str = "v21.0"


class MetaProvider(Provider):
    """One Graph request per message; webhooks verified with the app secret, GET checks answered."""

    channel = "social"
    capabilities = Capabilities(max_batch_size=1, crash_policy="at_most_once")
    #: GET: the subscription check (verify token); POST: the signed notifications.
    webhook_methods = frozenset({"GET", "POST"})
    config: Any

    def graph_url(self, path: str) -> str:
        return f"{self.config.base_url.rstrip('/')}/{self.config.api_version}/{path.lstrip('/')}"

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[Outcome]:
        outcomes: list[Outcome] = []
        for message in batch:
            try:
                outcomes.append(await self.send_one(message, _social(message)))
            except httpx.TransportError as exc:
                outcomes.append(transport_error_outcome(exc))
        return outcomes

    async def send_one(self, message: Outgoing, content: Social) -> Outcome:
        raise NotImplementedError

    def verify_webhook(self, request: WebhookRequest) -> None:
        verify_meta_webhook(request, app_secret=self.config.app_secret, verify_token=self.config.verify_token)

    def parse_webhook(self, request: WebhookRequest) -> WebhookResult:
        answer = handshake(request)
        if answer is not None:
            return answer
        return WebhookResult(events=list(self.events(json_object(request))))

    def events(self, payload: Mapping[str, Any]) -> Sequence[WebhookEvent]:
        """The touchpoints of one verified notification."""
        raise NotImplementedError


def _social(message: Outgoing) -> Social:
    if not isinstance(message.content, Social):
        raise TypeError(f"expected a Social rendition, got {type(message.content).__name__}")
    return message.content


def timestamp(value: Any, *, millis: bool = False) -> datetime | None:
    """Meta's epoch timestamps (seconds as strings on WhatsApp, milliseconds on Messenger)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        return datetime.fromtimestamp(float(value) / (1000 if millis else 1), UTC)
    except (ValueError, OverflowError, OSError):  # not a number, NaN, or out of datetime's range
        return None
