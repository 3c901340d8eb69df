"""End to end across channels: a web cart, a push reminder, an in-store Square purchase.

The journey must end on the POS purchase, the purchase must land on the same customer's
timeline as the web and push touchpoints, and nothing more may go out. Real plugins
(omnisdk-push's FCM, omnisdk-pos's Square) talk to local imitations; both stores.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest

from omnisdk import SMS, Message, Omni, Push, VirtualClock, journey
from omnisdk.journeys import JourneyContext
from omnisdk.testing.imitations import FCMImitation

NOTIFY_URL = "https://shop.example/omnisdk/webhooks/square"
SQUARE_KEY = "e2e-signature-key"


@journey("cart-e2e", version="1", trigger="Product Added", exit_on=["Order Completed"])
async def cart(ctx: JourneyContext) -> None:
    if await ctx.wait_for("bought-1h", "Order Completed", timeout=timedelta(hours=1)):
        return
    await ctx.send("nudge", "cart-reminder", channel="push")
    if await ctx.wait_for("bought-1d", "Order Completed", timeout=timedelta(days=1)):
        return
    await ctx.send("coupon", "cart-coupon", channel="sms")


@pytest.fixture
def fcm() -> Iterator[FCMImitation]:
    with FCMImitation() as imitation:
        yield imitation
    imitation.assert_no_violations()


@pytest.fixture
def shop(store_url: str, clock: VirtualClock, fcm: FCMImitation) -> Iterator[Omni]:
    config = {
        "channels": {
            "push": {"provider": "fcm", "credentials": json.dumps(fcm.service_account_info), "base_url": fcm.base_url},
            "sms": {"provider": "memory"},
            "pos": {"provider": "square", "access_token": "EAAA-test", "signature_key": SQUARE_KEY,
                    "notification_url": NOTIFY_URL, "locations": {"LSOHO": "SoHo"}},
        }
    }
    with Omni(store_url, config=config, clock=clock) as omni:
        reminder = Push(title="Still thinking?", body="{{ customer.first_name }}, your cart is waiting")
        omni.templates.add(Message("cart-reminder", push=reminder))
        omni.templates.add(Message("cart-coupon", sms=SMS(text="10% off with CART10")))
        omni.register(cart)
        yield omni


def square_purchase(omni: Omni, email: str, when: str) -> int:
    payment = {"id": "pay-1", "status": "COMPLETED", "order_id": "ord-1", "buyer_email_address": email,
               "location_id": "LSOHO", "amount_money": {"amount": 4200, "currency": "USD"}, "updated_at": when}
    body = json.dumps({"merchant_id": "M1", "type": "payment.updated", "event_id": "evt-pay-1", "created_at": when,
                       "data": {"type": "payment", "id": "pay-1", "object": {"payment": payment}}}).encode()
    signature = base64.b64encode(hmac.new(SQUARE_KEY.encode(), NOTIFY_URL.encode() + body, hashlib.sha256).digest())
    headers = {"content-type": "application/json", "x-square-hmacsha256-signature": signature.decode()}
    return omni.handle_webhook("square", "POST", NOTIFY_URL, headers, body).status


def test_web_cart_push_then_in_store_purchase_ends_the_journey(
    shop: Omni, clock: VirtualClock, fcm: FCMImitation
) -> None:
    shop.identify("c-1", email="ada@example.com", phone="+14155550100", fcm_token="device-token-1",
                  traits={"first_name": "Ada"})
    shop.consent("c-1", channel="push", granted=True)
    shop.consent("c-1", channel="sms", granted=True)
    shop.track({"email": "ADA@example.com"}, "Product Added", {"product_id": "sku-1"}, channel="web")
    shop.run_until_idle()

    clock.advance(hours=1, minutes=1)
    shop.run_until_idle()
    assert len(fcm.messages) == 1  # the push reminder went out through FCM

    clock.advance(hours=3)
    assert square_purchase(shop, "ada@example.com", clock.now().isoformat().replace("+00:00", "Z")) == 200
    shop.run_until_idle()
    clock.advance(days=2)
    shop.run_until_idle()

    [run] = shop.runs(journey="cart-e2e", customer_id="c-1")
    assert (run.status, run.step) == ("exited", "bought-1d")
    timeline = [(t.channel, t.name) for t in shop.timeline("c-1")]
    assert timeline == [("web", "Product Added"), ("push", "Message Sent"), ("pos", "Order Completed")]
    purchase = shop.timeline("c-1", channels=["pos"])[0]
    assert (purchase.properties["revenue"], purchase.properties["store"]) == (42.0, "SoHo")
    assert len(fcm.messages) == 1
    assert [(d.channel, d.status) for d in shop.deliveries(customer_id="c-1")] == [("push", "sent")]
