"""Shopify's product and inventory webhooks as catalog updates, reading the Admin API where the
notification leaves something out.

| topic | catalog update |
|---|---|
| `inventory_levels/update` | the `available` count of the inventory item's variant at the location |
| `products/create`, `products/update` | each variant with a SKU: title, price, image, link, type, vendor |

An inventory level names its inventory item, not the SKU: the SKU comes from GET
`/admin/api/{version}/inventory_items/{id}.json`, remembered afterwards (and learnt from product
webhooks, whose variants carry both). Locations are Shopify's location ids unless `locations`
names them (e.g. the online warehouse as "online"). A field of the wrong type is skipped, never raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import httpx

from omnisdk import ProviderError, get_logger
from omnisdk.commerce import InventoryLevel, Variant

from ._webhook_util import as_id, as_list, as_mapping

__all__ = ["CATALOG_TOPICS", "ShopifyAdmin", "ShopifyCatalog"]

log = get_logger("omnisdk.pos.shopify")

CATALOG_TOPICS: Final = frozenset({"inventory_levels/update", "products/create", "products/update"})
#: SKUs remembered per inventory item id (a shop's whole catalog fits many times over).
_MAX_REMEMBERED: Final = 200_000


class ShopifyAdmin:
    """Blocking reads against the Admin REST API (a webhook handler cannot await)."""

    def __init__(self, base_url: str, access_token: str, version: str, timeout: float) -> None:
        self._version = version
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                                    headers={"X-Shopify-Access-Token": access_token, "Accept": "application/json"})

    def inventory_item(self, inventory_item_id: str) -> Mapping[str, Any]:
        path = f"/admin/api/{self._version}/inventory_items/{inventory_item_id}.json"
        try:
            response = self._client.get(path)
        except httpx.TransportError as exc:
            raise ProviderError(f"Shopify unreachable ({type(exc).__name__}) on GET {path}") from None
        if response.status_code == 404:
            return {}
        if response.is_error:
            raise ProviderError(f"Shopify answered {response.status_code} on GET {path}")
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ProviderError(f"Shopify answered GET {path} with a body that is not a JSON object")
        return as_mapping(data.get("inventory_item"))

    def close(self) -> None:
        self._client.close()


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


class ShopifyCatalog:
    """Maps one verified product or inventory webhook to `Variant`s and `InventoryLevel`s."""

    def __init__(self, admin: ShopifyAdmin | None, *, shop_url: str, currency: str,
                 locations: Mapping[str, str]) -> None:
        self._admin = admin
        self._shop_url = shop_url.rstrip("/")
        self._currency = currency
        self._locations = locations
        self._skus: dict[str, str] = {}

    def parse(self, topic: str, payload: Mapping[str, Any]) -> list[Variant | InventoryLevel]:
        if topic == "inventory_levels/update":
            return list(self._level(payload))
        return list(self._product(payload))

    def _remember(self, inventory_item_id: str, sku: str) -> None:
        if len(self._skus) >= _MAX_REMEMBERED:
            self._skus.clear()
        self._skus[inventory_item_id] = sku

    def _level(self, payload: Mapping[str, Any]) -> list[InventoryLevel]:
        item, location, available = (as_id(payload.get("inventory_item_id")), as_id(payload.get("location_id")),
                                     payload.get("available"))
        if item is None or location is None or not isinstance(available, int) or isinstance(available, bool):
            log.warning("shopify_inventory_level_skipped", reason="inventory_item_id, location_id or available "
                        "is not usable")
            return []
        sku = self._skus.get(item)
        if sku is None:
            if self._admin is None:
                log.warning("shopify_inventory_level_skipped", inventory_item_id=item,
                            reason="unknown inventory item and no access_token to look it up")
                return []
            sku = _text(self._admin.inventory_item(item).get("sku"))
            if sku is None:
                log.info("shopify_inventory_level_skipped", inventory_item_id=item, reason="the item has no SKU")
                return []
            self._remember(item, sku)
        return [InventoryLevel(sku=sku, location=self._locations.get(location, location), quantity=max(0, available))]

    def _product(self, product: Mapping[str, Any]) -> list[Variant]:
        product_id, title = as_id(product.get("id")), _text(product.get("title"))
        if product_id is None or title is None:
            return []
        images = {as_id(i.get("id")): _text(i.get("src")) for i in map(as_mapping, as_list(product.get("images")))}
        main_image = _text(as_mapping(product.get("image")).get("src"))
        handle = _text(product.get("handle"))
        url = f"{self._shop_url}/products/{handle}" if handle and self._shop_url else None
        variants = []
        for variant in map(as_mapping, as_list(product.get("variants"))):
            sku = _text(variant.get("sku"))
            try:
                price = Decimal(str(variant.get("price")))
            except InvalidOperation:
                price = Decimal(-1)
            if sku is None or not price.is_finite() or price < 0 or isinstance(variant.get("price"), bool):
                log.info("shopify_variant_skipped", product_id=product_id, reason="no SKU or no price")
                continue
            if item := as_id(variant.get("inventory_item_id")):
                self._remember(item, sku)
            name = _text(variant.get("title"))
            variants.append(Variant(
                sku=sku, product_id=product_id,
                title=title if name in (None, "Default Title") else f"{title} - {name}", price=price,
                currency=self._currency, url=url, image_url=images.get(as_id(variant.get("image_id"))) or main_image,
                category=_text(product.get("product_type")), brand=_text(product.get("vendor")),
                attributes={"shopify_variant_id": as_id(variant.get("id"))}))
        return variants
