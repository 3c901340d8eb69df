"""Commerce intelligence: predicted customer value and recommendations, as pure functions over plain data.

    from omnisdk.commerce import ValueModel, summarize_purchases

    summaries = {c: summarize_purchases(orders[c], end=calibration_end) for c in orders}
    model = ValueModel.fit(summaries.values())          # BG/NBD + Gamma-Gamma, refit e.g. nightly
    model.predict({"c-42": summaries["c-42"]})["c-42"].churn_risk

    from omnisdk.commerce import CoOccurrence, Exclusions, History, ItemToItem, in_stock

    together = ItemToItem(CoOccurrence.build(order_baskets, k=50, measure="cosine"))
    together.recommend(History(purchased=["sku-1"]), 4, exclude=Exclusions(available=in_stock(inventory, "store-9")))

Needs numpy and scipy (`pip install 'omnisdk[commerce]'`).
"""

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

__all__ = [
    "BetaGeo",
    "CoOccurrence",
    "CustomerValue",
    "Exclusions",
    "Fallback",
    "GammaGamma",
    "History",
    "ItemToItem",
    "Measure",
    "PURCHASED",
    "Popular",
    "PurchaseSummary",
    "RecentlyViewed",
    "Recommendation",
    "Recommender",
    "ValueModel",
    "discounted_value",
    "in_stock",
    "summarize_purchases",
]
