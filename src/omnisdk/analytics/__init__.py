"""Measurement: delivery and engagement KPIs, funnels, and which channels earned the conversions.

    from omnisdk.analytics import attribute

    result = attribute([(("email", "web"), 3, 120.0, 40), (("sms",), 0, 0, 25)], model="markov")
    result.conversions["email"], result.removal_effects["web"]

The Markov model needs numpy and scipy (`pip install 'omnisdk[analytics]'`); the others are plain Python.
"""

from ._attribution import MODELS, AttributionResult, attribute
from ._funnels import Funnel, FunnelStep, funnel
from ._kpis import DIMENSIONS, KPIRow, KPITable, kpis
from ._paths import Path, TouchpointLike, paths_from_touchpoints
from ._stored import REPORT_MODELS, attribution, attributions

__all__ = [
    "AttributionResult",
    "DIMENSIONS",
    "Funnel",
    "FunnelStep",
    "KPIRow",
    "KPITable",
    "MODELS",
    "Path",
    "REPORT_MODELS",
    "TouchpointLike",
    "attribute",
    "attribution",
    "attributions",
    "funnel",
    "kpis",
    "paths_from_touchpoints",
]
