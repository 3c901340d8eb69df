"""Store inventory for templates: is this product in stock at the customer's store, or another nearby?

`{% set stock = product_id | in_stock_near(customer) %}{% if stock %}In stock at {{ stock.store }}{% endif %}`

The customer's own store is their `home_store` trait (a Square location id); after it, the
configured locations are tried in order. Counts are cached briefly, so a send to many customers
costs one Square call per product. A lookup that fails renders as "not known to be in stock".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from omnisdk import Clock, ProviderError, get_logger

from ._square_api import SquareAPI

__all__ = ["Inventory", "StoreStock"]

log = get_logger("omnisdk.pos.inventory")
HOME_STORE_TRAITS = ("home_store", "square_location_id")


@attrs.frozen
class StoreStock:
    location_id: str
    store: str
    quantity: float


def _home_store(customer: Any) -> str | None:
    traits = customer if isinstance(customer, Mapping) else getattr(customer, "traits", None)
    if not isinstance(traits, Mapping):
        return None
    for trait in HOME_STORE_TRAITS:
        if isinstance(traits.get(trait), str) and traits[trait]:
            return str(traits[trait])
    return None


class Inventory:
    def __init__(self, api: SquareAPI, stores: Mapping[str, str], *, ttl: float, clock: Clock) -> None:
        self._api = api
        self._stores = stores
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, dict[str, float]]] = {}

    def counts(self, product_id: str) -> dict[str, float]:
        """IN_STOCK quantity per location of one catalog item variation, cached for `ttl` seconds."""
        now = self._clock.timestamp()
        cached = self._cache.get(product_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        counts = self._api.in_stock(product_id, list(self._stores))
        self._cache[product_id] = (now + self._ttl, counts)
        return counts

    def in_stock_near(self, product_id: Any, customer: Any = None, min_quantity: float = 1) -> StoreStock | None:
        """The customer's store if it has the product, else the first configured store that does."""
        if not isinstance(product_id, str) or not product_id:
            return None
        try:
            counts = self.counts(product_id)
        except ProviderError as exc:
            log.warning("inventory_lookup_failed", product_id=product_id, error=str(exc))
            return None
        home = _home_store(customer)
        for location in ([home] if home else []) + [s for s in self._stores if s != home]:
            if counts.get(location, 0) >= min_quantity:
                return StoreStock(location_id=location, store=self._stores.get(location, location),
                                  quantity=counts[location])
        return None
