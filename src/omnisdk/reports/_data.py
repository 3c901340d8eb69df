"""`ReportData`: the numbers of one report, as gathered; what every renderer reads."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType

import attrs

from ..analytics._attribution import AttributionResult
from ..analytics._funnels import Funnel
from ..analytics._kpis import KPITable
from ..experiments import ExperimentResult
from ._experiments import ExperimentSeries

__all__ = ["ReportData"]


def _frozen(mapping: Mapping[str, AttributionResult]) -> Mapping[str, AttributionResult]:
    return MappingProxyType(dict(mapping))


def _frozen_lifts(mapping: Mapping[str, ExperimentResult]) -> Mapping[str, ExperimentResult]:
    return MappingProxyType(dict(mapping))


@attrs.frozen(kw_only=True)
class ReportData:
    """What a report shows: KPIs by channel and by journey step, a funnel, attribution by several models,
    every experiment looked at daily, and the lift of marketing against the global control group.

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
    experiments: tuple[ExperimentSeries, ...] = ()
    #: scope ("all marketing", "journey welcome", "channel email") -> marketed against the global control group
    marketing_lift: Mapping[str, ExperimentResult] = attrs.field(factory=dict, converter=_frozen_lifts)
    #: what the report could not include, and why (e.g. a model whose dependencies are missing)
    notes: tuple[str, ...] = ()
