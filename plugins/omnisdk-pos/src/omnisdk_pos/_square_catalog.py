"""Square's catalog and inventory webhooks as catalog updates (stock per location, variants).

| Square event | catalog update |
|---|---|
| `inventory.count.updated` | the IN_STOCK count of each item variation at its location |
| `catalog.version.updated` | every item variation changed since shortly before the new version (SearchCatalogObjects) |

Neither notification names the SKU, so the variations are read from the Catalog API; a variation
without a SKU is known by its Square id. Stock is whole units: a fractional count is rounded down.
A field of the wrong type is skipped (and logged), never raised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any, Final

from omnisdk import get_logger
from omnisdk.commerce import InventoryLevel, Variant

from ._square_api import SquareAPI
from ._webhook_util import ZERO_DECIMAL, as_id, as_list, as_mapping, decimal_amount, timestamp

__all__ = ["CATALOG_EVENTS", "SquareCatalog"]

log = get_logger("omnisdk.pos.square")

CATALOG_EVENTS: Final = frozenset({"inventory.count.updated", "catalog.version.updated"})


def _sku(variation: Mapping[str, Any]) -> str | None:
    data = as_mapping(variation.get("item_variation_data"))
    sku = data.get("sku")
    return sku.strip() if isinstance(sku, str) and sku.strip() else as_id(variation.get("id"))


class SquareCatalog:
    """Maps one verified catalog or inventory notification to `Variant`s and `InventoryLevel`s."""

    def __init__(self, api: SquareAPI, *, sync_window: float) -> None:
        self._api = api
        self._sync_window = sync_window

    def parse(self, payload: Mapping[str, Any]) -> list[Variant | InventoryLevel]:
        data = as_mapping(as_mapping(payload.get("data")).get("object"))
        if payload.get("type") == "inventory.count.updated":
            return list(self._counts(as_list(data.get("inventory_counts"))))
        updated = timestamp(as_mapping(data.get("catalog_version")).get("updated_at"))
        if updated is None:
            log.warning("square_catalog_version_skipped", reason="catalog_version.updated_at is not a time")
            return []
        begin = (updated - timedelta(seconds=self._sync_window)).isoformat(timespec="milliseconds")
        objects, related = self._api.variations_changed_since(begin.replace("+00:00", "Z"))
        return list(self._variants(objects, related))

    def _counts(self, counts: Sequence[Any]) -> list[InventoryLevel]:
        wanted = [as_mapping(c) for c in counts]
        wanted = [c for c in wanted if c.get("state") == "IN_STOCK" and c.get("catalog_object_type", "ITEM_VARIATION")
                  == "ITEM_VARIATION"]
        ids = sorted({i for c in wanted if (i := as_id(c.get("catalog_object_id")))})
        skus = {}
        if ids:
            objects, _ = self._api.catalog_objects(ids)
            skus = {as_id(o.get("id")): _sku(o) for o in map(as_mapping, objects)}
        levels = []
        for count in wanted:
            object_id, location = as_id(count.get("catalog_object_id")), as_id(count.get("location_id"))
            quantity = decimal_amount(count.get("quantity"))
            sku = skus.get(object_id) or object_id
            if sku is None or location is None or quantity is None:
                log.warning("square_inventory_count_skipped", catalog_object_id=object_id,
                            reason="catalog_object_id, location_id or quantity is not usable")
                continue
            levels.append(InventoryLevel(sku=sku, location=location, quantity=max(0, math.floor(quantity))))
        return levels

    def _variants(self, objects: Sequence[Any], related: Sequence[Any]) -> list[Variant]:
        items = {as_id(o.get("id")): as_mapping(o.get("item_data")) for o in map(as_mapping, related)
                 if o.get("type") == "ITEM"}
        items.update({as_id(o.get("id")): as_mapping(o.get("item_data")) for o in map(as_mapping, objects)
                      if o.get("type") == "ITEM"})
        variants = []
        for variation in map(as_mapping, objects):
            data = as_mapping(variation.get("item_variation_data"))
            sku, item_id = _sku(variation), as_id(data.get("item_id"))
            money = as_mapping(data.get("price_money"))
            amount, currency = money.get("amount"), money.get("currency")
            if variation.get("type") != "ITEM_VARIATION" or variation.get("is_deleted") is True:
                continue
            if sku is None or item_id is None or not isinstance(amount, int) or isinstance(amount, bool) \
                    or not isinstance(currency, str) or amount < 0:
                log.warning("square_variation_skipped", catalog_object_id=as_id(variation.get("id")),
                            reason="no SKU, item or fixed price")
                continue
            item_name = items.get(item_id, {}).get("name")
            name = data.get("name") if isinstance(data.get("name"), str) else ""
            title = item_name if isinstance(item_name, str) and item_name else name or sku
            if name and name not in (title, "Regular"):
                title = f"{title} ({name})"
            price = Decimal(amount) if currency in ZERO_DECIMAL else Decimal(amount) / 100
            variants.append(Variant(sku=sku, product_id=item_id, title=title, price=price, currency=currency,
                                    attributes={"square_variation_id": as_id(variation.get("id"))}))
        return variants
