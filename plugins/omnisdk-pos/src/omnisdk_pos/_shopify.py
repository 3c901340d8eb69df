"""Shopify (POS and online store) order webhooks as touchpoints. Inbound only.

| topic | touchpoint |
|---|---|
| `orders/paid`, or `orders/create` already paid | Order Completed |
| `orders/updated` with refunds | Order Refunded (one per refund) |
| `orders/cancelled` | Order Cancelled |
| `fulfillments/*`, shipment_status ready_for_pickup / picked_up | Order Ready for Pickup / Order Picked Up |

Product and inventory topics (`products/update`, `inventory_levels/update`) update `omni.catalog`
instead (`_shopify_catalog`).

An order whose `source_name` is "pos" happened in a store (channel `pos`); any other is `web`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs
import httpx

import omnisdk
from omnisdk import (
    Events,
    PermanentError,
    Provider,
    ProviderError,
    WebhookError,
    WebhookEvent,
    WebhookRequest,
    WebhookResult,
)
from omnisdk.providers import Outcome, Outgoing

from ._shopify_catalog import CATALOG_TOPICS, ShopifyAdmin, ShopifyCatalog
from ._webhook_util import as_id, as_list, as_mapping, check_hmac_sha256, decimal_amount, json_body, timestamp

__all__ = ["ShopifyPOS"]

SIGNATURE_HEADER: Final = "X-Shopify-Hmac-Sha256"
PICKUP_STATUSES: Final = {"ready_for_pickup": Events.ORDER_READY_FOR_PICKUP, "picked_up": Events.ORDER_PICKED_UP}


def _channel(order: Mapping[str, Any]) -> str:
    return "pos" if order.get("source_name") == "pos" else "web"


def _who(order: Mapping[str, Any]) -> dict[str, str]:
    customer = as_mapping(order.get("customer"))
    found = {"email": order.get("email") or order.get("contact_email") or customer.get("email"),
             "phone": order.get("phone") or customer.get("phone"),
             "shopify_customer_id": customer.get("id")}
    return {kind: text for kind, value in found.items() if (text := as_id(value)) is not None}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _order_properties(order: Mapping[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = {"order_id": as_id(order["id"]), "revenue": decimal_amount(order.get("total_price")),
                                  "currency": _text(order.get("currency")), "source": "shopify",
                                  "source_name": _text(order.get("source_name"))}
    if location_id := as_id(order.get("location_id")):
        properties["location_id"] = location_id
    return properties


class ShopifyPOS(Provider):
    """`handle_webhook("shopify", ...)`: Shopify orders and fulfillments, signed with `X-Shopify-Hmac-Sha256`."""

    name = "shopify"
    channel = "pos"

    @attrs.define(kw_only=True)
    class Config:
        #: The app's client secret, or the secret shown under Settings → Notifications for admin-made webhooks.
        webhook_secret: str = omnisdk.secret()
        #: The Admin API token (read_inventory, read_products): inventory webhooks name items, not SKUs.
        access_token: str = omnisdk.secret(default="")
        #: The shop, e.g. "acme.myshopify.com": the Admin API's host and the products' links.
        shop_domain: str = ""
        #: The Admin API's address; empty: https://{shop_domain}.
        base_url: str = ""
        api_version: str = "2025-07"
        #: The shop's currency (product webhooks carry prices without one).
        currency: str = "USD"
        #: Catalog location names by Shopify location id (e.g. {"655441491": "online"}); others keep their id.
        locations: dict[str, str] = attrs.field(factory=dict)
        lookup_timeout: float = 5.0

    config: Config

    def __init__(self, config: Any, *, http: httpx.AsyncClient, clock: Any = None) -> None:
        super().__init__(config, http=http, clock=clock)
        shop = f"https://{self.config.shop_domain}" if self.config.shop_domain else ""
        base = self.config.base_url or shop
        admin = ShopifyAdmin(base, self.config.access_token, self.config.api_version, self.config.lookup_timeout) \
            if self.config.access_token and base else None
        self._admin = admin
        self._catalog = ShopifyCatalog(admin, shop_url=shop, currency=self.config.currency,
                                       locations=self.config.locations)

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[Outcome]:
        reason = "the shopify pos provider only receives webhooks; send in-store offers with provider = \"square\""
        return [PermanentError(reason=reason, code="not_supported") for _ in batch]

    async def aclose(self) -> None:
        if self._admin is not None:
            self._admin.close()

    def verify_webhook(self, request: WebhookRequest) -> None:
        check_hmac_sha256(self.config.webhook_secret, request.body, request.header(SIGNATURE_HEADER),
                          provider="Shopify", header=SIGNATURE_HEADER)

    def parse_webhook(self, request: WebhookRequest) -> WebhookResult:
        topic = request.header("X-Shopify-Topic") or ""
        payload = json_body(request.body, "Shopify")
        if topic in CATALOG_TOPICS:
            try:
                return WebhookResult(catalog=self._catalog.parse(topic, payload))
            except ProviderError as exc:  # Shopify retries a webhook that did not get a 2xx
                raise WebhookError(f"cannot look up the inventory item: {exc}", status=503) from None
        if as_id(payload.get("id")) is None:  # an id of another type (a list, a float) identifies nothing
            return WebhookResult()
        if topic.startswith("fulfillments/"):
            return WebhookResult(events=self._fulfillment(payload))
        handler = {"orders/paid": self._paid, "orders/create": self._paid, "orders/updated": self._refunds,
                   "orders/cancelled": self._cancelled}.get(topic)
        return WebhookResult(events=handler(payload) if handler else [])

    def _paid(self, order: Mapping[str, Any]) -> list[WebhookEvent]:
        who = _who(order)
        if order.get("financial_status") not in ("paid", "partially_refunded", "refunded") or not who:
            return []
        return [WebhookEvent(name=Events.ORDER_COMPLETED, channel=_channel(order), id=f"shopify:order:{order['id']}",
                             who=who, properties=_order_properties(order),
                             occurred_at=timestamp(order.get("processed_at") or order.get("created_at")))]

    def _refunds(self, order: Mapping[str, Any]) -> list[WebhookEvent]:
        who = _who(order)
        events = []
        for refund in map(as_mapping, as_list(order.get("refunds"))):
            refund_id = as_id(refund.get("id"))
            if refund_id is None or not who:
                continue
            transactions = map(as_mapping, as_list(refund.get("transactions")))
            amount = sum(decimal_amount(t.get("amount")) or 0.0 for t in transactions
                         if t.get("kind") == "refund" and t.get("status") in (None, "success"))
            events.append(WebhookEvent(
                name=Events.ORDER_REFUNDED, channel=_channel(order), id=f"shopify:refund:{refund_id}", who=who,
                properties=_order_properties(order) | {"refund_id": refund_id, "revenue": amount},
                occurred_at=timestamp(refund.get("processed_at") or refund.get("created_at")),
            ))
        return events

    def _cancelled(self, order: Mapping[str, Any]) -> list[WebhookEvent]:
        """X-Shopify-Topic is not signed: a cancellation is recorded only when the signed body shows one."""
        if not order.get("cancelled_at"):
            raise WebhookError("orders/cancelled topic on an order the signed body does not show cancelled",
                               status=403)
        who = _who(order)
        if not who:
            return []
        return [WebhookEvent(name=Events.ORDER_CANCELLED, channel=_channel(order),
                             id=f"shopify:order:{order['id']}:cancelled", who=who,
                             properties=_order_properties(order) | {"reason": _text(order.get("cancel_reason"))},
                             occurred_at=timestamp(order.get("cancelled_at")))]

    def _fulfillment(self, fulfillment: Mapping[str, Any]) -> list[WebhookEvent]:
        status = _text(fulfillment.get("shipment_status"))
        destination = as_mapping(fulfillment.get("destination"))
        who = {k: text for k, v in (("email", fulfillment.get("email")), ("phone", destination.get("phone")))
               if (text := as_id(v)) is not None}
        if status not in PICKUP_STATUSES or not who:
            return []
        properties: dict[str, Any] = {"order_id": as_id(fulfillment.get("order_id")) or "", "source": "shopify",
                                      "fulfillment_id": as_id(fulfillment["id"])}
        if location_id := as_id(fulfillment.get("location_id")):
            properties["location_id"] = location_id
        return [WebhookEvent(name=PICKUP_STATUSES[str(status)], channel="pos",
                             id=f"shopify:fulfillment:{fulfillment['id']}:{status}", who=who, properties=properties,
                             occurred_at=timestamp(fulfillment.get("updated_at")))]
