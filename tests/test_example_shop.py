"""The example shop (examples/shop) driven in-process, as a browser, a till and a mail client would.

Time is a VirtualClock; the app's own worker is off, so each test says when omnisdk does its due work.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from omnisdk import AsyncOmni, Outgoing, VirtualClock
from omnisdk.testing.imitations import SendGridImitation, TwilioImitation

SHOP_DIR = Path(__file__).resolve().parent.parent / "examples" / "shop"
sys.path.insert(0, str(SHOP_DIR))  # the example is not installed; `uvicorn` imports it from its folder too

from acme_shop.app import create_app, lifespan  # noqa: E402
from acme_shop.marketing import load_config  # noqa: E402

START = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # a Monday afternoon: outside the quiet hours
STAFF = {"authorization": "Bearer till-secret"}
ADA = {"email": "ada@example.com", "password": "correct horse", "first_name": "Ada", "phone": "+1 415 555 0100",
       "email_marketing": True, "sms_marketing": False}

Scenario = Callable[[httpx.AsyncClient, AsyncOmni, VirtualClock], Awaitable[None]]


@asynccontextmanager
async def shop(store_url: str, clock: VirtualClock, **options: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The shop app started (lifespan) and a cookie-keeping client talking to it through ASGI."""
    app = create_app(store=store_url, clock=clock, staff_token="till-secret", **{"worker": False, **options})
    async with lifespan(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                               base_url="http://testserver") as browser:
        yield browser, app


def run(store_url: str, scenario: Scenario, **options: Any) -> None:
    async def main() -> None:
        clock = VirtualClock(START)
        async with shop(store_url, clock, **options) as (browser, app):
            await scenario(browser, app.state.shop.omni, clock)

    asyncio.run(main())


def sent(omni: AsyncOmni, channel: str) -> list[Outgoing]:
    """What the memory provider of `channel` was asked to send."""
    return list(omni.provider(channel).sent)  # type: ignore[attr-defined]


