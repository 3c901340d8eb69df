"""Read-only queries behind KPIs, funnels, attribution and timelines.

KPIs are counted by the database, per delivery, in grouped queries over `deliveries` joined with
what the touchpoints say happened to each (webhooks, tracked clicks and unsubscribes carry the
`delivery_id`); memory holds one row per group. Timelines are streamed in pages keyed on
(customer_id, occurred_at, seq), whole customers at a time, each page its own short read.
Every SQL statement of these reads lives here (see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import attrs

from ._base import SQLStore, Transaction
from ._decisions import last_reason_sql
from ._quarantine import decode_rows
from ._rows import timestamp

__all__ = [
    "PAGE",
    "SentMessage",
    "TimelineRow",
    "count_by",
    "customer_pages",
    "kpi_groups",
    "merge_count",
    "reason_counts",
    "runs_exited_by",
    "sent_since",
    "touchpoints_by_channel",
    "unattributed_conversions",
]

#: Touchpoints read per query.
PAGE = 10_000


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


# -- KPIs
def _columns(tx: Transaction, columns: Sequence[str]) -> list[str]:
    """SQL of each grouping column of `deliveries`. A message skipped before a channel was chosen
    counts under its first candidate."""
    first = "(d.channels ->> 0)" if tx.dialect.name == "postgresql" else "json_extract(d.channels, '$[0]')"
    return [f"COALESCE(d.channel, {first})" if column == "channel" else f"d.{column}" for column in columns]


def _grouped(
    tx: Transaction, columns: Sequence[str], source: str, fields: Mapping[str, str], where: str,
    params: Sequence[Any],
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """`fields` (name → SQL aggregate) per group of `source` joined to its deliveries `d`."""
    grouping = _columns(tx, columns)
    sql = f"SELECT {', '.join([*grouping, *fields.values()])} FROM {source} WHERE {where}"
    if grouping:
        sql += f" GROUP BY {', '.join(grouping)}"
    found = {}
    for row in tx.query(sql, params):
        found[tuple(row[: len(columns)])] = dict(zip(fields, row[len(columns):], strict=True))
    return found


def kpi_groups(
    tx: Transaction, columns: Sequence[str], start: float | None, end: float | None, *,
    engagement: Mapping[str, Sequence[str]], conversion: Sequence[str], window: float,
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Counts per group of the deliveries queued in [start, end), grouped by `columns`: the deliveries
    by status, their engagement flags (`engagement`: flag → the events that set it) and the
    conversions credited to them (the latest message within `window` seconds before one).

    Three grouped queries; the last two are driven from the (few) engaged or credited messages and
    look each delivery up by its key, never the reverse."""
    created_in, created_params = _range("d.created_at", start, end)
    groups = _grouped(tx, columns, "deliveries d", {
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
    events = sorted({name for names in engagement.values() for name in names})
    flags: list[str] = []
    params: list[Any] = []
    for flag, names in engagement.items():
        flags.append(f"MAX(CASE WHEN t.name IN ({_marks(names)}) THEN 1 ELSE 0 END) AS {flag}")
        params.extend(names)
    engaged_since, engaged_params = _range("t.occurred_at", start, None)
    engaged_source = (
        f"(SELECT {delivery_of} AS delivery_id, {', '.join(flags)} FROM touchpoints t "
        f"WHERE t.name IN ({_marks(events)}) AND {engaged_since} AND {delivery_of} IS NOT NULL "
        f"GROUP BY {delivery_of}) e CROSS JOIN deliveries d"
    )
    engaged = _grouped(tx, columns, engaged_source, {
        # messages already counted as delivered by their status are not counted twice
        "delivered": "SUM(CASE WHEN e.delivered = 1 AND d.status <> 'delivered' THEN 1 ELSE 0 END)",
        **{flag: f"SUM(e.{flag})" for flag in engagement if flag != "delivered"},
    }, f"d.id = e.delivery_id AND {created_in}", [*params, *events, *engaged_params, *created_params])

    converted_in, converted_params = _range("c.occurred_at", start, None if end is None else end + window)
    credited = (
        f"(SELECT ({_latest_message_sql()}) AS delivery_id, "
        f"{tx.dialect.json_number('c.properties', 'revenue')} AS revenue "
        f"FROM touchpoints c WHERE c.name IN ({_marks(conversion)}) AND {converted_in}) cr CROSS JOIN deliveries d"
    )
    converted = _grouped(tx, columns, credited, {"converted": "COUNT(*)", "revenue": "SUM(COALESCE(cr.revenue, 0))"},
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


def reason_counts(
    tx: Transaction, columns: Sequence[str], status: Literal["skipped", "failed"], start: float | None,
    end: float | None,
) -> dict[tuple[Any, ...], dict[str, int]]:
    """Per group, how many deliveries queued in [start, end) ended `status`, by reason (the last
    decision's for a skip, the error for a failure)."""
    reason = _last_skip_reason(tx) if status == "skipped" else "d.error"
    created_in, params = _range("d.created_at", start, end)
    keys = [*_columns(tx, columns), reason]
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


def unattributed_conversions(
    tx: Transaction, start: float | None, end: float | None, conversion: Sequence[str], window: float
) -> tuple[int, float]:
    """Conversions in [start, end) no message is credited with: how many, and their revenue."""
    converted_in, params = _range("c.occurred_at", start, end)
    row = tx.one(
        f"SELECT COUNT(*), SUM(COALESCE({tx.dialect.json_number('c.properties', 'revenue')}, 0)) "
        f"FROM touchpoints c WHERE c.name IN ({_marks(conversion)}) AND {converted_in} "
        f"AND NOT EXISTS ({_latest_message_sql()})",
        [*conversion, *params, window],
    )
    return (int(row[0] or 0), float(row[1] or 0.0)) if row else (0, 0.0)


# -- timelines
@attrs.frozen(slots=True)
class TimelineRow:
    """One touchpoint as analytics walks it: `revenue` and `delivery_id` are read from its properties
    when asked for (None otherwise, or when absent)."""

    customer_id: str
    channel: str
    name: str
    occurred_at: float
    revenue: float | None = None
    delivery_id: str | None = None


def customer_pages(
    store: SQLStore,
    names: Sequence[str],
    *,
    touches: bool | Sequence[str] = False,
    since: float | None = None,
    until: float | None = None,
    properties: bool = False,
    page: int = PAGE,
) -> Iterator[list[TimelineRow]]:
    """Touchpoints named `names` (and, with `touches`, every touchpoint on a channel other than
    "server", or only those of them named in `touches`) that occurred in [since, until), in lists
    holding whole customers, ordered by customer and time (recording order breaks ties). With
    `properties`, each row carries its revenue and delivery id.

    Pages are keyed on the customer id alone (a range of the (customer_id, occurred_at) index); the
    page's last customer, maybe cut short, is read again at the start of the next page."""
    where = f"name IN ({_marks(names)})"
    params: list[Any] = list(names)
    if touches is not False:
        where = f"({where} OR (channel <> 'server'"
        if touches is not True:
            where += f" AND name IN ({_marks(touches)})"
            params.extend(touches)
        where += "))"
    for clause, bound in (("occurred_at >= ?", since), ("occurred_at < ?", until)):
        if bound is not None:
            where += f" AND {clause}"
            params.append(bound)
    dialect = store.dialect
    extra = (f", {dialect.json_number('properties', 'revenue')}, {dialect.json_text('properties', 'delivery_id')}"
             if properties else ", NULL, NULL")
    select = f"SELECT customer_id, channel, name, occurred_at{extra}, seq FROM touchpoints WHERE ({where})"
    order = " ORDER BY customer_id, occurred_at, seq"
    after: str | None = None
    while True:
        with store.transaction(immediate=False) as tx:
            if after is None:
                rows = tx.query(f"{select}{order} LIMIT ?", [*params, page])
            else:
                rows = tx.query(f"{select} AND customer_id > ?{order} LIMIT ?", [*params, after, page])
            complete = len(rows) < page
            split = len(rows)
            if not complete:
                last = rows[-1][0]
                while split and rows[split - 1][0] == last:
                    split -= 1
                if not split:  # one customer fills the page: read all of theirs
                    rows = tx.query(f"{select} AND customer_id = ?{order}", [*params, last])
                    split = len(rows)
            readable = decode_rows(tx, "touchpoints", rows[:split], _timeline_row, key=_seq)
        if readable:
            yield readable
        if complete:
            return
        after = rows[split - 1][0]


def _timeline_row(row: Sequence[Any]) -> TimelineRow:
    cid, channel, name, occurred, revenue, delivery_id, _ = row
    return TimelineRow(cid, channel, name, timestamp(occurred), revenue, delivery_id)


def _seq(row: Sequence[Any]) -> tuple[Any, ...]:
    return (row[-1],)


# -- summaries (the demo's closing tables)
@attrs.frozen
class SentMessage:
    delivery_id: str
    channel: str | None
    provider_message_id: str | None


def sent_since(tx: Transaction, since: float) -> list[SentMessage]:
    """Deliveries sent (and not yet further along) since `since`."""
    rows = tx.query("SELECT id, channel, provider_message_id FROM deliveries WHERE status = 'sent' AND sent_at >= ?",
                    (since,))
    return [SentMessage(*row) for row in rows]


def count_by(tx: Transaction, table: Literal["deliveries", "journey_runs"]) -> list[tuple[str, str, int]]:
    """(channel or journey, status, how many) of `table`, sorted."""
    group = "COALESCE(channel, '-')" if table == "deliveries" else "journey"
    return [(str(a), str(b), int(n)) for a, b, n in
            tx.query(f"SELECT {group}, status, COUNT(*) FROM {table} GROUP BY 1, 2 ORDER BY 1, 2")]


def touchpoints_by_channel(tx: Transaction) -> list[tuple[str, int]]:
    """(channel, how many touchpoints), most first."""
    return [(str(c), int(n)) for c, n in
            tx.query("SELECT channel, COUNT(*) FROM touchpoints GROUP BY channel ORDER BY 2 DESC")]


def merge_count(tx: Transaction) -> int:
    return int(tx.scalar("SELECT COUNT(*) FROM merges") or 0)


def runs_exited_by(tx: Transaction, journey: str, channel: str, event: str) -> int:
    """How many runs of `journey` exited for customers who did `event` on `channel`."""
    return int(tx.scalar(
        "SELECT COUNT(*) FROM journey_runs r WHERE r.journey = ? AND r.status = 'exited' AND EXISTS "
        "(SELECT 1 FROM touchpoints t WHERE t.customer_id = r.customer_id AND t.channel = ? AND t.name = ?)",
        (journey, channel, event)) or 0)
