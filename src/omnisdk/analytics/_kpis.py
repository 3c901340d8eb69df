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
from ..store import SQLStore, Transaction
from ..store._decisions import last_reason_sql

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


def _range(column: str, start: float | None, end: float | None) -> tuple[str, list[Any]]:
    clauses, params = ["1 = 1"], []
    if start is not None:
        clauses.append(f"{column} >= ?")
        params.append(start)
    if end is not None:
        clauses.append(f"{column} < ?")
        params.append(end)
    return " AND ".join(clauses), params


def _marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items))


def _grouped(
    tx: Transaction, dims: tuple[str, ...], source: str, fields: Mapping[str, str], where: str, params: Sequence[Any]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """`fields` (name → SQL aggregate) per group of `source` joined to its deliveries `d`."""
    columns = _columns(tx, dims)
    select = [*columns, *fields.values()]
    sql = f"SELECT {', '.join(select)} FROM {source} WHERE {where}"
    if columns:
        sql += f" GROUP BY {', '.join(columns)}"
    found = {}
    for row in tx.query(sql, params):
        found[tuple(row[: len(dims)])] = dict(zip(fields, row[len(dims):], strict=True))
    return found


def _measure(
    tx: Transaction, dims: tuple[str, ...], start: float | None, end: float | None,
    conversion: tuple[str, ...], window: float,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Three grouped queries: the deliveries, their engagement, their conversions. The last two are driven
    from the (few) engaged or credited messages and look each delivery up by its key, never the reverse."""
    created_in, created_params = _range("d.created_at", start, end)
    groups = _grouped(tx, dims, "deliveries d", {
        "messages": "COUNT(*)",
        "sent": "SUM(CASE WHEN d.sent_at IS NOT NULL THEN 1 ELSE 0 END)",
        "delivered": "SUM(CASE WHEN d.status = 'delivered' THEN 1 ELSE 0 END)",
        "failed": "SUM(CASE WHEN d.status = 'failed' THEN 1 ELSE 0 END)",
        "skipped": "SUM(CASE WHEN d.status = 'skipped' THEN 1 ELSE 0 END)",
        "cancelled": "SUM(CASE WHEN d.status = 'cancelled' THEN 1 ELSE 0 END)",
        "pending": "SUM(CASE WHEN d.status IN ('queued', 'deferred', 'sending') THEN 1 ELSE 0 END)",
        "segments": "SUM(COALESCE(d.segments, 0))",
        "cost": "SUM(COALESCE(d.cost, 0))",
    }, created_in, created_params)

    delivery_of = tx.dialect.json_text("t.properties", "delivery_id")
    events = sorted({name for names in _ENGAGEMENT.values() for name in names})
    flags: list[str] = []
    params: list[Any] = []
    for flag, names in _ENGAGEMENT.items():
        flags.append(f"MAX(CASE WHEN t.name IN ({_marks(names)}) THEN 1 ELSE 0 END) AS {flag}")
        params.extend(names)
    engaged_since, engaged_params = _range("t.occurred_at", start, None)
    engagement = (
        f"(SELECT {delivery_of} AS delivery_id, {', '.join(flags)} FROM touchpoints t "
        f"WHERE t.name IN ({_marks(events)}) AND {engaged_since} AND {delivery_of} IS NOT NULL "
        f"GROUP BY {delivery_of}) e CROSS JOIN deliveries d"
    )
    engaged = _grouped(tx, dims, engagement, {
        # messages already counted as delivered by their status are not counted twice
        "delivered": "SUM(CASE WHEN e.delivered = 1 AND d.status <> 'delivered' THEN 1 ELSE 0 END)",
        **{flag: f"SUM(e.{flag})" for flag in _ENGAGEMENT if flag != "delivered"},
    }, f"d.id = e.delivery_id AND {created_in}", [*params, *events, *engaged_params, *created_params])

    converted_in, converted_params = _range("c.occurred_at", start, None if end is None else end + window)
    credited = (
        f"(SELECT ({_latest_message_sql()}) AS delivery_id, "
        f"{tx.dialect.json_number('c.properties', 'revenue')} AS revenue "
        f"FROM touchpoints c WHERE c.name IN ({_marks(conversion)}) AND {converted_in}) cr CROSS JOIN deliveries d"
    )
    converted = _grouped(tx, dims, credited, {"converted": "COUNT(*)", "revenue": "SUM(COALESCE(cr.revenue, 0))"},
                         f"d.id = cr.delivery_id AND {created_in}",
                         [window, *conversion, *converted_params, *created_params])
    for extra in (engaged, converted):
        for key, values in extra.items():
            row = groups.setdefault(key, {})
            for name, value in values.items():
                row[name] = (row.get(name) or 0) + (value or 0)
    return groups


def _latest_message_sql() -> str:
    """The latest delivery sent to conversion `c`'s customer within the window (`?`, seconds) before it."""
    return (
        "SELECT d2.id FROM deliveries d2 WHERE d2.customer_id = c.customer_id AND d2.sent_at IS NOT NULL "
        "AND d2.sent_at <= c.occurred_at AND d2.sent_at >= c.occurred_at - ? "
        "ORDER BY d2.sent_at DESC, d2.id DESC LIMIT 1"
    )


def _last_skip_reason(tx: Transaction) -> str:
    """The reason of the last entry of a delivery's decision log (the skip)."""
    return last_reason_sql(tx, "d")


def _columns(tx: Transaction, dims: tuple[str, ...]) -> list[str]:
    """SQL of each dimension. A message skipped before a channel was chosen counts under its first candidate."""
    first = "(d.channels ->> 0)" if tx.dialect.name == "postgresql" else "json_extract(d.channels, '$[0]')"
    return [f"COALESCE(d.channel, {first})" if dim == "channel" else f"d.{DIMENSIONS[dim]}" for dim in dims]


def _reasons(
    tx: Transaction, dims: tuple[str, ...], status: str, reason: str, start: float | None, end: float | None
) -> dict[tuple[Any, ...], dict[str, int]]:
    columns = _columns(tx, dims)
    created_in, params = _range("d.created_at", start, end)
    keys = [*columns, reason]
    rows = tx.query(
        f"SELECT {', '.join(keys)}, COUNT(*) FROM deliveries d WHERE d.status = ? AND {created_in} "
        f"GROUP BY {', '.join(keys)}",
        [status, *params],
    )
    found: dict[tuple[Any, ...], dict[str, int]] = {}
    for row in rows:
        *group, why, count = row
        found.setdefault(tuple(group), {})[str(why or "unknown")] = int(count)
    return found


def _unattributed(
    tx: Transaction, start: float | None, end: float | None, conversion: tuple[str, ...], window: float
) -> tuple[int, float]:
    converted_in, params = _range("c.occurred_at", start, end)
    row = tx.one(
        f"SELECT COUNT(*), SUM(COALESCE({tx.dialect.json_number('c.properties', 'revenue')}, 0)) "
        f"FROM touchpoints c WHERE c.name IN ({_marks(conversion)}) AND {converted_in} "
        f"AND NOT EXISTS ({_latest_message_sql()})",
        [*conversion, *params, window],
    )
    return (int(row[0] or 0), float(row[1] or 0.0)) if row else (0, 0.0)


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
    with store.transaction(immediate=False) as tx:
        grouped = _measure(tx, dims, start, end, names, seconds)
        skips = _reasons(tx, dims, "skipped", _last_skip_reason(tx), start, end)
        failures = _reasons(tx, dims, "failed", "d.error", start, end)
        unattributed, unattributed_revenue = _unattributed(tx, start, end, names, seconds)
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
