"""The shop one delivery's templates see (`messages.Shop`): catalog variants with their stock, the
customer's nearest store, and recommendations, all read inside the delivery's transaction and cached for
the claimed batch, so a broadcast's thousand renders of the same products cost one query each."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .._customers import Customer
from ..messages import Stocked
from ..messages._products import ProductLike
from ..store import Transaction
from ..store._catalog import inventory_of, variants_by_sku
from ..store._recommendations import recent_interactions

if TYPE_CHECKING:  # recommendations need numpy; product blocks do not
    from ._stored import StoredRecommendations

__all__ = ["CatalogReads", "StoreCatalog", "StoreShop", "nearest_store"]

#: The profile trait naming the customer's own store (a location id of the catalog's inventory).
STORE_TRAIT = "store_location"


class CatalogReads(Protocol):
    """The catalog's reads inside a transaction: variants by sku and units per location."""

    def variants(self, tx: Transaction, skus: Sequence[str]) -> Mapping[str, ProductLike]: ...

    def stock(self, tx: Transaction, items: Sequence[str]) -> Mapping[str, Mapping[str, int]]: ...


class StoreCatalog:
    """`CatalogReads` over the catalog's tables (`omni.catalog` writes them)."""

    def variants(self, tx: Transaction, skus: Sequence[str]) -> Mapping[str, ProductLike]:
        return variants_by_sku(tx, list(skus))

    def stock(self, tx: Transaction, items: Sequence[str]) -> Mapping[str, Mapping[str, int]]:
        return inventory_of(tx, list(items))


def nearest_store(traits: Mapping[str, Any], pos_orders: Sequence[Mapping[str, Any]]) -> str | None:
    """The customer's `store_location` trait, else where they last bought at the POS (`location_id`, else
    `store`, of their latest POS order), else None."""
    own = traits.get(STORE_TRAIT)
    if isinstance(own, str) and own:
        return own
    for properties in reversed(pos_orders):
        for key in ("location_id", "store"):
            value = properties.get(key) if isinstance(properties, Mapping) else None
            if isinstance(value, str) and value:
                return value
    return None


class StoreShop:
    """`messages.Shop` over the store, bound to one transaction."""

    def __init__(
        self, tx: Transaction, catalog: CatalogReads | None,
        recommendations: Callable[[], StoredRecommendations] | None, *, purchase_event: str = "Order Completed",
    ) -> None:
        self._tx = tx
        self._catalog = catalog
        self._recommendations = recommendations
        self._event = purchase_event
        self._variants: dict[str, ProductLike | None] = {}
        self._levels: dict[str, Mapping[str, int]] = {}
        self._stores: dict[str, str | None] = {}

    def products(self, skus: Sequence[str], customer: Customer) -> list[Stocked]:
        if self._catalog is None:
            return []
        missing = [s for s in skus if s not in self._variants]
        if missing:
            found = self._catalog.variants(self._tx, missing)
            levels = self._catalog.stock(self._tx, missing)
            for sku in missing:
                self._variants[sku] = found.get(sku)
                self._levels[sku] = levels.get(sku, {})
        store = self.store_of(customer)
        return [Stocked(v, self._levels[s], store) for s in skus if (v := self._variants[s]) is not None]

    def store_of(self, customer: Customer) -> str | None:
        if customer.id not in self._stores:
            orders = [] if isinstance(customer.traits.get(STORE_TRAIT), str) else [
                i.properties for i in recent_interactions(self._tx, [customer.id], [self._event], per_customer=20)
                if i.channel == "pos"]
            self._stores[customer.id] = nearest_store(customer.traits, orders)
        return self._stores[customer.id]

    def recommendations(self, customer: Customer, k: int, location: str | None) -> list[str]:
        if self._recommendations is None:
            return []
        recommender = self._recommendations()
        history = recommender.histories(self._tx, [customer.id])[customer.id]
        return [r.item for r in recommender.recommend(self._tx, history, k, location=location)]
