"""A shop with two customers and data of Ada's in every table, for the erasure and export tests.

`seed(omni)` returns what identifies Ada (every value an erasure must leave nowhere) and what
identifies Bob (who stays, so a scan that finds nothing of Ada is shown to find what is there).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import attrs

import omnisdk
from omnisdk import Email, JourneyContext, Message, Omni, Postcard, journey
from omnisdk.providers import Accepted, Capabilities, Outcome, Outgoing, Provider
from omnisdk.segments import did
from omnisdk.store._consents import insert_consent
from omnisdk.store._quarantine import quarantine_row

ADA = "cust-ada-7731"
ADA_VALUES = {
    "customer id": ADA,
    "anonymous id": "web-ada-3141",
    "email": "ada.lovelace@analytical.example",
    "phone": "+14155550123",
    "push token": "fcmtoken-ada-9f8e7d6c",
    "messenger id": "psid-ada-55501",
    "first name": "Augusta",
    "last name": "Lovelace",
    "street": "12 Analytical Row",
    "postal code": "NW1 6XE",
    "ip": "203.0.113.77",
    "user agent": "AdaBrowser/1.0",
    "note": "leave it with the porter Mr Babbage",
}
BOB = {"customer id": "cust-bob-2718", "email": "bob.builder@example.org", "street": "7 Quarry Lane"}

WELCOME = Message("welcome", email=Email(subject="Welcome {{ customer.first_name }}",
                                         text="Hello {{ customer.first_name }} {{ customer.last_name }}!"))
RECEIPT = Message("receipt", email=Email(subject="Your receipt", text="Thanks {{ customer.first_name }}, order "
                                                                       "{{ data.order_id }}."))
POSTCARD = Message("postcard", direct_mail=Postcard(front_html="<p>Dear {{ customer.first_name }}</p>",
                                                    back_html="<p>See you in store</p>"))


class KeepingEmail(Provider):
    """An email provider that can be asked about a send (`reconcile`), so the dispatcher keeps the
    rendered content it sent; its provider ids are made of the address, as some providers' are."""

    name = "keeping"
    channel = "email"
    capabilities = Capabilities(max_batch_size=10, reconcile=True)

    @attrs.define
    class Config:
        pass

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[Outcome]:
        return [Accepted(provider_message_id=f"<{m.delivery_id}.{m.to}@mail.example>") for m in batch]


class Providers:
    @omnisdk.hookimpl
    def register_providers(self, register: Any) -> None:
        register(KeepingEmail)


CONFIG: dict[str, Any] = {"channels": {"email": {"provider": "keeping"}, "direct_mail": {"provider": "memory"}}}


@journey("welcome-series", version="1", trigger="Signed Up")
async def welcome_series(ctx: JourneyContext) -> None:
    await ctx.experiment("welcome-subject", {"a": 0.5, "b": 0.5})
    await ctx.send("hello", "welcome", channel="email")
    await ctx.wait_for("bought", "Order Completed", timeout=timedelta(days=3))


@journey("review-request", version="1", trigger="Order Completed")
async def review_request(ctx: JourneyContext) -> None:
    await ctx.sleep("a-fortnight", timedelta(days=14))
    await ctx.send("ask", "receipt", channel="email", data={"order_id": ctx.trigger.properties.get("order_id")})


def open_shop(store: str, clock: omnisdk.Clock, **config: Any) -> Omni:
    omni = Omni(store, config={**CONFIG, **config}, clock=clock, plugins=[Providers()])
    for message in (WELCOME, RECEIPT, POSTCARD):
        omni.templates.add(message)
    omni.register(welcome_series, review_request)
    return omni


def seed(omni: Omni) -> None:
    """Ada in every table (both profiles merged), Bob beside her."""
    omni.watch_segment("buyers", did("Order Completed"))
    omni.track({"anonymous_id": ADA_VALUES["anonymous id"]}, "Product Viewed",
               {"product_id": "sku-1", "ip": ADA_VALUES["ip"], "user_agent": ADA_VALUES["user agent"]},
               channel="web")
    omni.identify(ADA, anonymous_id=ADA_VALUES["anonymous id"], email=ADA_VALUES["email"],
                  phone=ADA_VALUES["phone"], fcm_token=ADA_VALUES["push token"],
                  messenger_psid=ADA_VALUES["messenger id"],
                  traits={"first_name": ADA_VALUES["first name"], "last_name": ADA_VALUES["last name"]},
                  timezone="Europe/London", locale="en-GB",
                  address={"name": f"{ADA_VALUES['first name']} {ADA_VALUES['last name']}",
                           "line1": ADA_VALUES["street"], "city": "London", "postal_code": ADA_VALUES["postal code"],
                           "country": "GB"})
    omni.consent(ADA, channel="email", granted=True, source="checkout-form")
    omni.consent(ADA, channel="direct_mail", granted=True, source="checkout-form")
    with omni.store.transaction() as tx:  # a consent as a STOP/START reply records it: with its evidence
        insert_consent(tx, ADA, "sms", "marketing", False, "sms-reply", omni.clock.timestamp(),
                       evidence=f"SM-reply-from-{ADA_VALUES['phone']}")
    omni.identify(BOB["customer id"], email=BOB["email"], traits={"first_name": "Bob"},
                  address={"line1": BOB["street"], "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"})
    omni.consent(BOB["customer id"], channel="email", granted=True, source="checkout-form")
    for who in (ADA, BOB["customer id"]):
        omni.track(who, "Signed Up", {"note": ADA_VALUES["note"] if who == ADA else "hi"}, channel="web")
    omni.run_until_idle()  # runs start, exposures recorded, welcome emails sent
    omni.send(ADA, "postcard", channel="direct_mail", purpose="transactional")
    omni.send(ADA, "receipt", channel="email", data={"order_id": "o-1", "deliver_to": ADA_VALUES["street"]},
              purpose="transactional")
    omni.run_until_idle()
    omni.track({"phone": ADA_VALUES["phone"]}, "Order Completed",
               {"order_id": "pos-1", "revenue": 120.0, "store": "soho", "cashier_note": ADA_VALUES["note"]},
               channel="pos")
    omni.track(BOB["customer id"], "Order Completed", {"order_id": "web-9", "revenue": 30.0}, channel="web")
    omni.clock.advance(hours=2)
    omni.run_until_idle()  # the segment is evaluated: both are buyers
    omni.send(ADA, "welcome", channel="email")  # queued, not yet sent: the erasure cancels it
    with omni.store.transaction() as tx:  # a row of Ada's no read could decode, set aside
        seq = tx.scalar("SELECT MAX(seq) FROM touchpoints WHERE customer_id = ? AND name = 'Signed Up'", (ADA,))
        tx.execute("UPDATE touchpoints SET properties = ? WHERE seq = ?", (json.dumps([ADA_VALUES["note"]]), seq))
        quarantine_row(tx, "touchpoints", (seq,), TypeError("properties: expected a JSON object"))


def aggregates(omni: Omni) -> dict[str, Any]:
    """What must add up the same before and after an erasure."""
    until = omni.clock.now() + timedelta(days=1)
    kpis = omni.kpis("channel", until=until)
    return {
        "kpis": kpis.as_dicts(), "total": kpis.total.as_dict(),
        "unattributed": (kpis.unattributed_conversions, kpis.unattributed_revenue),
        "attribution": {model: dict(omni.attribution(model, until=until).value) for model in ("last_touch", "linear")},
        "experiments": [(e.experiment, e.exposures) for e in omni.experiments()],
        "experiment": [(v.name, v.exposures) for v in omni.experiment(
            "welcome-subject", control="a", method="fixed").variants],
    }
