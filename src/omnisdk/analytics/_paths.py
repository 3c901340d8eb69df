"""Journeys as attribution sees them: a `Path` of channels with its outcome counts.

The row shape is the one the `channelattribution` package takes (path, conversions, value, nulls), so
data prepared for it can be passed as is, and aggregated rows (one per distinct path) stay cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from numbers import Real
from operator import attrgetter
from typing import Any, Protocol

import attrs

from .._errors import ValidationError

__all__ = ["Journeys", "Path", "TouchpointLike", "paths_from_touchpoints", "read_paths"]

_SECONDS_PER_DAY = 86_400.0
_PLAIN = frozenset({int, float})


def _channels(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        # tuple("email") would silently become five one-letter channels
        raise ValidationError(
            "must be a sequence of channel names, not a string (split 'a > b' first)", field="channels", value=value
        )
    return tuple(value)


def _ages(value: Iterable[float] | None) -> tuple[float, ...] | None:
    return None if value is None else tuple(value)


@attrs.frozen
class Path:
    """One journey, or many identical ones: the channels touched in order and what came of it.

    `conversions`, `value` (conversion value, e.g. revenue) and `nulls` (journeys that did not convert)
    are totals over every journey with these channels. `ages`, when given, is each touch's age in days
    at the conversion (or at the last touch of a non-converting path); only `time_decay` uses it.
    Values are checked by `attribute`, which knows the row index to report.
    """

    channels: tuple[str, ...] = attrs.field(converter=_channels)
    conversions: float
    value: float = 0.0
    nulls: float = 0.0
    ages: tuple[float, ...] | None = attrs.field(default=None, converter=_ages, kw_only=True)


@attrs.frozen
class Journeys:
    """Checked input, by column, with the distinct channels in order of first appearance."""

    channels: list[tuple[str, ...]]
    conversions: list[float]
    values: list[float]
    nulls: list[float]
    ages: list[tuple[float, ...]] | None
    names: tuple[str, ...]

    @property
    def total_conversions(self) -> float:
        return math.fsum(self.conversions)

    @property
    def total_value(self) -> float:
        return math.fsum(self.values)


def _count(row: int, field: str, value: Any) -> float:
    kind = type(value)
    if kind is int or kind is float or (isinstance(value, Real | Decimal) and kind is not bool):
        number = float(value)
    else:
        raise ValidationError("must be a number", field=f"paths[{row}].{field}", value=value)
    if not (0.0 <= number < math.inf):  # also rejects NaN
        raise ValidationError("must be a finite number >= 0", field=f"paths[{row}].{field}", value=value)
    return number


def _unpack(row: int, item: Any) -> tuple[Any, Any, Any, Any, Any]:
    if isinstance(item, Path):
        return item.channels, item.conversions, item.value, item.nulls, item.ages
    if isinstance(item, tuple | list) and 2 <= len(item) <= 4:
        channels, conversions, value, nulls = (*item, 0.0, 0.0)[:4]
        return channels, conversions, value, nulls, None
    raise ValidationError(
        "must be a Path or a (channels, conversions[, value[, nulls]]) tuple", field=f"paths[{row}]", value=item
    )


def _check_channels(row: int, channels: Any, known: set[str], order: list[str]) -> tuple[str, ...]:
    if type(channels) is not tuple:
        if isinstance(channels, str) or not isinstance(channels, Iterable):
            raise ValidationError(
                "must be a sequence of channel names (split 'a > b' strings first)",
                field=f"paths[{row}].channels",
                value=channels,
            )
        channels = tuple(channels)
    if not channels:
        raise ValidationError("a path needs at least one channel", field=f"paths[{row}].channels", value=channels)
    if not known.issuperset(channels):
        for name in channels:
            if name in known:
                continue
            if not isinstance(name, str) or not name:
                raise ValidationError(
                    "channel names must be non-empty strings", field=f"paths[{row}].channels", value=channels
                )
            known.add(name)
            order.append(name)
    checked: tuple[str, ...] = channels
    return checked


def _check_ages(row: int, ages: Any, length: int) -> tuple[float, ...]:
    field = f"paths[{row}].ages"
    if len(ages) != length:
        raise ValidationError(f"needs one age per channel ({length})", field=field, value=ages)
    checked = tuple(_count(row, "ages", age) for age in ages)
    if any(later > earlier for earlier, later in pairwise(checked)):
        raise ValidationError(
            "must not increase along the path (the first touch is the oldest)", field=field, value=ages
        )
    return checked


def read_paths(paths: Iterable[Path | Sequence[Any]]) -> Journeys:
    """Check every row once, naming the row and field of the first problem, and store them by column."""
    channels_col: list[tuple[str, ...]] = []
    conversions_col: list[float] = []
    values_col: list[float] = []
    nulls_col: list[float] = []
    ages_col: list[tuple[float, ...]] = []
    known: set[str] = set()
    names: list[str] = []
    with_ages = False
    for row, item in enumerate(paths):
        # the common case is checked inline: this loop is most of the cost of a simple model
        if type(item) is tuple and len(item) == 4:
            channels, conversions, value, nulls = item
            ages = None
        else:
            channels, conversions, value, nulls, ages = _unpack(row, item)
        if type(channels) is not tuple or not channels or not known.issuperset(channels):
            channels = _check_channels(row, channels, known, names)
        if not (type(conversions) in _PLAIN and 0 <= conversions < math.inf):
            conversions = _count(row, "conversions", conversions)
        if not (type(value) in _PLAIN and 0 <= value < math.inf):
            value = _count(row, "value", value)
        if not (type(nulls) in _PLAIN and 0 <= nulls < math.inf):
            nulls = _count(row, "nulls", nulls)
        if value and not conversions:
            raise ValidationError(
                "a path with a conversion value needs conversions > 0", field=f"paths[{row}].value", value=value
            )
        if (ages is not None) != with_ages:
            if row:
                raise ValidationError("either every path has ages or none has", field=f"paths[{row}].ages", value=ages)
            with_ages = True
        if ages is not None:
            ages_col.append(_check_ages(row, ages, len(channels)))
        channels_col.append(channels)
        conversions_col.append(conversions)
        values_col.append(value)
        nulls_col.append(nulls)
    return Journeys(
        channels=channels_col,
        conversions=conversions_col,
        values=values_col,
        nulls=nulls_col,
        ages=ages_col if with_ages else None,
        names=tuple(names),
    )


class TouchpointLike(Protocol):
    """What `paths_from_touchpoints` reads: `omnisdk`'s `Touchpoint` has these, and so may yours."""

    @property
    def customer_id(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def properties(self) -> Any: ...
    @property
    def occurred_at(self) -> datetime: ...


def _channel_of(touchpoint: TouchpointLike) -> str | None:
    return touchpoint.channel


def _revenue(touchpoint: TouchpointLike) -> float:
    revenue = touchpoint.properties.get("revenue") if touchpoint.properties else None
    if revenue is None:
        return 0.0
    if isinstance(revenue, bool) or not isinstance(revenue, int | float | Decimal) or not 0 <= revenue < math.inf:
        raise ValidationError(
            f"revenue of customer {touchpoint.customer_id!r}'s {touchpoint.name!r} must be a finite number >= 0",
            field="properties.revenue",
            value=revenue,
        )
    return float(revenue)


def _touch_path(touches: list[tuple[datetime, str]], at: datetime, conversions: float, value: float) -> Path:
    return Path(
        tuple(channel for _, channel in touches),
        conversions,
        value,
        1.0 - conversions,
        ages=tuple((at - when).total_seconds() / _SECONDS_PER_DAY for when, _ in touches),
    )


def paths_from_touchpoints(
    touchpoints: Iterable[TouchpointLike],
    conversion: str | Collection[str] = "Order Completed",
    lookback: timedelta = timedelta(days=30),
    channel_of: Callable[[TouchpointLike], str | None] = _channel_of,
) -> list[Path]:
    """Cut each customer's timeline into journeys, one `Path` per journey, with ages in days.

    A conversion event closes a converting path made of the customer's touches since the previous
    conversion and within `lookback` before it; the conversion event itself is not a touch, its
    `properties["revenue"]` is the path's value. Touches that were already older than `lookback` at that
    conversion, and the touches after a customer's last conversion, form non-converting paths. A
    conversion with no touch in its window is credited to its own channel. `channel_of` names the channel
    of a touch (e.g. per campaign); returning None leaves a touchpoint out.
    """
    names = frozenset((conversion,) if isinstance(conversion, str) else conversion)
    if lookback <= timedelta(0):
        raise ValidationError("must be a positive duration", field="lookback", value=lookback)
    by_customer: dict[str, list[TouchpointLike]] = {}
    for touchpoint in touchpoints:
        by_customer.setdefault(touchpoint.customer_id, []).append(touchpoint)
    paths: list[Path] = []
    for timeline in by_customer.values():
        timeline.sort(key=attrgetter("occurred_at"))  # stable: ties keep the order given
        pending: list[tuple[datetime, str]] = []
        for touchpoint in timeline:
            at = touchpoint.occurred_at
            if touchpoint.name not in names:
                channel = channel_of(touchpoint)
                if channel is not None:
                    pending.append((at, channel))
                continue
            cutoff = at - lookback
            expired = 0
            while expired < len(pending) and pending[expired][0] < cutoff:
                expired += 1
            if expired:
                paths.append(_touch_path(pending[:expired], pending[expired - 1][0], 0.0, 0.0))
            window = pending[expired:] or [(at, channel_of(touchpoint) or touchpoint.channel)]
            paths.append(_touch_path(window, at, 1.0, _revenue(touchpoint)))
            pending = []
        if pending:
            paths.append(_touch_path(pending, pending[-1][0], 0.0, 0.0))
    return paths
