"""Catalog triggers start journeys, in virtual time on both stores: back in stock (with its per-variant
quota), price drop, browse abandonment, low stock in cart and replenishment, each ending on a purchase
on any channel, a purchase in store (POS) included."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from omnisdk import ConfigError, Events, JourneyContext, Omni, journey
from omnisdk.commerce import BackInStock, BrowseAbandonment, LowStockInCart, PriceDrop, Replenishment
from omnisdk.journeys import from_dict
from omnisdk.testing import JourneyTester

DAY = timedelta(days=1)
BOOTS = {"sku": "boots-42", "product_id": "boots", "title": "Trail boots", "price": "100.00",
         "url": "https://shop.example/boots", "image_url": "https://shop.example/boots.jpg", "category": "shoes"}
SOCKS = {"sku": "socks", "title": "Wool socks", "price": "12", "category": "shoes"}
BUY_AT_POS = {"order_id": "pos-1", "revenue": 100.0, "products": [{"sku": "boots-42", "quantity": 1}]}


def catalog_journey(name: str, event: str) -> Any:
    @journey(name, trigger=event, exit_on=[Events.ORDER_COMPLETED])
    async def flow(ctx: JourneyContext) -> None:
        await ctx.send("first", f"{name}-1", channel="email", data={"sku": ctx.trigger.properties["sku"]})
        await ctx.sleep("wait-1d", DAY)
        await ctx.send("second", f"{name}-2", channel="email")

    return flow


back_in_stock = catalog_journey("back-in-stock", Events.BACK_IN_STOCK)
price_drop = catalog_journey("price-drop", Events.PRICE_DROPPED)
low_stock = catalog_journey("low-stock", Events.LOW_STOCK_IN_CART)
replenish = catalog_journey("replenish", Events.REPLENISHMENT_DUE)
browse = from_dict({
    "id": "browse-abandonment", "version": "1", "trigger": Events.BROWSE_ABANDONED,
    "exit_on": [Events.ORDER_COMPLETED],
    "nodes": {"first": {"send": "browse-1", "channel": "email", "next": "wait-1d"},
              "wait-1d": {"sleep": {"days": 1}, "next": "second"},
              "second": {"send": "browse-2", "channel": "email"}},
})


@pytest.fixture
def tester(store_url: str) -> Iterator[Any]:
    made: list[JourneyTester] = []

    def make(*journeys: Any) -> JourneyTester:
        made.append(JourneyTester(*journeys, store=store_url, load_entry_points=False))
        made[-1].omni.catalog.upsert_many([BOOTS, SOCKS])
        return made[-1]

    yield make
    for t in made:
        t.close()


def started(t: JourneyTester, journey_id: str) -> list[str]:
    return sorted(r.customer_id for r in t.runs(journey=journey_id))


def triggers(t: JourneyTester, customer_id: str, event: str) -> list[dict[str, Any]]:
    return [dict(tp.properties) for tp in t.omni.timeline(customer_id) if tp.name == event]


def restock(t: JourneyTester, quantity: int, location: str = "online") -> None:
    t.omni.catalog.set_inventory("boots-42", location, quantity)
    t.advance(minutes=1)


def test_back_in_stock_notifies_a_quota_per_unit_and_keeps_the_rest_for_the_next_restock(tester: Any) -> None:
    t = tester(back_in_stock)
    t.omni.catalog.watch(BackInStock(quota_factor=2))
    restock(t, 0)
    waiting = [f"c{i:02d}" for i in range(12)]
    for customer in waiting[:10]:
        t.omni.catalog.subscribe(customer, "boots-42")
        t.advance(minutes=1)
    t.emit("c10", Events.PRODUCT_VIEWED, {"sku": "boots-42"})  # viewed it sold out: waits too
    t.emit("c11", Events.PRODUCT_VIEWED, {"product_id": "boots-42"})
    t.advance(minutes=1)

    restock(t, 3)  # 3 units x 2: the six who waited longest
    assert started(t, "back-in-stock") == waiting[:6]
    assert triggers(t, "c00", Events.BACK_IN_STOCK)[0] | {"subscribed_by": "?"} == {
        "sku": "boots-42", "product_id": "boots", "title": "Trail boots", "price": 100.0, "currency": "USD",
        "url": "https://shop.example/boots", "image_url": "https://shop.example/boots.jpg", "category": "shoes",
        "brand": None, "location": "online", "quantity": 3, "restocked": 3, "subscribed_by": "?"}

    restock(t, 2)  # stock sold down: nothing restocked, nobody new
    assert started(t, "back-in-stock") == waiting[:6]
    restock(t, 10)  # 8 units restocked: the remaining six, viewers included
    assert started(t, "back-in-stock") == waiting
    assert triggers(t, "c11", Events.BACK_IN_STOCK)[0]["subscribed_by"] == "viewed"
    assert all(len(triggers(t, c, Events.BACK_IN_STOCK)) == 1 for c in waiting)


def test_a_store_restock_reaches_subscribers_of_that_store_or_of_anywhere(tester: Any) -> None:
    t = tester(back_in_stock)
    restock(t, 0, "store-9")
    t.omni.catalog.subscribe("ada", "boots-42", location="store-9")
    t.omni.catalog.subscribe("bob", "boots-42", location="store-3")
    t.omni.catalog.subscribe("cy", "boots-42")
    t.advance(minutes=1)

    restock(t, 5, "store-9")
    assert started(t, "back-in-stock") == ["ada", "cy"]
    assert triggers(t, "ada", Events.BACK_IN_STOCK)[0]["location"] == "store-9"


def test_buying_in_store_ends_the_back_in_stock_journey_and_the_subscription(tester: Any) -> None:
    t = tester(back_in_stock)
    restock(t, 0)
    for customer in ("ada", "bob", "cy"):
        t.omni.catalog.subscribe(customer, "boots-42")
    t.emit("cy", Events.ORDER_COMPLETED, BUY_AT_POS, channel="pos")  # found a pair in store before the restock
    restock(t, 5)
    assert started(t, "back-in-stock") == ["ada", "bob"]

    t.emit("ada", Events.ORDER_COMPLETED, BUY_AT_POS | {"order_id": "pos-2"}, channel="pos")
    t.advance(days=2)

    assert t.statuses("ada") == ["exited"]
    assert t.steps("ada") == ["first"]
    assert t.steps("bob") == ["first", "second"]
    assert t.deliveries("ada")[0].data == {"sku": "boots-42"}


def test_price_drop_reaches_viewers_and_carters_who_did_not_buy(tester: Any) -> None:
    t = tester(price_drop)
    t.omni.catalog.watch(PriceDrop(min_percent=10, min_amount=5))
    t.emit("old", Events.PRODUCT_VIEWED, {"sku": "boots-42"})
    t.advance(days=40)
    t.emit("ada", Events.PRODUCT_VIEWED, {"sku": "boots-42"})
    t.emit("bob", Events.PRODUCT_ADDED, {"sku": "boots-42", "cart_id": "k1"})
    t.emit("cy", Events.PRODUCT_VIEWED, {"sku": "boots-42"})
    t.emit("cy", Events.ORDER_COMPLETED, BUY_AT_POS, channel="pos")
    t.emit("dee", Events.PRODUCT_VIEWED, {"sku": "socks"})

    t.omni.catalog.upsert_many([BOOTS | {"price": "95.00"}])  # 5%: under the threshold
    t.advance(minutes=1)
    assert started(t, "price-drop") == []
    t.omni.catalog.upsert_many([BOOTS | {"price": "80.00"}])
    t.advance(minutes=1)

    assert started(t, "price-drop") == ["ada", "bob"]
    [dropped] = triggers(t, "bob", Events.PRICE_DROPPED)
    assert (dropped["old_price"], dropped["new_price"], dropped["drop_percent"], dropped["interest"]) == (
        95.0, 80.0, 15.79, "carted")
    t.omni.catalog.upsert_many([BOOTS | {"price": "60.00"}])  # a second cut: one message per view or cart
    t.advance(minutes=1)
    assert len(triggers(t, "ada", Events.PRICE_DROPPED)) == 1

    t.emit("bob", Events.ORDER_COMPLETED, {"order_id": "web-1", "products": [{"sku": "boots-42"}]})
    t.advance(days=2)
    assert (t.statuses("bob"), t.steps("bob")) == (["exited"], ["first"])
    assert t.steps("ada") == ["first", "second"]


def test_browse_abandonment_after_the_window_without_cart_or_purchase(tester: Any) -> None:
    t = tester(browse)
    t.omni.catalog.watch(BrowseAbandonment(window=timedelta(hours=2)))
    t.emit("ada", Events.PRODUCT_VIEWED, {"sku": "socks"})
    t.advance(minutes=1)
    t.emit("ada", Events.PRODUCT_VIEWED, {"sku": "boots-42"})
    t.emit("bob", Events.PRODUCT_VIEWED, {"sku": "boots-42"})
    t.emit("cy", Events.PRODUCT_VIEWED, {"sku": "boots-42"})
    t.emit("eve", Events.PRODUCT_VIEWED, {"sku": "boots-42"})
    t.advance(minutes=30)
    t.emit("bob", Events.PRODUCT_ADDED, {"sku": "boots-42"})
    t.emit("cy", Events.ORDER_COMPLETED, BUY_AT_POS, channel="pos")

    t.advance(hours=1)
    assert started(t, "browse-abandonment") == []
    t.advance(hours=1)
    assert started(t, "browse-abandonment") == ["ada", "eve"]
    [abandoned] = triggers(t, "ada", Events.BROWSE_ABANDONED)
    assert (abandoned["sku"], abandoned["skus"]) == ("boots-42", ["boots-42", "socks"])

    t.emit("eve", Events.ORDER_COMPLETED, BUY_AT_POS, channel="pos")
    t.advance(days=2)
    assert (t.steps("ada"), t.steps("eve"), t.statuses("eve")) == (["first", "second"], ["first"], ["exited"])
    assert len(triggers(t, "ada", Events.BROWSE_ABANDONED)) == 1


def test_low_stock_reaches_who_has_it_in_the_cart(tester: Any) -> None:
    t = tester(low_stock)
    t.omni.catalog.watch(LowStockInCart(threshold=5))
    restock(t, 10)
    t.emit("ada", Events.PRODUCT_ADDED, {"sku": "boots-42", "cart_id": "k1"})
    t.emit("bob", Events.PRODUCT_VIEWED, {"sku": "boots-42"})
    t.emit("cy", Events.PRODUCT_ADDED, {"sku": "boots-42", "cart_id": "k2"})
    t.emit("cy", Events.ORDER_COMPLETED, BUY_AT_POS, channel="pos")
    t.emit("dee", Events.PRODUCT_ADDED, {"sku": "boots-42", "cart_id": "k3"})
    t.emit("dee", Events.PRODUCT_REMOVED, {"sku": "boots-42", "cart_id": "k3"})
    t.emit("eve", Events.PRODUCT_ADDED, {"sku": "boots-42", "cart_id": "k4"})

    restock(t, 6)
    restock(t, 9, "store-9")  # another location's stock is not the online cart's
    assert started(t, "low-stock") == []
    restock(t, 4)
    restock(t, 3)
    assert started(t, "low-stock") == ["ada", "eve"]
    assert [p["quantity"] for p in triggers(t, "ada", Events.LOW_STOCK_IN_CART)] == [4]

    t.emit("eve", Events.ORDER_COMPLETED, BUY_AT_POS, channel="pos")
    t.advance(days=2)
    assert (t.steps("ada"), t.statuses("eve")) == (["first", "second"], ["exited"])


def test_replenishment_follows_each_customers_own_rhythm(tester: Any) -> None:
    t = tester(replenish)
    t.omni.catalog.watch(Replenishment(lead=DAY))
    t.emit("ada", Events.ORDER_COMPLETED, {"order_id": "a1", "products": [{"sku": "boots-42"}]})
    t.emit("bob", Events.ORDER_COMPLETED, {"order_id": "b1", "products": [{"sku": "boots-42"}]})
    t.emit("cy", Events.ORDER_COMPLETED, {"order_id": "c1", "products": [{"sku": "socks"}]})
    t.advance(days=30)
    t.emit("ada", Events.ORDER_COMPLETED, BUY_AT_POS | {"order_id": "a2"}, channel="pos")  # every 30 days
    t.advance(days=10)
    t.emit("cy", Events.ORDER_COMPLETED, {"order_id": "c2", "products": [{"sku": "boots-42"}]})  # shoes: 40 days

    t.advance(days=18)  # day 58: ada is due on day 60, reminded a day ahead
    assert started(t, "replenish") == []
    t.advance(days=1)
    assert started(t, "replenish") == ["ada"]
    [due] = triggers(t, "ada", Events.REPLENISHMENT_DUE)
    assert due["sku"] == "boots-42" and due["expected_at"].startswith(
        (t.clock.now() + DAY).date().isoformat())

    t.emit("ada", Events.ORDER_COMPLETED, BUY_AT_POS | {"order_id": "a3"}, channel="pos")
    t.advance(days=20)  # day 79: cy bought shoes on days 0 and 40 and is due for boots on day 80
    assert started(t, "replenish") == ["ada", "cy"]
    assert triggers(t, "cy", Events.REPLENISHMENT_DUE)[0]["sku"] == "boots-42"
    assert t.statuses("ada") == ["exited"]
    assert triggers(t, "bob", Events.REPLENISHMENT_DUE) == []


def test_a_visitor_who_signs_in_later_is_notified_on_the_merged_profile(tester: Any) -> None:
    t = tester(back_in_stock)
    restock(t, 0)
    t.emit({"anonymous_id": "web-7f3a"}, Events.PRODUCT_VIEWED, {"sku": "boots-42"})  # sold out: waits
    t.identify("ada", anonymous_id="web-7f3a", email="ada@example.com")

    restock(t, 1)

    assert started(t, "back-in-stock") == ["ada"]
    assert triggers(t, "ada", Events.BACK_IN_STOCK)[0]["subscribed_by"] == "viewed"


def test_triggers_are_configured_in_the_catalog_section(store_url: str) -> None:
    config = {"catalog": {"back_in_stock": {"quota_factor": 0.5},
                          "browse_abandonment": {"window": {"hours": 3}, "max_age": {"days": 2}}}}
    with JourneyTester(back_in_stock, store=store_url, config=config, load_entry_points=False) as t:
        t.omni.catalog.upsert_many([BOOTS])
        restock(t, 0)
        for customer in ("ada", "bob", "cy", "dee"):
            t.omni.catalog.subscribe(customer, "boots-42")
            t.advance(minutes=1)
        restock(t, 3)  # 3 units x 0.5, rounded up
        assert started(t, "back-in-stock") == ["ada", "bob"]


@pytest.mark.parametrize(("section", "field"), [
    ({"back_in_stock": {"quota_factor": 0}}, "catalog.back_in_stock"),
    ({"low_stock_in_cart": {"threshold": "five"}}, "catalog.low_stock_in_cart"),
    ({"browse_abandonment": {"window": {"fortnights": 1}}}, "catalog.browse_abandonment"),
    ({"back_in_stoke": {}}, "catalog.back_in_stoke"),
    ({"price_drop": 10}, "catalog.price_drop"),
])
def test_a_bad_catalog_section_is_a_config_error(section: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Omni("sqlite://:memory:", config={"catalog": section}, load_entry_points=False)
    assert caught.value.field == field
