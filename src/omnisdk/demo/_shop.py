"""What the demo store sends: its messages and its journeys, written as an app would write them."""

from __future__ import annotations

from datetime import timedelta

from .._content import SMS, Email, Message, Postcard, Push
from .._touchpoints import Events
from ..journeys import JourneyContext, journey

__all__ = ["JOURNEYS", "MESSAGES", "WELCOME_EXPERIMENT"]

#: The welcome journey's subject-line experiment; the report charts it.
WELCOME_EXPERIMENT = "welcome-subject"
SIGN_OFF = "— the Acme Outfitters team"

MESSAGES = [
    Message(
        "welcome",
        email=Email(subject="Welcome to Acme, {{ customer.first_name }}",
                    html="<p>Hi {{ customer.first_name }}, thanks for joining. <a href=\"https://acme.example/new\">"
                         "See what's new</a></p><p>" + SIGN_OFF + "</p>",
                    text="Hi {{ customer.first_name }}, thanks for joining. " + SIGN_OFF),
    ),
    Message(  # the other subject line of the welcome journey's experiment
        "welcome-personal",
        email=Email(subject="{{ customer.first_name }}, a little welcome gift inside",
                    html="<p>Hi {{ customer.first_name }}, thanks for joining. <a href=\"https://acme.example/new\">"
                         "See what's new</a></p><p>" + SIGN_OFF + "</p>",
                    text="Hi {{ customer.first_name }}, thanks for joining. " + SIGN_OFF),
    ),
    Message(
        "app-tips",
        push=Push(title="Get the most out of Acme", body="Save items, track orders, pick up in store.",
                  url="https://acme.example/app"),
        email=Email(subject="Three things to try, {{ customer.first_name }}",
                    text="Save items, track orders, pick up in store. " + SIGN_OFF),
    ),
    Message(
        "cart-reminder",
        push=Push(title="{{ customer.first_name }}, your cart is waiting",
                  body="{{ data.product_id }} is still in your cart.", url="https://acme.example/cart"),
        email=Email(subject="{{ customer.first_name }}, your cart is waiting",
                    html="<p>{{ data.product_id }} is still in your cart. "
                         "<a href=\"https://acme.example/cart\">Finish checking out</a></p>",
                    text="{{ data.product_id }} is still in your cart. " + SIGN_OFF),
        sms=SMS(text="Acme: {{ data.product_id }} is still in your cart. Reply STOP to opt out."),
    ),
    Message(
        "cart-coupon",
        sms=SMS(text="Acme: 10% off {{ data.product_id }} with code CART10, online or in store. "
                     "Reply STOP to opt out."),
        email=Email(subject="10% off what you left behind", text="Use CART10, online or in store. " + SIGN_OFF),
    ),
    Message(
        "pickup-ready",
        sms=SMS(text="Acme: order {{ data.order_id }} is ready for pickup at {{ data.store }}."),
        push=Push(title="Ready for pickup", body="Order {{ data.order_id }} is waiting at {{ data.store }}."),
        email=Email(subject="Your order is ready for pickup", text="Order {{ data.order_id }} is at {{ data.store }}."),
    ),
    Message(
        "winback",
        email=Email(subject="We miss you, {{ customer.first_name }}",
                    text="Here is 15% off your next visit: WELCOME15. " + SIGN_OFF),
        sms=SMS(text="Acme misses you: 15% off with WELCOME15, online or in store. Reply STOP to opt out."),
    ),
    Message(
        "back-in-stock",
        push=Push(title="Back in stock: {{ event.title }}", body="{{ products([event.sku], limit=1) }}",
                  url="{{ event.url }}"),
        email=Email(subject="{{ event.title }} is back",
                    html="<p>Hi {{ customer.first_name }}, it is back:</p>{{ products([event.sku], limit=1) }}"
                         "<p>" + SIGN_OFF + "</p>",
                    text="It is back: {{ products([event.sku], limit=1) }}\n" + SIGN_OFF),
        sms=SMS(text="Acme: back in stock: {{ products([event.sku], limit=1) }}. Reply STOP to opt out."),
    ),
    Message(
        "browse-abandonment",  # the demo's recommendations block: what they looked at, then what goes with it
        email=Email(subject="Still thinking about {{ event.title }}?",
                    html="<p>Hi {{ customer.first_name }}, you were looking at:</p>{{ products(event.skus, limit=2) }}"
                         "<h2>You may also like</h2>{{ products(recommendations(3)) }}<p>" + SIGN_OFF + "</p>",
                    text="You were looking at:\n{{ products(event.skus, limit=2) }}\n\nYou may also like:\n"
                         "{{ products(recommendations(3)) }}\n" + SIGN_OFF),
    ),
    Message(
        "winback-postcard",
        direct_mail=Postcard(front_html="<h1>We miss you, {{ customer.first_name }}</h1>",
                             back_html="<p>Bring this card in store for 20% off.</p>"),
    ),
]


