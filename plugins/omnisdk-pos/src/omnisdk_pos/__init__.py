"""omnisdk point of sale: Square and Shopify POS purchases, pickups (BOPIS), in-store offers, store inventory."""

from __future__ import annotations

from typing import Any

import omnisdk

from ._inventory import Inventory, StoreStock
from ._shopify import ShopifyPOS
from ._square import SquarePOS, active_inventory, offer_key

__all__ = ["Inventory", "ShopifyPOS", "SquarePOS", "StoreStock", "in_stock_near", "offer_key",
           "register_providers", "register_template_filters"]


def in_stock_near(product_id: Any, customer: Any = None, min_quantity: float = 1) -> StoreStock | None:
    """Template filter: where the product is in stock for this customer (None when nowhere, or unknown)."""
    inventory = active_inventory()
    if inventory is None:
        raise omnisdk.ConfigError("in_stock_near needs [channels.pos] provider = \"square\"", field="channels.pos")
    return inventory.in_stock_near(product_id, customer, min_quantity)


@omnisdk.hookimpl
def register_providers(register: Any) -> None:
    register(SquarePOS)
    register(ShopifyPOS)


@omnisdk.hookimpl
def register_template_filters(register: Any) -> None:
    register("in_stock_near", in_stock_near)
