"""The shop's journeys. `omnisdk worker --import acme_shop.journeys` registers the same ones.

Each step has a name; a journey that waits is stored and resumed by whichever worker is free,
so these functions read top to bottom like the story they tell.
"""

from __future__ import annotations

from datetime import timedelta

from omnisdk import Events, JourneyContext, journey

__all__ = ["JOURNEYS", "cart_abandonment", "order_updates", "welcome"]


@journey("welcome", version="1", trigger=Events.SIGNED_UP, reentry="never")
async def welcome(ctx: JourneyContext) -> None:
    await ctx.send("hello", "welcome", channel="email")


@journey("cart-abandonment", version="1", trigger=Events.PRODUCT_ADDED, exit_on=[Events.ORDER_COMPLETED],
         reentry="after_exit")
async def cart_abandonment(ctx: JourneyContext) -> None:
    """Nudge after an hour, offer a coupon after a day. Any purchase ends it, in a store too:
    a run started by an anonymous visitor follows them into their profile when they sign up."""
    cart = {key: ctx.trigger.properties.get(key) for key in ("cart_id", "product_id", "name")}
    if await ctx.wait_for("bought-1h", Events.ORDER_COMPLETED, timeout=timedelta(hours=1)):
        return
    await ctx.send("reminder", "cart-reminder", channels=["email", "sms"], data=cart)
    if await ctx.wait_for("bought-1d", Events.ORDER_COMPLETED, timeout=timedelta(days=1)):
        return
    await ctx.send("coupon", "cart-coupon", channels=["sms", "email"], data=cart)


@journey("order-updates", version="1", trigger=Events.ORDER_COMPLETED, reentry="always")
async def order_updates(ctx: JourneyContext) -> None:
    """Confirm web orders; tell pickup customers when their order is ready (transactional: no
    marketing consent needed, but an unsubscribe from everything still holds)."""
    if ctx.trigger.channel != "web":
        return  # the till prints a receipt
    order = dict(ctx.trigger.properties)
    await ctx.send("confirmation", "order-confirmation", channel="email", purpose="transactional", data=order)
    if order.get("fulfillment") != "pickup":
        return
    ready = await ctx.wait_for("ready", Events.ORDER_READY_FOR_PICKUP, where={"order_id": order["order_id"]},
                               timeout=timedelta(days=14))
    if ready:
        await ctx.send("pickup-ready", "pickup-ready", channels=["sms", "email"], purpose="transactional",
                       data={**order, "store": ready.properties.get("store", order.get("store"))})


JOURNEYS = [welcome, cart_abandonment, order_updates]
