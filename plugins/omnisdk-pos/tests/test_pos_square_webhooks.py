"""Square webhooks through `omni.handle_webhook`: the official vectors, tampering, and in-store events
landing on the online customer's timeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _pos_helpers import SQUARE_KEY, SQUARE_URL, square_event, square_headers
from omnisdk_pos import SquarePOS

from omnisdk import Events, Omni, VirtualClock, WebhookError, WebhookRequest
from omnisdk.testing.imitations import SquareImitation

TOKEN = "EAAAl-test"


@pytest.fixture
def square() -> Iterator[SquareImitation]:
    with SquareImitation(access_token=TOKEN, location_id="LDOWNTOWN") as server:
        yield server


@pytest.fixture
def omni(square: SquareImitation, tmp_path: Path) -> Iterator[Omni]:
    config = {"channels": {"pos": {
        "provider": "square", "access_token": TOKEN, "signature_key": SQUARE_KEY, "notification_url": SQUARE_URL,
        "base_url": square.base_url, "locations": {"LDOWNTOWN": "Downtown", "LMALL": "Mall"},
    }}}
    with Omni(f"sqlite:///{tmp_path}/omni.db", config=config, clock=VirtualClock()) as client:
        client.identify("c-42", email="ada@example.com", phone="+14155550100", anonymous_id="web-7f3a")
        client.track("c-42", "Product Added", {"product_id": "sku-1", "price": 20.0}, channel="web")
        yield client


def deliver(omni: Omni, body: bytes, headers: dict[str, str] | None = None) -> int:
    return omni.handle_webhook("square", "POST", SQUARE_URL, headers or square_headers(body), body).status


def names(omni: Omni) -> list[tuple[str, str]]:
    return [(t.channel, t.name) for t in omni.timeline("c-42")]


def provider(url: str = "") -> SquarePOS:
    config = SquarePOS.Config(access_token=TOKEN, signature_key="Ibxx_5AKakO-3qeNVR61Dw", notification_url=url)
    return SquarePOS(config, http=httpx.AsyncClient())


OFFICIAL_BODY = (b'{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":'
                 b'"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":'
                 b'{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}')
OFFICIAL_URL = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"
OFFICIAL_SIG = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="


def official(body: bytes = OFFICIAL_BODY, signature: str = OFFICIAL_SIG, url: str = OFFICIAL_URL) -> WebhookRequest:
    return WebhookRequest(method="POST", url=url, body=body, headers={"x-square-hmacsha256-signature": signature})


def test_official_vectors_verify() -> None:
    provider(OFFICIAL_URL).verify_webhook(official())
    provider().verify_webhook(official())  # no notification_url configured: the request's URL is signed
    second = SquarePOS(SquarePOS.Config(access_token=TOKEN, signature_key="signature-key"), http=httpx.AsyncClient())
    second.verify_webhook(official(body=b'{"data":{"type":"webhooks","id":">id<"}}', url="https://webhook.site/webhooks",
                                   signature="Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U="))


@pytest.mark.parametrize("request_", [
    official(url="https://webhook.site/79a4f3a-dcfa-49ee-bac5-9d0edad886b9"),
    official(body=json.dumps(json.loads(OFFICIAL_BODY), indent=2).encode()),
    official(signature=""),
])
def test_official_negative_vectors_are_rejected(request_: WebhookRequest) -> None:
    with pytest.raises(WebhookError) as caught:
        provider().verify_webhook(request_)
    assert caught.value.status == 401


def test_wrong_key_is_rejected() -> None:
    wrong = SquarePOS(SquarePOS.Config(access_token=TOKEN, signature_key="MCmhFRxGX82xMwg5FsaoQA"),
                      http=httpx.AsyncClient())
    with pytest.raises(WebhookError):
        wrong.verify_webhook(official())


PAYMENT = {"payment": {"id": "pay-1", "status": "COMPLETED", "order_id": "ord-1", "customer_id": "SQ9",
                       "location_id": "LDOWNTOWN", "amount_money": {"amount": 2000, "currency": "USD"},
                       "updated_at": "2026-01-05T12:31:00Z"}}
LOYALTY = {"loyalty_account": {"id": "loy-1", "customer_id": "SQ9", "mapping": {"phone_number": "+14155550100"},
                               "balance": 10}}


def test_in_store_purchase_lands_on_the_online_customers_timeline(omni: Omni) -> None:
    assert deliver(omni, square_event("loyalty.account.updated", LOYALTY, "evt-loy")) == 200
    assert deliver(omni, square_event("payment.updated", PAYMENT, "evt-pay")) == 200

    purchase = omni.timeline("c-42")[-1]
    assert names(omni) == [("web", "Product Added"), ("pos", Events.LOYALTY_ACCOUNT_UPDATED),
                           ("pos", Events.ORDER_COMPLETED)]
    assert purchase.properties["store"] == "Downtown"
    assert (purchase.properties["order_id"], purchase.properties["revenue"]) == ("ord-1", 20.0)
    assert omni.customer("c-42").identifier("square_customer_id") == "SQ9"


def test_retried_and_repeated_payment_events_record_one_purchase(omni: Omni) -> None:
    omni.identify("c-42", square_customer_id="SQ9")
    deliver(omni, square_event("payment.created", PAYMENT, "evt-a"))
    deliver(omni, square_event("payment.updated", PAYMENT, "evt-b"))
    deliver(omni, square_event("payment.updated", PAYMENT, "evt-b"))

    assert [n for _, n in names(omni)].count(Events.ORDER_COMPLETED) == 1


def test_payments_not_completed_or_anonymous_record_nothing(omni: Omni) -> None:
    pending = {"payment": {**PAYMENT["payment"], "status": "APPROVED"}}
    cash = {"payment": {k: v for k, v in PAYMENT["payment"].items() if k != "customer_id"}}
    assert deliver(omni, square_event("payment.updated", pending)) == 200
    assert deliver(omni, square_event("payment.updated", cash)) == 200

    assert names(omni) == [("web", "Product Added")]


@pytest.mark.parametrize("tamper", [
    lambda body, headers: (body.replace(b"2000", b"9000"), headers),
    lambda body, headers: (body, {**headers, "x-square-hmacsha256-signature": "AAAA"}),
    lambda body, headers: (body, {"content-type": "application/json"}),
    lambda body, headers: (body, square_headers(body, url="https://evil.example/webhooks/square")),
])
def test_tampered_webhooks_are_rejected_and_nothing_is_recorded(omni: Omni, tamper: Any) -> None:
    payment = {"payment": {**PAYMENT["payment"], "buyer_email_address": "ada@example.com"}}
    body = square_event("payment.updated", payment)
    body, headers = tamper(body, square_headers(body))

    assert deliver(omni, body, headers) == 401
    assert names(omni) == [("web", "Product Added")]


def create_pickup_order(square: SquareImitation, state: str = "PROPOSED") -> str:
    order = {"location_id": "LDOWNTOWN", "customer_id": "SQ-ONLINE-1", "fulfillments": [{
        "uid": "ful-1", "type": "PICKUP", "state": state,
        "pickup_details": {"schedule_type": "ASAP", "recipient": {
            "display_name": "Ada", "email_address": "ada@example.com", "phone_number": "+14155550100"}},
    }]}
    response = httpx.post(f"{square.base_url}/v2/orders", json={"order": order, "idempotency_key": "k-1"},
                          headers={"Authorization": f"Bearer {TOKEN}", "Square-Version": "2025-08-20"})
    assert response.status_code == 200, response.text
    return str(response.json()["order"]["id"])


def fulfillment_update(order_id: str, old: str | None, new: str) -> dict[str, Any]:
    change = {"fulfillment_uid": "ful-1", "new_state": new} | ({"old_state": old} if old else {})
    return {"order_fulfillment_updated": {"order_id": order_id, "location_id": "LDOWNTOWN", "state": "OPEN",
                                          "updated_at": "2026-01-05T13:00:00Z", "fulfillment_update": [change]}}


def test_pickup_states_become_bopis_touchpoints_for_the_recipient(omni: Omni, square: SquareImitation) -> None:
    order_id = create_pickup_order(square)
    for old, new in (("PROPOSED", "PREPARED"), ("PREPARED", "COMPLETED")):
        deliver(omni, square_event("order.fulfillment.updated", fulfillment_update(order_id, old, new), f"e-{new}"))

    ready, picked = omni.timeline("c-42")[-2:]
    assert (ready.channel, ready.name, picked.name) == ("pos", Events.ORDER_READY_FOR_PICKUP, Events.ORDER_PICKED_UP)
    assert ready.properties["order_id"] == order_id and ready.properties["store"] == "Downtown"
    assert [r.path for r in square.requests].count(f"/v2/orders/{order_id}") == 2
    square.assert_no_violations()


def test_order_lookup_failure_asks_square_to_retry_and_records_nothing(omni: Omni, square: SquareImitation) -> None:
    order_id = create_pickup_order(square)
    square.faults.fail_next(1, "unavailable")

    status = deliver(omni, square_event("order.fulfillment.updated", fulfillment_update(order_id, None, "PREPARED")))

    assert status == 503
    assert names(omni) == [("web", "Product Added")]


def test_completed_refund_is_recorded_for_the_orders_customer(omni: Omni, square: SquareImitation) -> None:
    order_id = create_pickup_order(square)
    omni.identify("c-42", square_customer_id="SQ-ONLINE-1")
    refund = {"refund": {"id": "ref-1", "status": "COMPLETED", "order_id": order_id, "payment_id": "pay-1",
                         "location_id": "LMALL", "amount_money": {"amount": 500, "currency": "JPY"}}}

    assert deliver(omni, square_event("refund.updated", refund)) == 200

    last = omni.timeline("c-42")[-1]
    assert (last.channel, last.name) == ("pos", Events.ORDER_REFUNDED)
    assert (last.properties["revenue"], last.properties["currency"], last.properties["store"]) == (500.0, "JPY", "Mall")
