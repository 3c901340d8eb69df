"""Inbound webhooks: verified first, then recorded as touchpoints, delivery statuses and consent.

Nothing is stored for a request that fails verification or is too large. A verified request is
recorded in one transaction: repeated events (providers retry) are recognised by their id, and
consent changes (unsubscribe, STOP, complaint, hard bounce) land before the next send anywhere,
because the dispatcher reads the consent ledger when it claims each delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._clock import to_datetime
from .._errors import ConfigError, ValidationError, WebhookError
from .._logging import get_logger
from .._touchpoints import CHANNELS, MESSAGE_CHANNELS, Events, Touchpoint, new_id
from ..providers import WebhookEvent, WebhookRequest, WebhookResponse, WebhookResult
from ..store import Transaction, dumps
from ._providers import ProviderPool

__all__ = ["MAX_WEBHOOK_BYTES", "WebhookHandler"]

log = get_logger("omnisdk.webhooks")

#: Larger bodies are refused with 413 before anything reads them (config `webhooks.max_body_bytes`).
MAX_WEBHOOK_BYTES = 1024 * 1024

#: Event → the delivery status it implies, and the statuses it may move a delivery from.
_STATUS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    Events.MESSAGE_DELIVERED: ("delivered", ("sending", "sent")),
    Events.MESSAGE_OPENED: ("delivered", ("sending", "sent")),
    Events.LINK_CLICKED: ("delivered", ("sending", "sent")),
    Events.MAIL_DELIVERED: ("delivered", ("sending", "sent")),
    Events.MESSAGE_BOUNCED: ("failed", ("sending", "sent", "delivered")),
    Events.MESSAGE_FAILED: ("failed", ("sending", "sent")),
}


def _response(status: int, text: str) -> WebhookResponse:
    return WebhookResponse(status=status, headers={"content-type": "text/plain; charset=utf-8"}, body=text.encode())


class WebhookHandler:
    """`omni.handle_webhook`: one provider's request in, the HTTP answer it expects out."""

    def __init__(self, core: Any, pool: ProviderPool) -> None:
        self.core = core
        self.pool = pool
        limit = core.config.webhooks.get("max_body_bytes", MAX_WEBHOOK_BYTES)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
            raise ConfigError("expected a positive number of bytes", field="webhooks.max_body_bytes")
        self.max_body_bytes = limit

    def handle(self, provider: str, method: str, url: str, headers: Mapping[str, str], body: bytes) -> WebhookResponse:
        if not isinstance(body, bytes | bytearray):
            raise ValidationError("the raw request body as bytes (signatures cover the exact bytes)", field="body")
        configured = self.pool.by_name(provider)
        if configured is None:
            return _response(404, f"no provider {provider!r} is configured")
        if len(body) > self.max_body_bytes:
            log.warning("webhook_too_large", provider=provider, size=len(body))
            return _response(413, f"body larger than {self.max_body_bytes} bytes")
        request = WebhookRequest(method=method.upper(), url=url, headers=dict(headers), body=bytes(body))
        instance = self.pool.instance(configured)
        try:
            instance.verify_webhook(request)
            result = instance.parse_webhook(request)
        except WebhookError as exc:
            log.warning("webhook_rejected", provider=provider, status=exc.status, reason=str(exc))
            return _response(exc.status, str(exc))
        except Exception as exc:  # a plugin's bug: refuse (the provider retries later), record nothing
            log.error("webhook_plugin_failed", provider=provider, error=exc)
            return _response(500, "the provider plugin failed to handle this webhook")
        if not isinstance(result, WebhookResult):
            log.error("webhook_bad_result", provider=provider, result=type(result).__name__)
            return _response(500, "the provider plugin returned no WebhookResult")
        touchpoints, updated = self._record(configured.name, result.events)
        self.core._recorded(touchpoints)
        self.core.dispatcher._updated(updated)
        return result.response

    def _record(self, provider: str, events: Any) -> tuple[list[Touchpoint], list[str]]:
        now = self.core.clock.timestamp()
        touchpoints: list[Touchpoint] = []
        updated: list[str] = []
        with self.core.store.transaction() as tx:
            for event in events:
                if not isinstance(event, WebhookEvent) or event.channel not in CHANNELS:
                    log.error("webhook_bad_event", provider=provider, kind=type(event).__name__)
                    continue
                if event.id is not None and not tx.execute(
                    "INSERT INTO webhook_events (provider, event_id, received_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (provider, event_id) DO NOTHING",
                    (provider, event.id, now),
                ):
                    continue
                touchpoint, delivery_id = self._record_event(tx, provider, event, now)
                if touchpoint is not None:
                    touchpoints.append(touchpoint)
                if delivery_id is not None:
                    updated.append(delivery_id)
        return touchpoints, updated

    def _record_event(
        self, tx: Transaction, provider: str, event: WebhookEvent, now: float
    ) -> tuple[Touchpoint | None, str | None]:
        delivery = None
        if event.delivery_id:
            delivery = tx.one(
                "SELECT id, customer_id, status, channel, address, journey, template FROM deliveries WHERE id = ?",
                (event.delivery_id,),
            )
        if delivery is None and event.provider_message_id:
            delivery = tx.one(
                "SELECT id, customer_id, status, channel, address, journey, template FROM deliveries "
                "WHERE provider_message_id = ? AND provider = ?",
                (event.provider_message_id, provider),
            )
        if delivery is not None:
            customer_id = delivery[1]
        elif event.who:
            try:
                customer_id = self.core.resolve(tx, dict(event.who), now, field="event.who")
            except ValidationError as exc:
                log.warning("webhook_unmatched", provider=provider, event_name=event.name, reason=str(exc))
                return None, None
        else:
            log.info("webhook_unmatched", provider=provider, event_name=event.name)
            return None, None
        properties = {**event.properties, "provider": provider}
        if delivery is not None:
            properties.update(delivery_id=delivery[0], journey=delivery[5], template=delivery[6])
        occurred = event.occurred_at.timestamp() if event.occurred_at else now
        tp_id = f"wh_{provider}_{event.id}" if event.id else new_id()
        tx.execute(
            "INSERT INTO touchpoints (id, customer_id, channel, name, properties, occurred_at, recorded_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            (tp_id, customer_id, event.channel, event.name, dumps(properties), occurred, now),
        )
        self._update_consent(tx, provider, event, customer_id, delivery, now)
        changed = self._update_delivery(tx, event, delivery, now) if delivery is not None else None
        touchpoint = Touchpoint(id=tp_id, customer_id=customer_id, channel=event.channel, name=event.name,
                                properties=properties, occurred_at=to_datetime(occurred))
        return touchpoint, changed

    def _update_delivery(
        self, tx: Transaction, event: WebhookEvent, delivery: tuple[Any, ...], now: float
    ) -> str | None:
        rule = _STATUS.get(event.name)
        if rule is None or delivery[2] not in rule[1]:
            return None
        status, _ = rule
        error = None
        if status == "failed":
            error = str(event.properties.get("reason") or event.properties.get("error") or event.name)
        tx.execute(
            "UPDATE deliveries SET status = ?, error = COALESCE(?, error), fallback_due = CASE WHEN ? = 'failed' "
            "AND fallback_after IS NOT NULL THEN ? ELSE NULL END, updated_at = ? WHERE id = ?",
            (status, error, status, now, now, delivery[0]),
        )
        return str(delivery[0])

    def _update_consent(
        self, tx: Transaction, provider: str, event: WebhookEvent, customer_id: str, delivery: Any, now: float
    ) -> None:
        """Unsubscribe, STOP, complaint and hard bounce revoke; START grants. Carriers enforce an SMS STOP
        for every message from the sender, so on SMS both purposes follow the reply."""
        source = f"webhook:{provider}"
        channel = event.channel if event.channel in MESSAGE_CHANNELS else None
        if event.name in (Events.UNSUBSCRIBED, Events.SUBSCRIBED) and channel is not None:
            granted = event.name == Events.SUBSCRIBED
            purposes = ("marketing", "transactional") if channel == "sms" else ("marketing",)
            for purpose in purposes:
                self.core.record_consent(tx, customer_id, channel, purpose, granted, source, now)
        elif event.name == Events.MESSAGE_COMPLAINED:
            self.core.record_consent(tx, customer_id, "email", "marketing", False, source, now)
        elif event.name == Events.MESSAGE_BOUNCED and event.properties.get("bounce_type") == "hard" and channel:
            self.core.record_consent(tx, customer_id, channel, "marketing", False, source, now)
            address = delivery[4] if delivery is not None else None
            if address:
                tx.execute(
                    "DELETE FROM identities WHERE customer_id = ? AND value = ? AND kind <> 'user_id'",
                    (customer_id, address),
                )
