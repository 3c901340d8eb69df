"""Commerce intelligence: the catalog and its triggers, predicted customer value, and recommendations.

    omni.catalog.upsert_many([{"sku": "sku-1", "title": "Mug", "price": "12.50", "inventory": {"online": 5}}])
    omni.catalog.watch(BackInStock(quota_factor=2), PriceDrop(min_percent=10))

    from omnisdk.commerce import ValueModel, summarize_purchases

    summaries = {c: summarize_purchases(orders[c], end=calibration_end) for c in orders}
    model = ValueModel.fit(summaries.values())          # BG/NBD + Gamma-Gamma, refit e.g. nightly
    model.predict({"c-42": summaries["c-42"]})["c-42"].churn_risk

    from omnisdk.commerce import CoOccurrence, Exclusions, History, ItemToItem, in_stock

    together = ItemToItem(CoOccurrence.build(order_baskets, k=50, measure="cosine"))
    together.recommend(History(purchased=["sku-1"]), 4, exclude=Exclusions(available=in_stock(inventory, "store-9")))

The catalog needs nothing more; predictions and co-occurrence need numpy and scipy
(`pip install 'omnisdk[commerce]'`), imported only when one of their names is first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .._products import CatalogUpsert, InventoryLevel, Product, Variant
from ._catalog import AsyncCatalog, Catalog, CatalogValidationError
from ._recommend import (
    PURCHASED,
    Exclusions,
    Fallback,
    History,
    Popular,
    RecentlyViewed,
    Recommendation,
    Recommender,
    in_stock,
)
from ._triggers import BackInStock, BrowseAbandonment, LowStockInCart, PriceDrop, Replenishment, Rule

if TYPE_CHECKING:
    from ._clv import (
        BetaGeo,
        CustomerValue,
        GammaGamma,
        PurchaseSummary,
        ValueModel,
        discounted_value,
        summarize_purchases,
    )
    from ._cooccurrence import CoOccurrence, ItemToItem, Measure

#: Names whose modules need numpy and scipy: imported on first use (PEP 562).
_NUMERIC = {
    "BetaGeo": "_clv", "CustomerValue": "_clv", "GammaGamma": "_clv", "PurchaseSummary": "_clv",
    "ValueModel": "_clv", "discounted_value": "_clv", "summarize_purchases": "_clv",
    "CoOccurrence": "_cooccurrence", "ItemToItem": "_cooccurrence", "Measure": "_cooccurrence",
}


def __getattr__(name: str) -> Any:
    module = _NUMERIC.get(name)
    if module is None:
        raise AttributeError(f"module 'omnisdk.commerce' has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AsyncCatalog",
    "BackInStock",
    "BetaGeo",
    "BrowseAbandonment",
    "Catalog",
    "CatalogUpsert",
    "CatalogValidationError",
    "CoOccurrence",
    "CustomerValue",
    "Exclusions",
    "Fallback",
    "GammaGamma",
    "History",
    "InventoryLevel",
    "ItemToItem",
    "LowStockInCart",
    "Measure",
    "PURCHASED",
    "Popular",
    "PriceDrop",
    "Product",
    "PurchaseSummary",
    "RecentlyViewed",
    "Recommendation",
    "Recommender",
    "Replenishment",
    "Rule",
    "ValueModel",
    "Variant",
    "discounted_value",
    "in_stock",
    "summarize_purchases",
]