def local_path(url: str) -> str:
    """A link's path and query, to request it from the in-process app."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_anonymous_cart_is_stitched_reminded_ended_in_store_clicked_and_unsubscribed(store_url: str) -> None:
    async def scenario(browser: httpx.AsyncClient, omni: AsyncOmni, clock: VirtualClock) -> None:
        # An anonymous visitor browses and puts a tent in the cart.
        assert (await browser.get("/products/sku-tent")).status_code == 200
        assert "acme_visitor" in browser.cookies
        added = await browser.post("/cart/items", json={"product_id": "sku-tent"})
        assert added.status_code == 201
        cart_id = added.json()["cart_id"]
        await omni.run_until_idle()
        [anonymous_run] = await omni.runs(journey="cart-abandonment")
        assert anonymous_run.status == "waiting"

        # She signs up, ticking the email box only: her anonymous history and journey become hers.
        signed_up = await browser.post("/signup", json=ADA)
        assert signed_up.status_code == 201, signed_up.text
        ada = signed_up.json()["customer_id"]
        history = [(t.channel, t.name) for t in await omni.timeline(ada)]
        assert history[:3] == [("web", "Product Viewed"), ("web", "Product Added"), ("web", "Signed Up")]
        customer = await omni.customer(ada)
        assert (customer.email, customer.phone, customer.first_name) == ("ada@example.com", "+14155550100", "Ada")
        assert customer.has_consent("email") and not customer.has_consent("sms")
        assert customer.consent_for("email").source == "signup-form"  # type: ignore[union-attr]
        [run_after_signup] = await omni.runs(journey="cart-abandonment", customer_id=ada)
        assert run_after_signup.id == anonymous_run.id
        await omni.run_until_idle()
        assert [m.content.subject for m in sent(omni, "email")] == ["Welcome to Acme Outfitters, Ada"]

        # She leaves. An hour later the reminder goes out by email (no SMS consent).
        clock.advance(minutes=59)
        await omni.run_until_idle()
        assert len(sent(omni, "email")) == 1
        clock.advance(minutes=2)
        await omni.run_until_idle()
        reminder = sent(omni, "email")[-1]
        assert (reminder.to, reminder.content.subject) == ("ada@example.com", "Ada, your Two-person tent is waiting")
        assert reminder.metadata["journey"] == "cart-abandonment"
        assert sent(omni, "sms") == []

        # Next morning she buys the tent in a store; the till knows her by phone. The journey ends.
        clock.advance(hours=18)
        sale = {"phone": "(415) 555-0100", "order_id": "T-100", "revenue": 189.0, "store": "Downtown"}
        assert (await browser.post("/pos/sales", json=sale)).status_code == 401  # tills authenticate
        till = await browser.post("/pos/sales", json=sale, headers=STAFF)
        assert till.status_code == 201 and till.json()["customer_id"] == ada
        await omni.run_until_idle()
        clock.advance(days=2)
        await omni.run_until_idle()
        [run] = await omni.runs(journey="cart-abandonment", customer_id=ada)
        assert (run.status, run.reason) == ("exited", "goal reached: Order Completed")
        assert [d.step for d in await omni.deliveries(customer_id=ada, journey="cart-abandonment")] == ["reminder"]
        assert sent(omni, "sms") == [] and len(sent(omni, "email")) == 2  # no coupon
        assert ("pos", "Order Completed") in [(t.channel, t.name) for t in await omni.timeline(ada)]

        # She clicks the reminder's link: omnisdk's ASGI app records the click and redirects to the cart.
        [link] = re.findall(r'href="([^"]*/omnisdk/c/[^"]*)"', reminder.content.html or "")
        clicked = await browser.get(local_path(link.replace("&amp;", "&")))
        assert clicked.status_code == 302
        destination = urlsplit(clicked.headers["location"])
        assert (destination.path, "utm_campaign=cart-abandonment" in destination.query) == ("/cart", True)
        [click] = [t for t in await omni.timeline(ada) if t.name == "Link Clicked"]
        assert (click.channel, click.properties["journey"], cart_id) == ("email", "cart-abandonment", cart_id)

        # And unsubscribes with one click (RFC 8058: the mail client POSTs the List-Unsubscribe URL).
        unsubscribe = reminder.metadata["unsubscribe_url"]
        assert unsubscribe in (reminder.content.text or "")  # the footer partial shows it too
        confirm_page = await browser.get(local_path(unsubscribe))  # mail scanners GET links: that changes nothing
        assert confirm_page.status_code == 200 and (await omni.customer(ada)).has_consent("email")
        assert (await browser.post(local_path(unsubscribe))).status_code == 200
        assert not (await omni.customer(ada)).has_consent("email")
        account = await browser.get("/account")
        assert account.json()["marketing"] == {"email": False, "sms": False}
        assert "Unsubscribed" in [t.name for t in await omni.timeline(ada)]

    run(store_url, scenario)


def test_pickup_order_is_confirmed_then_announced_when_ready(store_url: str) -> None:
    async def scenario(browser: httpx.AsyncClient, omni: AsyncOmni, clock: VirtualClock) -> None:
        ada = (await browser.post("/signup", json={**ADA, "email_marketing": False})).json()["customer_id"]
        assert (await browser.post("/orders", json={})).status_code == 409  # empty cart
        await browser.post("/cart/items", json={"product_id": "sku-boots", "quantity": 2})
        await browser.post("/checkout")
        placed = await browser.post("/orders", json={"fulfillment": "pickup", "store": "Downtown"})
        assert placed.status_code == 201
        order = placed.json()
        assert (order["revenue"], order["products"][0]["quantity"]) == (258.0, 2)
        await omni.run_until_idle()
        # Transactional: confirmed by email although she declined marketing; the welcome was not sent.
        emails = sent(omni, "email")
        assert len(emails) == 1, await omni.deliveries(customer_id=ada)
        confirmation = emails[0]
        assert confirmation.content.subject == f"Order {order['order_id']} confirmed"
        assert "2 x Trail boots" in (confirmation.content.text or "")
        [cart_run] = await omni.runs(journey="cart-abandonment", customer_id=ada)
        assert cart_run.status == "exited"

        clock.advance(hours=3)
        ready = await browser.post(f"/orders/{order['order_id']}/ready", headers=STAFF)
        assert ready.status_code == 200
        await omni.run_until_idle()
        [notice] = sent(omni, "sms")
        assert (notice.to, notice.purpose) == ("+14155550100", "transactional")
        assert notice.content.text == f"Acme Outfitters: order {order['order_id']} is ready for pickup at Downtown."
        assert [(t.channel, t.name) for t in await omni.timeline(ada)][-2:] == [
            ("pos", "Order Ready for Pickup"), ("sms", "Message Sent")]

    run(store_url, scenario)


def test_bad_input_is_refused_with_the_field_and_stores_nothing(tmp_path: Path) -> None:
    async def scenario(browser: httpx.AsyncClient, omni: AsyncOmni, clock: VirtualClock) -> None:
        refused = await browser.post("/signup", json={**ADA, "phone": "12"})
        assert (refused.status_code, refused.json()["field"]) == (422, "phone")
        assert (await browser.post("/signup", json={**ADA, "email": "not-an-email"})).json()["field"] == "email"
        assert (await browser.post("/cart/items", json={"product_id": "sku-nope"})).status_code == 404
        assert (await browser.post("/cart/items", json={"product_id": "sku-mug", "quantity": 0})).status_code == 422
        assert (await browser.post("/cart/items", content=b"{")).status_code == 400
        assert (await browser.get("/omnisdk/c/forged")).status_code == 400
        assert (await browser.post("/omnisdk/u/forged")).status_code == 400
        # The refused signups left no account behind: the same email signs up fine now.
        assert (await browser.post("/signup", json=ADA)).status_code == 201
        assert (await browser.post("/signup", json=ADA)).status_code == 409

    run(f"sqlite:///{tmp_path}/shop.db", scenario)


def test_shopify_pos_webhook_through_the_mounted_app_ends_the_cart_journey(tmp_path: Path) -> None:
    """Stores on Shopify POS: their signed order webhooks reach /omnisdk/webhooks/shopify (omnisdk-pos)."""
    config = load_config()
    config["webhooks"]["sources"] = {"shopify": {"channel": "pos", "webhook_secret": "shpss_test"}}
    order = {"id": 820982911946154508, "source_name": "pos", "financial_status": "paid", "total_price": "14.00",
             "currency": "USD", "phone": "+14155550100", "processed_at": "2026-03-02T18:00:00Z"}
    body = json.dumps(order).encode()
    signature = base64.b64encode(hmac.new(b"shpss_test", body, hashlib.sha256).digest()).decode()

    async def scenario(browser: httpx.AsyncClient, omni: AsyncOmni, clock: VirtualClock) -> None:
        ada = (await browser.post("/signup", json=ADA)).json()["customer_id"]
        await browser.post("/cart/items", json={"product_id": "sku-mug"})
        await omni.run_until_idle()
        headers = {"x-shopify-topic": "orders/paid", "content-type": "application/json"}
        forged = await browser.post("/omnisdk/webhooks/shopify", content=body,
                                    headers={**headers, "x-shopify-hmac-sha256": "AAAA"})
        assert forged.status_code == 401
        assert "Order Completed" not in [t.name for t in await omni.timeline(ada)]
        accepted = await browser.post("/omnisdk/webhooks/shopify", content=body,
                                      headers={**headers, "x-shopify-hmac-sha256": signature})
        assert accepted.status_code == 200
        await omni.run_until_idle()
        [purchase] = [t for t in await omni.timeline(ada) if t.name == "Order Completed"]
        assert (purchase.channel, purchase.properties["revenue"]) == ("pos", 14.0)
        [run] = await omni.runs(journey="cart-abandonment", customer_id=ada)
        assert run.status == "exited"

    run(f"sqlite:///{tmp_path}/shop.db", scenario, config=config)


def test_real_provider_channels_send_through_sendgrid_and_twilio(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """channels.providers.toml, pointed at the local SendGrid and Twilio imitations by environment."""
    with SendGridImitation() as sendgrid, TwilioImitation() as twilio:
        config = providers_config(sendgrid, twilio, monkeypatch)

        async def scenario(browser: httpx.AsyncClient, omni: AsyncOmni, clock: VirtualClock) -> None:
            ada = (await browser.post("/signup", json=ADA)).json()["customer_id"]
            await browser.post("/cart/items", json={"product_id": "sku-tent"})
            order = (await browser.post("/orders", json={"fulfillment": "pickup", "store": "Mall"})).json()
            await omni.run_until_idle()
            assert (await browser.post(f"/orders/{order['order_id']}/ready", headers=STAFF)).status_code == 200
            await omni.run_until_idle()
            [notice] = await omni.deliveries(customer_id=ada, channel="sms")
            assert (notice.provider, notice.status, notice.purpose) == ("twilio", "sent", "transactional")

        run(f"sqlite:///{tmp_path}/shop.db", scenario, config=config)
    sendgrid.assert_no_violations()
    twilio.assert_no_violations()
    subjects = sorted(mail["request"]["subject"] for mail in sendgrid.mails)
    assert subjects[0].startswith("Order ") and subjects[1] == "Welcome to Acme Outfitters, Ada"
    assert [(m["to"], m["body"].split(":")[0]) for m in twilio.messages] == [("+14155550100", "Acme Outfitters")]


def test_twilio_status_callback_through_the_mounted_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twilio signs the status_callback URL it was given; the mounted app must check that same URL."""
    with SendGridImitation() as sendgrid, TwilioImitation() as twilio:
        config = providers_config(sendgrid, twilio, monkeypatch)

        async def scenario(browser: httpx.AsyncClient, omni: AsyncOmni, clock: VirtualClock) -> None:
            signup = {**ADA, "email_marketing": False, "sms_marketing": True}
            ada = (await browser.post("/signup", json=signup)).json()["customer_id"]
            await browser.post("/cart/items", json={"product_id": "sku-tent"})
            await omni.run_until_idle()
            clock.advance(hours=2)
            await omni.run_until_idle()  # the cart reminder goes out by SMS, the only consented channel
            [callback] = twilio.status_callbacks("delivered")
            assert str(callback.url) == "http://localhost:8000/omnisdk/webhooks/twilio"
            answer = await browser.post(local_path(str(callback.url)), content=callback.content,
                                        headers=dict(callback.headers))
            assert answer.status_code == 200, answer.text
            [reminder] = await omni.deliveries(customer_id=ada, channel="sms")
            assert reminder.status == "delivered"

        run(f"sqlite:///{tmp_path}/shop.db", scenario, config=config)


