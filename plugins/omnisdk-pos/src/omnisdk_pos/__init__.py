"""omnisdk point of sale: Square and Shopify POS purchases, pickups (BOPIS), in-store offers, store inventory."""

from __future__ import annotations

from typing import Any

import omnisdk

from ._inventory import Inventory, StoreStock
from ._shopify import ShopifyPOS
from ._square import SquarePOS, offer_key

__all__ = ["Inventory", "ShopifyPOS", "SquarePOS", "StoreStock", "inventory_of", "offer_key",
           "register_identity_kinds", "register_providers", "register_template_filters"]


@omnisdk.hookimpl
def register_providers(register: Any) -> None:
    register(SquarePOS)
    register(ShopifyPOS)


@omnisdk.hookimpl
def register_identity_kinds(register: Any) -> None:
    """The POS systems' own customer ids, matched like the core's `pos_customer_id`; Square's is where
    the Square provider sends POS offers."""
    register("square_customer_id", addresses="pos")
    register("shopify_customer_id")


def inventory_of(omni: Any) -> Inventory:
    """The inventory of the client's configured Square provider (`[channels.pos] provider = "square"`)."""
    try:
        provider = omni.provider("pos")
    except omnisdk.NotFoundError:
        provider = None
    if not isinstance(provider, SquarePOS):
        raise omnisdk.ConfigError("in_stock_near needs [channels.pos] provider = \"square\"", field="channels.pos")
    return provider.inventory


@omnisdk.hookimpl
def register_template_filters(register: Any, omni: Any) -> None:
    def in_stock_near(product_id: Any, customer: Any = None, min_quantity: float = 1) -> StoreStock | None:
        """Template filter: where the product is in stock for this customer (None when nowhere, or unknown)."""
        return inventory_of(omni).in_stock_near(product_id, customer, min_quantity)

    register("in_stock_near", in_stock_near)
