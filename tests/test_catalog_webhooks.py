"""The catalog kept current from the POS and the shop, on both stores: Square's inventory and catalog
webhooks and Shopify's inventory level and product webhooks, verified first, SKUs read from the
imitations of their APIs; a restock reported by Square starts a back-in-stock journey."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from omnisdk import Events, JourneyContext, Omni, VirtualClock, journey
from omnisdk.testing.imitations import ShopifyImitation, SquareImitation

SQUARE_KEY = "sq-signature-key"
SQUARE_URL = "https://shop.example/webhooks/square"
SHOPIFY_SECRET = "hush"
SHOPIFY_URL = "https://shop.example/webhooks/shopify"
TOKEN = "EAAAl-test"


@pytest.fixture
def square() -> Iterator[SquareImitation]:
    with SquareImitation(access_token=TOKEN, location_id="LDOWNTOWN") as server:
        server.set_variation("VAR-1", item_id="ITEM-1", item_name="Trail boots", name="42", sku="boots-42",
                             price=12000, updated_at="2026-01-05T12:00:00.000Z")
        server.set_variation("VAR-2", item_id="ITEM-2", item_name="Gift card", updated_at="2026-01-05T12:00:00.000Z")
        yield server


@pytest.fixture
def shopify() -> Iterator[ShopifyImitation]:
    with ShopifyImitation(access_token="shpat_test") as server:
        yield server


@pytest.fixture
def omni(store_url: str, square: SquareImitation, shopify: ShopifyImitation) -> Iterator[Omni]:
    config = {
        "channels": {"pos": {"provider": "square", "access_token": TOKEN, "signature_key": SQUARE_KEY,
                             "notification_url": SQUARE_URL, "base_url": square.base_url}},
        "webhooks": {"sources": {"shopify": {
            "channel": "pos", "webhook_secret": SHOPIFY_SECRET, "access_token": "shpat_test",
            "base_url": shopify.base_url, "shop_domain": "acme.myshopify.com", "currency": "EUR",
            "locations": {"655441491": "online"}}}},
    }
    with Omni(store_url, config=config, clock=VirtualClock()) as client:
        yield client


def to_square(omni: Omni, kind: str, obj: dict[str, Any], event_id: str, key: str = SQUARE_KEY) -> int:
    body = json.dumps({"merchant_id": "M1", "type": kind, "event_id": event_id, "created_at": "2026-01-05T12:30:00Z",
                       "data": {"type": kind.split(".")[0], "id": event_id, "object": obj}}).encode()
    signature = base64.b64encode(hmac.new(key.encode(), SQUARE_URL.encode() + body, hashlib.sha256).digest())
    headers = {"content-type": "application/json", "x-square-hmacsha256-signature": signature.decode()}
    return omni.handle_webhook("square", "POST", SQUARE_URL, headers, body).status


def to_shopify(omni: Omni, topic: str, payload: Any, secret: str = SHOPIFY_SECRET) -> int:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    headers = {"Content-Type": "application/json", "X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": signature}
    return omni.handle_webhook("shopify", "POST", SHOPIFY_URL, headers, body).status


def counts(*counts: tuple[str, str, str]) -> dict[str, Any]:
    return {"inventory_counts": [{"catalog_object_id": obj, "catalog_object_type": "ITEM_VARIATION",
                                  "state": "IN_STOCK", "location_id": location, "quantity": quantity,
                                  "calculated_at": "2026-01-05T12:29:00Z"} for obj, location, quantity in counts]}


def test_square_inventory_counts_set_store_stock_by_sku(omni: Omni, square: SquareImitation) -> None:
    assert to_square(omni, "inventory.count.updated", counts(("VAR-1", "LDOWNTOWN", "3"), ("VAR-1", "LMALL", "0.5"),
                                                             ("VAR-2", "LMALL", "7")), "evt-1") == 200

    assert omni.catalog.inventory("boots-42") == {"LDOWNTOWN": 3, "LMALL": 0}
    assert omni.catalog.inventory("VAR-2") == {"LMALL": 7}  # no SKU in Square: known by its variation id
    assert omni.catalog.available("boots-42", "LDOWNTOWN") and not omni.catalog.available("boots-42", "LMALL")
    assert [r.path for r in square.requests] == ["/v2/catalog/batch-retrieve"]
    square.assert_no_violations()


def test_a_square_restock_starts_the_back_in_stock_journey(omni: Omni) -> None:
    @journey("square-back-in-stock", trigger=Events.BACK_IN_STOCK, exit_on=[Events.ORDER_COMPLETED])
    async def notify(ctx: JourneyContext) -> None:
        await ctx.send("notify", "back-in-stock", channel="email")

    omni.register(notify)
    omni.catalog.upsert_many([{"sku": "boots-42", "title": "Trail boots", "price": "120"}])
    to_square(omni, "inventory.count.updated", counts(("VAR-1", "LDOWNTOWN", "0")), "evt-1")
    omni.catalog.subscribe("ada", "boots-42", location="LDOWNTOWN")
    omni.run_until_idle()
    assert omni.runs(journey="square-back-in-stock") == []

    to_square(omni, "inventory.count.updated", counts(("VAR-1", "LDOWNTOWN", "2")), "evt-2")
    omni.run_until_idle()

    [run] = omni.runs(journey="square-back-in-stock")
    assert run.customer_id == "ada"
    assert [d.step for d in omni.deliveries(customer_id="ada")] == ["notify"]


def test_square_catalog_versions_update_variants_and_record_price_changes(omni: Omni, square: SquareImitation) -> None:
    omni.catalog.upsert_many([{"sku": "boots-42", "title": "Boots", "price": "150.00", "image_url": "https://i/b.jpg"}])
    square.set_variation("VAR-3", item_id="ITEM-3", item_name="Wool socks", sku="socks", price=1200,
                         updated_at="2026-01-05T12:00:00.000Z")
    version = {"catalog_version": {"updated_at": "2026-01-05T12:30:00.000Z"}}

    assert to_square(omni, "catalog.version.updated", version, "evt-cat") == 200

    boots = omni.catalog.variant("boots-42")
    assert boots is not None
    assert (boots.title, boots.price, boots.product_id, boots.image_url) == (
        "Trail boots (42)", Decimal("120"), "ITEM-1", "https://i/b.jpg")  # the image Square does not carry is kept
    assert omni.catalog.variant("socks") is not None
    assert omni.catalog.variant("VAR-2") is None  # variable pricing: no price to show
    assert sum(r.path == "/v2/catalog/search" for r in square.requests) == 2  # two pages, cursor followed
    square.assert_no_violations()


def test_shopify_levels_and_products_keep_the_catalog_current(omni: Omni, shopify: ShopifyImitation) -> None:
    product = shopify.add_product("Trail boots", [{"sku": "boots-42", "price": "120.00", "title": "42"},
                                                  {"sku": "boots-43", "price": "120.00", "title": "43"}],
                                  product_type="shoes", vendor="Acme", image="https://cdn.shopify.example/b.jpg")
    item = shopify.item_of("boots-42")

    assert to_shopify(omni, "inventory_levels/update", shopify.set_available(item, 655441491, 4)) == 200
    assert to_shopify(omni, "inventory_levels/update", shopify.set_available(item, 777, 2)) == 200
    assert omni.catalog.inventory("boots-42") == {"online": 4, "777": 2}
    assert sum("/inventory_items/" in r.path for r in shopify.requests) == 1  # the SKU is remembered

    assert to_shopify(omni, "products/update", shopify.set_price("boots-43", "99.50")) == 200
    boots = omni.catalog.variant("boots-43")
    assert boots is not None
    assert (boots.title, boots.price, boots.currency, boots.category, boots.brand, boots.url, boots.image_url) == (
        "Trail boots - 43", Decimal("99.50"), "EUR", "shoes", "Acme",
        f"https://acme.myshopify.com/products/{product['handle']}", "https://cdn.shopify.example/b.jpg")
    item_43 = shopify.item_of("boots-43")
    to_shopify(omni, "inventory_levels/update", shopify.set_available(item_43, 655441491, 0))
    assert omni.catalog.inventory("boots-43") == {"online": 0}
    assert sum("/inventory_items/" in r.path for r in shopify.requests) == 1  # learnt from the product webhook
    shopify.assert_no_violations()


def test_unverified_webhooks_change_nothing(omni: Omni, shopify: ShopifyImitation) -> None:
    shopify.add_product("Boots", [{"sku": "boots-42", "price": "1"}])
    level = shopify.set_available(shopify.item_of("boots-42"), 655441491, 4)

    assert to_shopify(omni, "inventory_levels/update", level, secret="wrong") == 401
    assert to_square(omni, "inventory.count.updated", counts(("VAR-1", "LDOWNTOWN", "3")), "evt-x",
                     key="wrong") == 401
    assert omni.catalog.inventory("boots-42") == {}
    assert shopify.requests == []


@pytest.mark.parametrize("payload", [
    {"inventory_item_id": [1], "location_id": 655441491, "available": 4},
    {"inventory_item_id": 1, "location_id": 655441491, "available": "4"},
    {"inventory_item_id": 99999, "location_id": 655441491, "available": 4},  # unknown to Shopify: 404
    {"id": 1, "title": "Boots", "variants": [{"sku": "x", "price": "free"}, {"sku": None, "price": "1"}, 7]},
    b"not json",
    b"[1, 2]",
])
def test_malformed_shopify_payloads_store_nothing_and_never_crash(omni: Omni, payload: Any) -> None:
    topic = "products/update" if isinstance(payload, dict) and "variants" in payload else "inventory_levels/update"
    status = to_shopify(omni, topic, payload)

    assert status in (200, 400)
    with omni.store.transaction(immediate=False) as tx:
        assert tx.scalar("SELECT COUNT(*) FROM catalog_inventory") == 0
        assert tx.scalar("SELECT COUNT(*) FROM catalog_variants") == 0


@pytest.mark.parametrize("obj", [
    {"inventory_counts": "many"},
    {"inventory_counts": [{"catalog_object_id": "VAR-1", "state": "IN_STOCK", "location_id": [5], "quantity": "1"},
                          {"catalog_object_id": "VAR-1", "state": "IN_STOCK", "location_id": "L", "quantity": "x"},
                          {"catalog_object_id": "VAR-1", "state": "SOLD", "location_id": "L", "quantity": "1"}, None]},
    {"catalog_version": {"updated_at": 12}},
])
def test_malformed_square_payloads_store_nothing(omni: Omni, obj: dict[str, Any]) -> None:
    kind = "catalog.version.updated" if "catalog_version" in obj else "inventory.count.updated"
    assert to_square(omni, kind, obj, "evt-bad") == 200
    with omni.store.transaction(immediate=False) as tx:
        assert tx.scalar("SELECT COUNT(*) FROM catalog_inventory") == 0


def test_square_unreachable_is_retried_later_with_nothing_recorded(omni: Omni, square: SquareImitation) -> None:
    square.stop()
    assert to_square(omni, "inventory.count.updated", counts(("VAR-1", "LDOWNTOWN", "3")), "evt-1") == 503
    assert omni.catalog.inventory("boots-42") == {}

