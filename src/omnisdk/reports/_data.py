"""`ReportData`: the numbers of one report, as gathered; what every renderer reads."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

import attrs

from ..analytics._attribution import AttributionResult
from ..analytics._funnels import Funnel
from ..analytics._kpis import KPITable

__all__ = ["ReportData"]


def _frozen(mapping: Mapping[str, AttributionResult]) -> Mapping[str, AttributionResult]:
    return MappingProxyType(dict(mapping))


@attrs.frozen(kw_only=True)
class ReportData:
    """What a report shows: KPIs by channel and by journey step, a funnel, attribution by several models.

    The renderers read this; `Report` adds the methods that call them, so neither imports the other's module.
    """

    generated_at: datetime
    since: datetime | None
    until: datetime | None
    conversion: tuple[str, ...]
    channels: KPITable
    journeys: KPITable
    funnel: Funnel
    attribution: Mapping[str, AttributionResult] = attrs.field(converter=_frozen)
    #: what the report could not include, and why (e.g. a model whose dependencies are missing)
    notes: tuple[str, ...] = ()
