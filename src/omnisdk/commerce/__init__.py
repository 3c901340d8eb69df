"""Commerce intelligence: predicted customer value and recommendations, as pure functions over plain data.

    from omnisdk.commerce import ValueModel, summarize_purchases

    summaries = {c: summarize_purchases(orders[c], end=calibration_end) for c in orders}
    model = ValueModel.fit(summaries.values())          # BG/NBD + Gamma-Gamma, refit e.g. nightly
    model.predict({"c-42": summaries["c-42"]})["c-42"].churn_risk

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

__all__ = [
    "BetaGeo",
    "CustomerValue",
    "GammaGamma",
    "PurchaseSummary",
    "ValueModel",
    "discounted_value",
    "summarize_purchases",
]