@journey("welcome", version="1", trigger="Signed Up", reentry="never")
async def welcome(ctx: JourneyContext) -> None:
    """A subject-line experiment on the first email: half get the plain subject, half a personal one."""
    subject = await ctx.experiment(WELCOME_EXPERIMENT, {"control": 0.5, "personal": 0.5})
    await ctx.send("hello", "welcome" if subject == "control" else "welcome-personal", channel="email")
    await ctx.sleep("two-days", timedelta(days=2))
    await ctx.send("tips", "app-tips", channels=["push", "email"])


@journey("cart-abandonment", version="1", trigger="Product Added", exit_on=["Order Completed"],
         reentry="after_exit")
async def cart_abandonment(ctx: JourneyContext) -> None:
    """Ends on a purchase on any channel: buying in store stops the online reminders."""
    product = {"product_id": ctx.trigger.properties.get("product_id")}
    if await ctx.wait_for("bought-1h", "Order Completed", timeout=timedelta(hours=1)):
        return
    await ctx.send("nudge", "cart-reminder", channels=["push", "email"], data=product)
    if await ctx.wait_for("bought-1d", "Order Completed", timeout=timedelta(days=1)):
        return
    await ctx.send("coupon", "cart-coupon", channels=["sms", "email"], data=product)


@journey("pickup", version="1", trigger="Order Ready for Pickup", reentry="always")
async def pickup(ctx: JourneyContext) -> None:
    """A transactional notice on the customer's preferred channel."""
    props = ctx.trigger.properties
    await ctx.send("ready", "pickup-ready", purpose="transactional",
                   data={"order_id": props.get("order_id"), "store": props.get("store", "our store")})


@journey("win-back", version="1", trigger="Segment Entered", exit_on=["Order Completed"], reentry="after_exit")
async def win_back(ctx: JourneyContext) -> None:
    """Digital first; the postcard (slow, and it costs money) only for those still inactive after it."""
    if ctx.trigger.properties.get("segment") != "lapsed":
        return
    await ctx.send("email", "winback", channel="email")
    if await ctx.wait_for("back-7d", "Order Completed", timeout=timedelta(days=7)):
        return
    await ctx.send("sms", "winback", channel="sms")
    if await ctx.wait_for("back-14d", "Order Completed", timeout=timedelta(days=7)):
        return
    await ctx.send("postcard", "winback-postcard", channel="direct_mail")


@journey("back-in-stock", version="1", trigger=Events.BACK_IN_STOCK, exit_on=[Events.ORDER_COMPLETED],
         reentry="always")
async def back_in_stock(ctx: JourneyContext) -> None:
    """The catalog's trigger chose who (first come, first served, as many as units came back)."""
    await ctx.send("notice", "back-in-stock", channels=["push", "sms", "email"])


@journey("browse-abandonment", version="1", trigger=Events.BROWSE_ABANDONED, exit_on=[Events.ORDER_COMPLETED],
         reentry="after_exit")
async def browse_abandonment(ctx: JourneyContext) -> None:
    """Viewed, neither carted nor bought within the hour: one e-mail the next morning with what they looked
    at and what goes with it; buying anywhere first (the POS too) ends it."""
    if await ctx.wait_for("bought", Events.ORDER_COMPLETED, timeout=timedelta(hours=12)):
        return
    await ctx.send("reminder", "browse-abandonment", channel="email")


JOURNEYS = [welcome, cart_abandonment, pickup, win_back, back_in_stock, browse_abandonment]
