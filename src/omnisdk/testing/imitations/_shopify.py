"""Shopify's Admin REST API, for what the POS plugin reads: inventory items (their SKU).

Shopify publishes no OpenAPI description of the REST Admin API; this follows its reference
(`X-Shopify-Access-Token` auth, `/admin/api/{version}/...json` paths, `{"errors": ...}` bodies).
The imitation also builds the webhook bodies Shopify sends for the products and levels it holds.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs
from aiohttp import web

from ._base import Imitation, route
from ._call import Call, Invalid, Problem
from ._util import now

__all__ = ["ShopifyImitation"]

_VERSION = re.compile(r"\d{4}-(01|04|07|10)|unstable")


def _stamp() -> str:
    return now().isoformat(timespec="seconds")


@attrs.define(kw_only=True, slots=False, eq=False)
class ShopifyImitation(Imitation):
    """A shop's Admin API: `add_product` seeds products (their variants get inventory items),
    `set_available` sets a level; `product_webhook` and `level_webhook` give the bodies Shopify
    would post for them (sign them with the app's secret)."""

    access_token: str = attrs.field(default="shpat_test", repr=False)
    products: dict[int, dict[str, Any]] = attrs.field(factory=dict, init=False, repr=False)
    inventory_items: dict[int, dict[str, Any]] = attrs.field(factory=dict, init=False, repr=False)
    #: Available units per (inventory item id, location id).
    levels: dict[tuple[int, int], int] = attrs.field(factory=dict, init=False, repr=False)
    _next_id: int = attrs.field(default=632910392, init=False, repr=False)

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_product(self, title: str, variants: list[dict[str, Any]], *, handle: str | None = None,
                    product_type: str = "", vendor: str = "", image: str | None = None) -> dict[str, Any]:
        """A product with `variants` ({"sku", "price", "title"?}); ids are Shopify-like integers."""
        product_id = self._id()
        stamp = _stamp()
        images = [{"id": self._id(), "product_id": product_id, "position": 1, "src": image}] if image else []
        made = []
        for position, given in enumerate(variants, 1):
            item_id = self._id()
            self.inventory_items[item_id] = {"id": item_id, "sku": given.get("sku", ""), "tracked": True,
                                             "requires_shipping": True, "created_at": stamp, "updated_at": stamp,
                                             "admin_graphql_api_id": f"gid://shopify/InventoryItem/{item_id}"}
            made.append({"id": self._id(), "product_id": product_id, "title": given.get("title", "Default Title"),
                         "price": str(given["price"]), "sku": given.get("sku", ""), "position": position,
                         "inventory_item_id": item_id, "inventory_quantity": 0, "image_id": None,
                         "created_at": stamp, "updated_at": stamp})
        product = {"id": product_id, "title": title, "handle": handle or title.lower().replace(" ", "-"),
                   "product_type": product_type, "vendor": vendor, "status": "active", "created_at": stamp,
                   "updated_at": stamp, "variants": made, "images": images, "image": images[0] if images else None,
                   "admin_graphql_api_id": f"gid://shopify/Product/{product_id}"}
        self.products[product_id] = product
        return product

    def set_price(self, sku: str, price: str) -> dict[str, Any]:
        """Change a variant's price; returns its product (what `products/update` carries)."""
        for product in self.products.values():
            for variant in product["variants"]:
                if variant["sku"] == sku:
                    variant["price"] = price
                    variant["updated_at"] = product["updated_at"] = _stamp()
                    return product
        raise KeyError(sku)

    def set_available(self, inventory_item_id: int, location_id: int, available: int) -> dict[str, Any]:
        """Set a level; returns the `inventory_levels/update` payload Shopify would send."""
        self.levels[(inventory_item_id, location_id)] = available
        return {"inventory_item_id": inventory_item_id, "location_id": location_id, "available": available,
                "updated_at": _stamp(),
                "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id="
                                        f"{inventory_item_id}"}

    def item_of(self, sku: str) -> int:
        return next(i for i, item in self.inventory_items.items() if item["sku"] == sku)

    @staticmethod
    def webhook_body(payload: dict[str, Any]) -> bytes:
        return json.dumps(payload).encode()

    def authenticate(self, call: Call) -> bool:
        return call.headers.get("X-Shopify-Access-Token") == self.access_token

    def prepare(self, call: Call) -> None:
        version = call.params.get("version", "")
        if not _VERSION.fullmatch(version):
            raise Invalid(Problem("path", f"Not Found: API version {version} does not exist", "version"))

    def error(self, status: int, problem: Problem | None = None) -> web.StreamResponse:
        if status == 401:
            errors = "[API] Invalid API key or access token (unrecognized login or wrong password)"
        elif status == 404:
            errors = "Not Found"
        else:
            errors = problem.message if problem else "Bad Request"
        return web.json_response({"errors": errors}, status=status)

    @route("GET", "/admin/api/{version}/inventory_items/{inventory_item_id}.json")
    def inventory_item(self, call: Call) -> web.StreamResponse:
        try:
            item = self.inventory_items.get(int(call.params["inventory_item_id"]))
        except ValueError:
            item = None
        if item is None:
            return self.error(404)
        return web.json_response({"inventory_item": item})
