"""Delivery and engagement KPIs per channel, provider, journey, step, template or broadcast, in SQL.

Everything is counted per delivery (one queued message) in one grouped query over `deliveries`,
joined with what the touchpoints say happened to each delivery: webhooks, tracked clicks and
one-click unsubscribes record their touchpoints with the `delivery_id` they belong to. The store
does the work, so memory holds one row per group whatever the number of messages.

A conversion (by default "Order Completed", online or at the POS) is credited to the latest message
sent to that customer on any channel within `window` before it; each conversion is counted once, so
the rows of a table add up to its total.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

import attrs

from .._clock import to_datetime
from .._errors import ValidationError
from .._touchpoints import Events
from ..store import SQLStore
from ..store._analytics import kpi_groups, reason_counts, unattributed_conversions

__all__ = ["DIMENSIONS", "RATES", "KPIRow", "KPITable", "check_names", "kpis", "period_bounds"]

#: What KPIs can be grouped by, and the `deliveries` column each one reads.
DIMENSIONS: Final[Mapping[str, str]] = MappingProxyType({
    "channel": "channel",
    "provider": "provider",
    "journey": "journey",
    "step": "step",
    "template": "template",
    "broadcast": "broadcast_id",
})

_DELIVERED: Final = (Events.MESSAGE_DELIVERED, Events.MAIL_DELIVERED, Events.MESSAGE_OPENED, Events.LINK_CLICKED)
#: Engagement flags: column name → the events that set it on a delivery.
_ENGAGEMENT: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType({
    "delivered": _DELIVERED,
    "opened": (Events.MESSAGE_OPENED,),
    "clicked": (Events.LINK_CLICKED,),
    "bounced": (Events.MESSAGE_BOUNCED,),
    "complained": (Events.MESSAGE_COMPLAINED,),
    "unsubscribed": (Events.UNSUBSCRIBED,),
})
_COUNTS: Final = ("messages", "sent", "delivered", "opened", "clicked", "converted", "unsubscribed", "complained",
                  "bounced", "failed", "skipped", "cancelled", "pending", "segments")


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _frozen_counts(mapping: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(mapping))


def _frozen_group(mapping: Mapping[str, str | None]) -> Mapping[str, str | None]:
    return MappingProxyType(dict(mapping))


@attrs.frozen(kw_only=True)
class KPIRow:
    """The KPIs of one group of deliveries (`group` maps each dimension to its value; None = not set).

    `messages` counts deliveries queued in the period; `sent` those a provider accepted;
    `delivered`, `opened`, `clicked`, `bounced`, `complained` and `unsubscribed` count deliveries
    with at least one such event (unique, not total, opens); `pending` are queued, deferred or sending.
    """

    group: Mapping[str, str | None] = attrs.field(converter=_frozen_group)
    messages: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    converted: int = 0
    unsubscribed: int = 0
    complained: int = 0
    bounced: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0
    pending: int = 0
    #: SMS segments billed
    segments: int = 0
    #: what providers reported it cost (SMS segments, postage), in the providers' currency
    cost: float = 0.0
    #: revenue of the conversions credited to these messages
    revenue: float = 0.0
    #: why messages were skipped (consent, reachability, caps, goal reached…), with counts
    skip_reasons: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_counts)
    #: why messages failed (provider errors, bounces), with counts
    failure_reasons: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen_counts)

    @property
    def delivery_rate(self) -> float | None:
        return _ratio(self.delivered, self.sent)

    @property
    def open_rate(self) -> float | None:
        """Unique opens per delivered message."""
        return _ratio(self.opened, self.delivered)

    @property
    def click_rate(self) -> float | None:
        """Unique clicks per delivered message."""
        return _ratio(self.clicked, self.delivered)

    @property
    def conversion_rate(self) -> float | None:
        """Conversions per sent message."""
        return _ratio(self.converted, self.sent)

    @property
    def unsubscribe_rate(self) -> float | None:
        return _ratio(self.unsubscribed, self.delivered)

    @property
    def bounce_rate(self) -> float | None:
        return _ratio(self.bounced, self.sent)

    @property
    def cost_per_conversion(self) -> float | None:
        return _ratio(self.cost, self.converted)

    @property
    def return_on_cost(self) -> float | None:
        """Revenue per unit of cost."""
        return _ratio(self.revenue, self.cost)

    def as_dict(self) -> dict[str, Any]:
        """Flat values (dimensions, counts, money, rates), ready for a table or a CSV row."""
        row: dict[str, Any] = dict(self.group)
        row.update({name: getattr(self, name) for name in _COUNTS})
        row.update(cost=self.cost, revenue=self.revenue)
        for rate in RATES:
            row[rate] = getattr(self, rate)
        return row


#: The rates `KPIRow` computes, in the order tables show them.
RATES: Final = ("delivery_rate", "open_rate", "click_rate", "conversion_rate", "unsubscribe_rate", "bounce_rate",
                "cost_per_conversion", "return_on_cost")


@attrs.frozen(kw_only=True)
class KPITable:
    """KPIs grouped by `by`, plus the `total` over every group, for the period [since, until)."""

    by: tuple[str, ...]
    rows: tuple[KPIRow, ...]
    total: KPIRow
    since: datetime | None
    until: datetime | None
    conversion: tuple[str, ...]
    window: timedelta
    #: conversions in the period with no message in the window before them (not in any row)
    unattributed_conversions: int = 0
    unattributed_revenue: float = 0.0

    def as_dicts(self) -> list[dict[str, Any]]:
        return [row.as_dict() for row in self.rows]


def period_bounds(since: datetime | float | None, until: datetime | float | None) -> tuple[float | None, float | None]:
    """Epoch seconds of a [since, until) period; either end may be open; naive datetimes are UTC."""
    bounds: list[float | None] = []
    for name, value in (("since", since), ("until", until)):
        if value is None:
            bounds.append(None)
        elif isinstance(value, datetime):
            bounds.append((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            bounds.append(float(value))
        else:
            raise ValidationError("expected a datetime or epoch seconds", field=name, value=value)
    start, end = bounds
    if start is not None and end is not None and end <= start:
        raise ValidationError("must be after since", field="until", value=until)
    return start, end


def check_names(value: str | Collection[str], field: str) -> tuple[str, ...]:
    """One event name or several, as a non-empty tuple of non-empty strings."""
    names = (value,) if isinstance(value, str) else tuple(value)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValidationError("expected an event name or a list of event names", field=field, value=value)
    return names


def _check_by(by: str | Sequence[str] | None) -> tuple[str, ...]:
    dims = () if by is None else (by,) if isinstance(by, str) else tuple(by)
    for dim in dims:
        if dim not in DIMENSIONS:
            raise ValidationError(f"unknown dimension {dim!r}; expected one of {', '.join(DIMENSIONS)}",
                                  field="by", value=dim)
    if len(set(dims)) != len(dims):
        raise ValidationError("a dimension is repeated", field="by", value=by)
    return dims


def _row(group: Mapping[str, str | None], values: Mapping[str, Any], skips: Mapping[str, int],
         failures: Mapping[str, int]) -> KPIRow:
    counts = {name: int(values.get(name) or 0) for name in _COUNTS}
    return KPIRow(group=group, **counts, cost=float(values.get("cost") or 0.0),
                  revenue=float(values.get("revenue") or 0.0), skip_reasons=skips, failure_reasons=failures)


def _sort_key(row: KPIRow) -> tuple[Any, ...]:
    return (-row.messages, *((value is None, value or "") for value in row.group.values()))


def kpis(
    store: SQLStore,
    by: str | Sequence[str] | None = "channel",
    *,
    since: datetime | float | None = None,
    until: datetime | float | None = None,
    conversion: str | Collection[str] = Events.ORDER_COMPLETED,
    window: timedelta = timedelta(days=7),
) -> KPITable:
    """KPIs of the messages queued in [since, until), grouped by `by` (any of `DIMENSIONS`).

    Their engagement and the conversions credited to them count whenever they happen. Group by
    ("journey", "step") to tell steps of different journeys apart.
    """
    dims = _check_by(by)
    names = check_names(conversion, "conversion")
    if not isinstance(window, timedelta) or window <= timedelta(0):
        raise ValidationError("must be a positive timedelta", field="window", value=window)
    seconds = window.total_seconds()
    start, end = period_bounds(since, until)
    columns = [DIMENSIONS[dim] for dim in dims]
    with store.transaction(immediate=False) as tx:
        grouped = kpi_groups(tx, columns, start, end, engagement=_ENGAGEMENT, conversion=names, window=seconds)
        skips = reason_counts(tx, columns, "skipped", start, end)
        failures = reason_counts(tx, columns, "failed", start, end)
        unattributed, unattributed_revenue = unattributed_conversions(tx, start, end, names, seconds)
    rows = tuple(sorted((_row(dict(zip(dims, key, strict=True)), values, skips.get(key, {}), failures.get(key, {}))
                         for key, values in grouped.items()), key=_sort_key))
    total_skips: dict[str, int] = {}
    total_failures: dict[str, int] = {}
    for source, target in ((skips, total_skips), (failures, total_failures)):
        for reasons in source.values():
            for reason, count in reasons.items():
                target[reason] = target.get(reason, 0) + count
    sums = {name: sum(getattr(row, name) for row in rows) for name in (*_COUNTS, "cost", "revenue")}
    total = _row({}, sums, total_skips, total_failures)
    return KPITable(
        by=dims, rows=rows, total=total,
        since=to_datetime(start) if start is not None else None, until=to_datetime(end) if end is not None else None,
        conversion=names, window=window, unattributed_conversions=unattributed,
        unattributed_revenue=unattributed_revenue,
    )
