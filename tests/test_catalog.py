"""`omni.catalog` on both stores: bulk upserts with counts and refused rows, inventory per location,
and the changes of price and stock that the catalog triggers react to."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from omnisdk import AsyncOmni, Omni, ValidationError, VirtualClock
from omnisdk.commerce import CatalogUpsert, CatalogValidationError, InventoryLevel, Product, Variant
from omnisdk.store._catalog import changes_due

MUG = {"sku": "mug-blue", "product_id": "mug", "title": "Blue mug", "price": "12.50", "currency": "eur",
       "url": "https://shop.example/mug", "image_url": "https://shop.example/mug.jpg", "category": "kitchen",
       "brand": "Acme", "attributes": {"colour": "blue"}, "inventory": {"online": 4, "store-9": 0}}


def changes(omni: Omni) -> list[tuple[str, str, str | None, str | None, str]]:
    with omni.store.transaction(immediate=False) as tx:
        return [(c.sku, c.kind, c.location, c.old, c.new) for c in changes_due(tx, 1000)]


def test_upsert_counts_inserted_updated_and_unchanged(omni: Omni) -> None:
    first = omni.catalog.upsert_many([MUG, {"sku": "tee", "title": "Tee", "price": 20}])
    again = omni.catalog.upsert_many([MUG, {"sku": "tee", "title": "Tee", "price": "18.00"},
                                      {"sku": "cap", "title": "Cap", "price": "9"}])

    assert first == CatalogUpsert(inserted=2, inventory=2)
    assert again == CatalogUpsert(inserted=1, updated=1, unchanged=1)
    assert omni.catalog.variant("mug-blue") == Variant(
        sku="mug-blue", product_id="mug", title="Blue mug", price=Decimal("12.50"), currency="EUR",
        url="https://shop.example/mug", image_url="https://shop.example/mug.jpg", category="kitchen", brand="Acme",
        attributes={"colour": "blue"})
    assert omni.catalog.variant("nope") is None
    assert sorted(omni.catalog.variants(["tee", "nope", "cap"])) == ["cap", "tee"]
    assert ("tee", "price", None, "20", "18.00") in changes(omni)


def test_refused_rows_name_their_index_and_field_and_the_others_are_stored(omni: Omni) -> None:
    rows = [MUG, {"sku": "x", "price": "1"}, {"sku": "y", "title": "Y", "price": "-1"},
            {"sku": "z", "title": "Z", "price": "2", "colour": "red"}, "not a row"]

    with pytest.raises(CatalogValidationError) as caught:
        omni.catalog.upsert_many(rows)

    assert [(e.index, e.field) for e in caught.value.errors] == [
        (1, "items[1].title"), (2, "items[2].price"), (3, "items[3].colour"), (4, "items[4]")]
    assert caught.value.result.inserted == 1 and caught.value.result.refused == 4
    assert omni.catalog.variant("mug-blue") is not None
    collected = omni.catalog.upsert_many(rows[1:3], on_error="collect")
    assert collected.refused == 2 and collected.inserted == 0


def test_products_expand_to_their_variants(omni: Omni) -> None:
    small = Variant(sku="tee-s", product_id="", title="Tee S", price=Decimal("20"))
    large = Variant(sku="tee-l", product_id="", title="Tee L", price=Decimal("22"), image_url="https://i/l.jpg")
    omni.catalog.upsert_many([Product(product_id="tee", title="Tee", variants=(small, large), brand="Acme",
                                      image_url="https://i/tee.jpg")])

    product = omni.catalog.product("tee")
    assert product is not None
    assert [(v.sku, v.product_id, v.brand, v.image_url) for v in product.variants] == [
        ("tee-l", "tee", "Acme", "https://i/l.jpg"), ("tee-s", "tee", "Acme", "https://i/tee.jpg")]
    assert omni.catalog.product("none") is None


def test_inventory_per_location_and_availability(omni: Omni) -> None:
    omni.catalog.upsert_many([MUG])
    omni.catalog.set_inventory("mug-blue", "store-9", 2)
    omni.catalog.set_inventory_many([("mug-blue", "online", 0), InventoryLevel(sku="mug-blue", location="store-3",
                                                                                quantity=1)])

    assert omni.catalog.inventory("mug-blue") == {"online": 0, "store-3": 1, "store-9": 2}
    assert omni.catalog.available("mug-blue")
    assert not omni.catalog.available("mug-blue", "online")
    assert omni.catalog.available("mug-blue", "store-9")
    assert not omni.catalog.available("unknown-sku")
    stock = [c for c in changes(omni) if c[1] == "stock"]
    assert stock == [("mug-blue", "stock", "online", None, "4"), ("mug-blue", "stock", "store-9", None, "0"),
                     ("mug-blue", "stock", "store-9", "0", "2"), ("mug-blue", "stock", "online", "4", "0"),
                     ("mug-blue", "stock", "store-3", None, "1")]
    omni.catalog.set_inventory("mug-blue", "store-3", 1)  # no change, no record
    assert len([c for c in changes(omni) if c[1] == "stock"]) == 5


@pytest.mark.parametrize("quantity", [-1, 1.5, "many", True, 10**13])
def test_bad_quantities_are_refused(omni: Omni, quantity: object) -> None:
    with pytest.raises(ValidationError) as caught:
        omni.catalog.set_inventory("mug-blue", "online", quantity)  # type: ignore[arg-type]
    assert caught.value.field == "quantity"
    with pytest.raises(ValidationError) as many:
        omni.catalog.set_inventory_many([("mug-blue", "online", 1), ("mug-blue", "online", quantity)])
    assert many.value.field == "levels[1].quantity"
    assert omni.catalog.inventory("mug-blue") == {}


def test_a_big_upsert_streams_in_batches(omni: Omni) -> None:
    rows = ({"sku": f"sku-{i}", "title": f"Item {i}", "price": f"{i}.99"} for i in range(2500))
    activity = omni.store.activity.transactions
    assert omni.catalog.upsert_many(rows, batch_size=1000).inserted == 2500
    assert omni.store.activity.transactions - activity == 3
    assert omni.catalog.variant("sku-2499") is not None


def test_async_catalog(tmp_path: Path) -> None:
    async def main() -> tuple[bool, dict[str, int]]:
        async with AsyncOmni(f"sqlite:///{tmp_path}/a.db", clock=VirtualClock()) as omni:
            await omni.catalog.upsert_many([MUG])
            await omni.catalog.set_inventory("mug-blue", "online", 0)
            return await omni.catalog.available("mug-blue", "online"), dict(await omni.catalog.inventory("mug-blue"))

    assert asyncio.run(main()) == (False, {"online": 0, "store-9": 0})
