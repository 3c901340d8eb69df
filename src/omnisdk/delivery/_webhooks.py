"""Inbound webhooks: verified first, then recorded as touchpoints, delivery statuses and consent.

Nothing is stored for a request that fails verification, uses a method its provider never uses
(405), carries a body its signature cannot cover (a GET with a body: 403) or is too large. A
verified request is recorded in one transaction: repeated events (providers retry) are recognised
by their id, a repeated request by its nonce (the scheme's own, else the body's digest, else for a
bodiless GET the digest of its URL). A nonce seen before with another method, URL or body is
refused as a replay (409); an identical repeat is a provider's retry, acknowledged, recording
nothing. Consent changes (unsubscribe, STOP, complaint, hard bounce) land before the next send
anywhere, because the dispatcher reads the consent ledger when it claims each delivery; the
keyword rules are in `_keywords`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .._clock import Clock
from .._errors import ConfigError, ValidationError, WebhookError
from .._identity import IdentityResolver
from .._logging import get_logger
from .._products import InventoryLevel, Variant, check_location, check_quantity, check_sku, variant_from
from .._recorder import Recorder
from .._touchpoints import CHANNELS, Events, new_id
from ..commerce import Catalog
from ..providers import WebhookEvent, WebhookRequest, WebhookResponse, WebhookResult
from ..store import SQLStore, Transaction, dumps
from ..store._deliveries import EventDelivery, find_event_delivery, set_event_status
from ..store._webhook_requests import remember_event, remember_request
from ._keywords import ConsentRules
from ._providers import ProviderPool
from ._records import DeliveryReader

__all__ = ["MAX_WEBHOOK_BYTES", "WebhookHandler"]

log = get_logger("omnisdk.webhooks")

#: Larger bodies are refused with 413 before anything reads them (config `webhooks.max_body_bytes`).
MAX_WEBHOOK_BYTES = 1024 * 1024
#: How long a verified request's nonce is remembered (config `webhooks.replay_retention_seconds`).
REPLAY_RETENTION_SECONDS = 30 * 86400

#: Event → the delivery status it implies, and the statuses it may move a delivery from.
_STATUS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    Events.MESSAGE_DELIVERED: ("delivered", ("sending", "sent")),
    Events.MESSAGE_OPENED: ("delivered", ("sending", "sent")),
    Events.LINK_CLICKED: ("delivered", ("sending", "sent")),
    Events.MAIL_DELIVERED: ("delivered", ("sending", "sent")),
    Events.MESSAGE_BOUNCED: ("failed", ("sending", "sent", "delivered")),
    Events.MESSAGE_FAILED: ("failed", ("sending", "sent")),
}


def _response(status: int, text: str, **headers: str) -> WebhookResponse:
    return WebhookResponse(status=status, headers={"content-type": "text/plain; charset=utf-8", **headers},
                           body=text.encode())


def _positive(config: Mapping[str, Any], key: str, default: int) -> int:
    value = config.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError("expected a positive whole number", field=f"webhooks.{key}")
    return value


def _well_formed(event: Any) -> bool:
    """An event the core can store: a plugin that read odd JSON into the wrong types is refused here."""
    if not isinstance(event, WebhookEvent) or event.channel not in CHANNELS or not isinstance(event.name, str):
        return False
    ids = (event.id, event.provider_message_id, event.delivery_id)
    if not all(value is None or (isinstance(value, str) and len(value) <= 1024) for value in ids):
        return False
    if not isinstance(event.who, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in event.who.items()):
        return False
    if event.occurred_at is not None and (not isinstance(event.occurred_at, datetime)
                                          or event.occurred_at.tzinfo is None):
        return False
    try:
        dumps(dict(event.properties))
    except (TypeError, ValueError, RecursionError):
        return False
    return True


class _Replayed(Exception):
    """A nonce already recorded with other content: roll back, refuse."""


def request_digest(method: str, url: str, body: bytes) -> str:
    """What identifies one request: an identical repeat (a provider's retry) has the same digest."""
    return hashlib.sha256(b"\0".join((method.encode(), url.encode("utf-8", "surrogatepass"), body))).hexdigest()


class WebhookHandler:
    """`omni.handle_webhook`: one provider's request in, the HTTP answer it expects out."""

    def __init__(
        self, *, store: SQLStore, clock: Clock, pool: ProviderPool, recorder: Recorder, identity: IdentityResolver,
        settings: Mapping[str, Any], catalog: Catalog | None = None,
    ) -> None:
        self.store = store
        #: Where the catalog updates of a shop's or a POS's webhooks (stock, variants) are stored.
        self.catalog = catalog
        self.clock = clock
        self.pool = pool
        self.recorder = recorder
        #: Who an event is about when no delivery says (its `who` identifiers).
        self.identity = identity
        self.load = DeliveryReader(store)
        self.max_body_bytes = _positive(settings, "max_body_bytes", MAX_WEBHOOK_BYTES)
        self.replay_retention = _positive(settings, "replay_retention_seconds", REPLAY_RETENTION_SECONDS)
        self.consent = ConsentRules.from_config(settings)

    def handle(self, provider: str, method: str, url: str, headers: Mapping[str, str], body: bytes) -> WebhookResponse:
        if not isinstance(body, bytes | bytearray):
            raise ValidationError("the raw request body as bytes (signatures cover the exact bytes)", field="body")
        configured = self.pool.by_name(provider)
        if configured is None:
            return _response(404, f"no provider {provider!r} is configured")
        if len(body) > self.max_body_bytes:
            log.warning("webhook_too_large", provider=provider, size=len(body))
            return _response(413, f"body larger than {self.max_body_bytes} bytes")
        method = method.upper()
        instance = self.pool.instance(configured)
        allowed = sorted(type(instance).webhook_methods)
        if method not in allowed:
            log.warning("webhook_rejected", provider=provider, status=405, reason="method")
            return _response(405, f"{provider} webhooks use {', '.join(allowed)}", allow=", ".join(allowed))
        if method in ("GET", "HEAD") and body:
            log.warning("webhook_rejected", provider=provider, status=403, reason="body on a GET")
            return _response(403, "a GET request's body is covered by no webhook signature")
        request = WebhookRequest(method=method, url=url, headers=dict(headers), body=bytes(body))
        try:
            instance.verify_webhook(request)
            result = instance.parse_webhook(request)
            nonce = instance.webhook_nonce(request)
        except WebhookError as exc:
            log.warning("webhook_rejected", provider=provider, status=exc.status, reason=str(exc))
            return _response(exc.status, str(exc))
        except Exception as exc:  # a plugin's bug: refuse (the provider retries later), record nothing
            log.error("webhook_plugin_failed", provider=provider, error=exc)
            return _response(500, "the provider plugin failed to handle this webhook")
        if not isinstance(result, WebhookResult):
            log.error("webhook_bad_result", provider=provider, result=type(result).__name__)
            return _response(500, "the provider plugin returned no WebhookResult")
        digest = request_digest(method, url, request.body)
        if nonce is None:  # the body is what the signature covers: the same body elsewhere is a replay
            nonce = f"body:{hashlib.sha256(request.body).hexdigest()}" if request.body else f"request:{digest}"
        try:
            self._record(configured.name, result.events, nonce, digest, result.catalog)
        except _Replayed:
            log.warning("webhook_rejected", provider=provider, status=409, reason="replayed nonce")
            return _response(409, "this request's nonce was already used by another request (replay)")
        return result.response

    def _record(self, provider: str, events: Any, nonce: str, digest: str, catalog: Any = ()) -> None:
        """Every new event of one verified request, in one transaction; its touchpoints and delivery
        changes announced once it commits."""
        now = self.clock.timestamp()
        with self.store.transaction() as tx:
            if not self._first_time(tx, provider, nonce, digest, now):
                return  # the provider retried an identical request: already recorded
            self._catalog_updates(tx, provider, catalog, now)
            touchpoints: list[tuple[Any, ...]] = []
            updated: list[str] = []
            for event in events:
                if not _well_formed(event):
                    log.error("webhook_bad_event", provider=provider, kind=type(event).__name__)
                    continue
                if event.id is not None and not remember_event(tx, provider=provider, event_id=event.id, now=now):
                    continue
                touchpoint, delivery_id = self._record_event(tx, provider, event, now)
                if touchpoint is not None:
                    touchpoints.append(touchpoint)
                if delivery_id is not None:
                    updated.append(delivery_id)
            self.recorder.touchpoints(tx, touchpoints)
            if updated:
                self.recorder.deliveries(tx, updated, lambda: self.load(updated))

    def _catalog_updates(self, tx: Transaction, provider: str, updates: Any, now: float) -> None:
        """Store a webhook's variants (fields it leaves empty keep their values) and stock levels; an
        update a plugin built from odd data is logged and left out, the others stored."""
        if self.catalog is None or not updates:
            return
        variants: dict[str, Variant] = {}
        levels: dict[tuple[str, str], InventoryLevel] = {}
        for update in updates:
            try:
                if isinstance(update, InventoryLevel):
                    level = InventoryLevel(sku=check_sku(update.sku), location=check_location(update.location),
                                           quantity=check_quantity(update.quantity))
                    levels[(level.sku, level.location)] = level
                elif isinstance(update, Variant):
                    variants[update.sku] = variant_from(update)
                else:
                    raise ValidationError("expected a Variant or an InventoryLevel", field="catalog")
            except ValidationError as exc:
                log.error("webhook_bad_catalog_update", provider=provider, kind=type(update).__name__,
                          reason=str(exc))
        source = f"webhook:{provider}"
        self.catalog.write_variants(tx, list(variants.values()), source=source, now=now, merge=True)
        self.catalog.write_levels(tx, list(levels.values()), source=source, now=now)

    def _first_time(self, tx: Transaction, provider: str, nonce: str, digest: str, now: float) -> bool:
        """Remember the request's nonce; False for an identical repeat, `_Replayed` for a reused nonce."""
        seen = remember_request(tx, provider=provider, nonce=nonce, digest=digest, now=now,
                                retention=self.replay_retention)
        if seen == "reused":
            raise _Replayed
        return seen == "first"

    def _record_event(
        self, tx: Transaction, provider: str, event: WebhookEvent, now: float
    ) -> tuple[tuple[Any, ...] | None, str | None]:
        """The event's touchpoint row (stored with the request's others), and the delivery it changed."""
        delivery = find_event_delivery(tx, delivery_id=event.delivery_id,
                                       provider_message_id=event.provider_message_id, provider=provider)
        if delivery is not None:
            customer_id = delivery.customer_id
        elif event.who:
            try:
                customer_id = self.identity.resolve_who(tx, dict(event.who), now, "event.who")
            except ValidationError as exc:
                log.warning("webhook_unmatched", provider=provider, event_name=event.name, reason=str(exc))
                return None, None
        else:
            log.info("webhook_unmatched", provider=provider, event_name=event.name)
            return None, None
        properties = {**event.properties, "provider": provider}
        if delivery is not None:
            properties.update(delivery_id=delivery.id, journey=delivery.journey, template=delivery.template)
        occurred = event.occurred_at.timestamp() if event.occurred_at else now
        tp_id = f"wh_{provider}_{event.id}" if event.id else new_id()
        self.consent.apply(tx, provider, event, customer_id, delivery, now)
        changed = self._update_delivery(tx, event, delivery, now) if delivery is not None else None
        return (tp_id, customer_id, event.channel, event.name, dumps(properties), occurred, now), changed

    def _update_delivery(self, tx: Transaction, event: WebhookEvent, delivery: EventDelivery, now: float) -> str | None:
        rule = _STATUS.get(event.name)
        if rule is None or delivery.status not in rule[1]:
            return None
        status, _ = rule
        error = None
        if status == "failed":
            error = str(event.properties.get("reason") or event.properties.get("error") or event.name)
        set_event_status(tx, delivery.id, status, error, now)
        return delivery.id
