"""Attribution over the store's touchpoints, streamed: memory holds the distinct paths, not the timelines.

Customers are read a page at a time and cut into paths by `paths_from_touchpoints`. Identical
paths are summed into one row (the `channelattribution` shape), so the models see one row per
distinct path. `time_decay` needs each touch's age, which summing loses; its credit is additive
over paths, so it is computed page by page and added up instead.

What counts as a touch: every touchpoint except the conversions and the `server` channel's
(segment entries, internal events), or only the events named in `touches`. The touchpoints of one
message (sent, delivered, opened, clicked: they share a `delivery_id`) are one touch.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from .._clock import to_datetime
from .._errors import ValidationError
from ..store import SQLStore
from ..store._analytics import TimelineRow, customer_pages
from ._attribution import MODELS, AttributionResult, attribute
from ._kpis import check_names, period_bounds
from ._paths import Path, TouchpointLike, paths_from_touchpoints

__all__ = ["REPORT_MODELS", "attribution", "attributions"]

#: The models a report puts side by side.
REPORT_MODELS: Final = ("first_touch", "last_touch", "linear", "time_decay", "position_based", "markov")


@attrs.frozen
class _Touch:
    """The part of a stored touchpoint attribution reads."""

    customer_id: str
    channel: str
    name: str
    properties: Mapping[str, Any]
    occurred_at: datetime
    delivery_id: str | None


def _touches(rows: Iterable[TimelineRow]) -> list[_Touch]:
    found = []
    for row in rows:
        revenue = row.revenue
        usable = {"revenue": float(revenue)} if revenue is not None and math.isfinite(revenue) and revenue >= 0 else {}
        found.append(_Touch(row.customer_id, row.channel, row.name, usable, to_datetime(row.occurred_at),
                            row.delivery_id))
    return found


class _OncePerMessage:
    """`channel_of` for one page: a message's later events (delivered, opened, clicked) add no touch."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, touch: TouchpointLike) -> str | None:
        delivery_id = getattr(touch, "delivery_id", None)
        if delivery_id is not None:
            if delivery_id in self.seen:
                return None
            self.seen.add(delivery_id)
        return touch.channel


def _check_models(models: Sequence[str], params: Mapping[str, Mapping[str, Any]]) -> tuple[str, ...]:
    chosen = (models,) if isinstance(models, str) else tuple(models)
    if not chosen:
        raise ValidationError("name at least one model", field="models", value=models)
    for model in (*chosen, *params):
        if model not in MODELS:
            raise ValidationError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}", field="models",
                                  value=model)
    return chosen


def attributions(
    store: SQLStore,
    models: Sequence[str] = REPORT_MODELS,
    *,
    order: int = 1,
    conversion: str | Collection[str] = "Order Completed",
    lookback: timedelta = timedelta(days=30),
    touches: Collection[str] | None = None,
    since: datetime | float | None = None,
    until: datetime | float | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, AttributionResult]:
    """Each of `models` over the touchpoints that occurred in [since, until); see the module docs.

    `params` holds each model's own parameters by model name, e.g. `{"time_decay": {"half_life": 3}}`.
    """
    params = dict(params or {})
    chosen = _check_models(models, params)
    names = check_names(conversion, "conversion")
    wanted = None if touches is None else check_names(touches, "touches")
    start, end = period_bounds(since, until)
    totals: dict[tuple[str, ...], list[float]] = {}
    decayed: list[AttributionResult] = []
    for rows in customer_pages(store, names, touches=True if wanted is None else wanted, since=start, until=end,
                               properties=True):
        paths = paths_from_touchpoints(_touches(rows), names, lookback, _OncePerMessage())
        for path in paths:
            row = totals.setdefault(path.channels, [0.0, 0.0, 0.0])
            row[0] += path.conversions
            row[1] += path.value
            row[2] += path.nulls
        if "time_decay" in chosen:
            decayed.append(attribute(paths, "time_decay", **params.get("time_decay", {})))
    summed = [Path(channels, *row) for channels, row in totals.items()]
    results = {}
    for model in chosen:
        if model == "time_decay":
            results[model] = _add_up(decayed, summed, params.get("time_decay", {}))
        else:
            results[model] = attribute(summed, model, order=order if model == "markov" else 1,
                                       **params.get(model, {}))
    return results


def _add_up(parts: list[AttributionResult], summed: list[Path], params: Mapping[str, Any]) -> AttributionResult:
    """One result from per-page results, with channels in the order the other models list them."""
    channels = attribute(summed, "first_touch").channels
    conversions = {channel: math.fsum(p.conversions.get(channel, 0.0) for p in parts) for channel in channels}
    value = {channel: math.fsum(p.value.get(channel, 0.0) for p in parts) for channel in channels}
    resolved = parts[0].params if parts else attribute([], "time_decay", **params).params
    return AttributionResult(model="time_decay", params=resolved, conversions=conversions, value=value)


def attribution(
    store: SQLStore,
    model: str = "markov",
    *,
    order: int = 1,
    conversion: str | Collection[str] = "Order Completed",
    lookback: timedelta = timedelta(days=30),
    touches: Collection[str] | None = None,
    since: datetime | float | None = None,
    until: datetime | float | None = None,
    **params: Any,
) -> AttributionResult:
    """One model over the store's touchpoints (`omni.attribution`); `params` are the model's own."""
    if not isinstance(model, str):
        raise ValidationError("expected one model name (attributions takes several)", field="model", value=model)
    return attributions(store, (model,), order=order, conversion=conversion, lookback=lookback, touches=touches,
                            since=since, until=until, params={model: params})[model]