def providers_config(sendgrid: SendGridImitation, twilio: TwilioImitation,
                     monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The shop's config with channels.providers.toml's channels, aimed at the imitations."""
    monkeypatch.setenv("SENDGRID_API_KEY", sendgrid.api_key)
    monkeypatch.setenv("SENDGRID_BASE_URL", sendgrid.base_url)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", twilio.account_sid)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", twilio.auth_token)
    monkeypatch.setenv("TWILIO_BASE_URL", twilio.base_url)
    monkeypatch.delenv("SHOP_URL", raising=False)
    return load_config(channels=SHOP_DIR / "channels.providers.toml")


def test_the_worker_runs_in_the_lifespan_and_stops_with_the_app(tmp_path: Path) -> None:
    async def main() -> None:
        async with shop(f"sqlite:///{tmp_path}/shop.db", VirtualClock(START), worker=True) as (browser, app):
            assert (await browser.get("/products")).status_code == 200
            worker = app.state.shop.worker
            assert worker is not None and not worker.done()
        assert worker.done() and isinstance(worker.result(), int)

    asyncio.run(main())


def test_the_welcome_email_shows_best_sellers_from_the_catalog(store_url: str) -> None:
    """The shop imports its products into omnisdk's catalog at start; the welcome e-mail's product block
    shows what others bought most, with price, picture, tracked link and stock."""

    async def scenario(browser: httpx.AsyncClient, omni: AsyncOmni, clock: VirtualClock) -> None:
        assert (await omni.catalog.variant("sku-tent")) is not None  # imported by the lifespan
        for i, (product, quantity) in enumerate([("sku-mug", 1), ("sku-mug", 2), ("sku-boots", 1)]):
            buyer = await omni.identify(f"buyer-{i}", email=f"buyer{i}@example.com")
            await omni.track(buyer.id, "Order Completed", {"order_id": f"old-{i}", "revenue": 14.0 * quantity,
                             "products": [{"product_id": product, "quantity": quantity}]}, channel="pos")
        await browser.post("/signup", json=ADA)
        await omni.run_until_idle()
        [welcome] = sent(omni, "email")
        text, html = welcome.content.text or "", welcome.content.html or ""
        assert "- Enamel mug: $14.00 (In stock online)" in text and "- Trail boots: $129.00" in text
        assert "Two-person tent" not in text  # nobody bought it: not a best seller
        assert html.count('class="omni-product"') == 2 and "/static/sku-mug.jpg" in html
        [mug_link] = [line.strip() for line in text.splitlines()[text.splitlines().index(
            "- Enamel mug: $14.00 (In stock online)") + 1:][:1]]
        clicked = await browser.get(local_path(mug_link))
        assert (clicked.status_code, urlsplit(clicked.headers["location"]).path) == (302, "/products/sku-mug")

    run(store_url, scenario)
