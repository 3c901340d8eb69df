"""Shopify order and fulfillment webhooks through `omni.handle_webhook` (a webhook-only source)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _pos_helpers import SHOPIFY_SECRET, shopify_headers
from omnisdk_pos import ShopifyPOS

from omnisdk import Events, Omni, Outgoing, PermanentError, PosOffer, VirtualClock, WebhookError, WebhookRequest

URL = "https://shop.example/webhooks/shopify"


@pytest.fixture
def omni(tmp_path: Path) -> Iterator[Omni]:
    config = {"webhooks": {"sources": {"shopify": {"channel": "pos", "webhook_secret": SHOPIFY_SECRET}}}}
    with Omni(f"sqlite:///{tmp_path}/omni.db", config=config, clock=VirtualClock()) as client:
        client.identify("c-42", email="ada@example.com", phone="+14155550100")
        yield client


def deliver(omni: Omni, topic: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> int:
    body = json.dumps(payload).encode()
    return omni.handle_webhook("shopify", "POST", URL, headers or shopify_headers(body, topic), body).status


def order(**fields: Any) -> dict[str, Any]:
    return {"id": 820982911946154508, "email": "ada@example.com", "total_price": "199.00", "currency": "USD",
            "financial_status": "paid", "source_name": "pos", "location_id": 655441491,
            "processed_at": "2026-01-05T12:10:00Z", "customer": {"id": 115310627314723954}, **fields}


def test_derived_vector_verifies_and_tampering_is_rejected() -> None:
    shopify = ShopifyPOS(ShopifyPOS.Config(webhook_secret="hush"), http=httpx.AsyncClient())
    body = b'{"id":820982911946154508,"email":"jon@example.com","total_price":"199.00"}'
    signed = {"X-Shopify-Hmac-Sha256": "19sb4TQ53/TxxyK6YcMtX+aMrJyVgshiuMO90SUSl08="}

    shopify.verify_webhook(WebhookRequest(method="POST", url=URL, headers=signed, body=body))
    for tampered in (body.replace(b"199", b"1"), body + b" "):
        with pytest.raises(WebhookError):
            shopify.verify_webhook(WebhookRequest(method="POST", url=URL, headers=signed, body=tampered))


def test_pos_order_is_an_in_store_purchase_and_online_order_a_web_one(omni: Omni) -> None:
    assert deliver(omni, "orders/paid", order()) == 200
    assert deliver(omni, "orders/paid", order(id=2, source_name="web")) == 200

    store, web = omni.timeline("c-42")[-2:]
    assert (store.channel, store.name, web.channel) == ("pos", Events.ORDER_COMPLETED, "web")
    assert store.properties["revenue"] == 199.0 and store.properties["location_id"] == "655441491"
    assert omni.customer("c-42").identifier("shopify_customer_id") == "115310627314723954"


def test_create_then_paid_records_one_purchase(omni: Omni) -> None:
    deliver(omni, "orders/create", order())
    deliver(omni, "orders/paid", order())
    deliver(omni, "orders/create", order(id=3, financial_status="pending"))

    assert [t.name for t in omni.timeline("c-42")].count(Events.ORDER_COMPLETED) == 1


def test_refunds_and_cancellations(omni: Omni) -> None:
    refund = {"id": 509562969, "processed_at": "2026-01-06T09:00:00Z",
              "transactions": [{"kind": "refund", "status": "success", "amount": "41.94"}]}
    deliver(omni, "orders/updated", order(financial_status="partially_refunded", refunds=[refund]))
    deliver(omni, "orders/updated", order(financial_status="partially_refunded", refunds=[refund]))
    deliver(omni, "orders/cancelled", order(id=4, cancel_reason="customer", cancelled_at="2026-01-06T10:00:00Z"))

    refunded, cancelled = omni.timeline("c-42")[-2:]
    assert (refunded.name, refunded.properties["revenue"], refunded.properties["refund_id"]) == (
        Events.ORDER_REFUNDED, 41.94, "509562969")
    assert (cancelled.name, cancelled.properties["reason"]) == (Events.ORDER_CANCELLED, "customer")


def test_pickup_fulfillments_become_bopis_touchpoints(omni: Omni) -> None:
    fulfillment = {"id": 255858046, "order_id": 450789469, "email": "ada@example.com", "location_id": 655441491,
                   "destination": {"phone": "+1 415-555-0100"}, "updated_at": "2026-01-05T15:00:00Z"}
    deliver(omni, "fulfillments/update", fulfillment | {"shipment_status": "ready_for_pickup"})
    deliver(omni, "fulfillments/update", fulfillment | {"shipment_status": "in_transit"})
    deliver(omni, "fulfillments/update", fulfillment | {"shipment_status": "picked_up"})

    assert [(t.channel, t.name) for t in omni.timeline("c-42")] == [
        ("pos", Events.ORDER_READY_FOR_PICKUP), ("pos", Events.ORDER_PICKED_UP)]


def test_tampered_webhook_records_nothing(omni: Omni) -> None:
    body = json.dumps(order()).encode()
    headers = shopify_headers(body, "orders/paid", secret="not-the-secret")

    assert omni.handle_webhook("shopify", "POST", URL, headers, body).status == 401
    assert omni.timeline("c-42") == []


def test_shopify_sends_nothing() -> None:
    shopify = ShopifyPOS(ShopifyPOS.Config(webhook_secret="hush"), http=httpx.AsyncClient())
    message = Outgoing(delivery_id="d1", idempotency_key="k", customer_id="c", to="x", content=PosOffer(title="t"))

    [outcome] = asyncio.run(shopify.send([message]))

    assert isinstance(outcome, PermanentError) and outcome.code == "not_supported"
    assert "hush" not in repr(shopify)
