"""Segments: membership snapshots and the queries segment conditions compile to.

A condition (`omnisdk.segments`: a pure model of `did`, `trait`, `count`… combined with `&`, `|`,
`~`) is turned here into one SQL condition over `customers AS c`; each node says what it is by its
`node` name and its fields, so the model knows nothing of SQL and this module nothing of the
model's classes. Every SQL statement about segments lives here (see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._base import Dialect, Transaction

__all__ = [
    "NOT_ENGAGEMENT",
    "NOW",
    "MembershipChange",
    "Sql",
    "compile_condition",
    "compile_segment",
    "count_segment",
    "in_segment",
    "refresh_membership",
    "segment_page",
]

#: Touchpoints that are not something the customer did (they do not count as engagement).
NOT_ENGAGEMENT: Final = (
    "Message Sent", "Message Delivered", "Message Bounced", "Message Failed", "Mail In Transit", "Mail Delivered",
    "Segment Entered", "Segment Exited",
)

#: Placeholder parameter: replaced by the evaluation time.
NOW: Final = object()


@attrs.frozen
class Sql:
    """A compiled fragment: SQL text with `?` marks, and its parameters (`NOW` where "now" goes)."""

    text: str
    params: tuple[Any, ...] = ()


def compile_condition(condition: Any, dialect: Dialect) -> Sql:
    """The SQL of a segment condition (a node of `omnisdk.segments`)."""
    node = condition.node
    if node == "combined":
        compiled = [compile_condition(p, dialect) for p in condition.parts]
        return Sql("(" + f" {condition.op} ".join(c.text for c in compiled) + ")",
                   tuple(x for c in compiled for x in c.params))
    if node == "not":
        inner = compile_condition(condition.inner, dialect)
        return Sql(f"(NOT COALESCE({inner.text}, FALSE))", inner.params)
    if node == "compare":
        left = _measure(condition.measure, dialect, condition.numeric)
        if condition.value is None:
            return Sql(f"({left.text} IS {'NOT ' if condition.op == '<>' else ''}NULL)", left.params)
        return Sql(f"({left.text} {condition.op} ?)", (*left.params, condition.value))
    if node == "did":
        w = _window(condition.event, condition.within, condition.where, dialect)
        return Sql(f"EXISTS (SELECT 1 FROM touchpoints t WHERE {w.text})", w.params)
    if node == "consented":
        latest = (
            "(SELECT k.granted FROM consents k WHERE k.customer_id = c.id AND k.channel IN (?, 'all') "
            "AND k.purpose = ? ORDER BY k.recorded_at DESC, k.id DESC LIMIT 1)"
        )
        default = 1 if condition.purpose == "transactional" else 0  # transactional: allowed unless revoked
        return Sql(f"(COALESCE({latest}, {default}) = 1)", (condition.channel, condition.purpose))
    if node == "has":
        return Sql("EXISTS (SELECT 1 FROM identities i WHERE i.customer_id = c.id AND i.kind = ?)", (condition.kind,))
    raise TypeError(f"not a segment condition: {condition!r}")


def _measure(measure: Any, dialect: Dialect, numeric: bool) -> Sql:
    node = measure.node
    if node == "trait":
        if measure.name in ("timezone", "locale"):
            return Sql(f"c.{measure.name}")
        fn = dialect.json_number if numeric else dialect.json_text
        return Sql(fn("c.traits", measure.name))
    if node == "aggregate":
        w = _window(measure.event, measure.within, measure.where, dialect)
        expr = "COUNT(*)" if measure.prop is None else \
            f"COALESCE(SUM({dialect.json_number('t.properties', measure.prop)}), 0)"
        return Sql(f"(SELECT {expr} FROM touchpoints t WHERE {w.text})", w.params)
    if node == "last_channel":
        marks = ",".join("?" * len(NOT_ENGAGEMENT))
        text = f"t.customer_id = c.id AND t.name NOT IN ({marks})"
        params: list[Any] = list(NOT_ENGAGEMENT)
        if measure.within is not None:
            text += " AND t.occurred_at >= ? - ?"
            params += [NOW, measure.within.total_seconds()]
        return Sql(
            f"(SELECT t.channel FROM touchpoints t WHERE {text} ORDER BY t.occurred_at DESC, t.seq DESC LIMIT 1)",
            tuple(params),
        )
    if node == "prediction" and measure.name in _PREDICTED:
        return Sql(f"(SELECT p.{measure.name} FROM predictions p WHERE p.customer_id = c.id)")
    raise TypeError(f"not a segment measure: {measure!r}")


#: The columns of `predictions` a segment can compare (store/_predictions.py writes them).
_PREDICTED: Final = frozenset({"predicted_clv", "churn_risk", "probability_alive", "expected_purchases"})


def _window(event: str, within: Any, where: Mapping[str, Any] | None, dialect: Dialect) -> Sql:
    """The customer's touchpoints named `event`, within the window, with the given properties."""
    text = "t.customer_id = c.id AND t.name = ?"
    params: list[Any] = [event]
    if within is not None:
        text += " AND t.occurred_at >= ? - ?"
        params += [NOW, within.total_seconds()]
    for key, value in (where or {}).items():
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        fn = dialect.json_number if numeric else dialect.json_text
        text += f" AND {fn('t.properties', key)} = ?"
        params.append(value)
    return Sql(text, tuple(params))


def compile_segment(condition: Any, dialect: Dialect) -> tuple[str, list[Any], list[int]]:
    """The segment as SQL over `customers AS c` (live profiles only), its parameters with None where
    "now" goes, and the positions of "now" (for a plan stored and evaluated later)."""
    compiled = compile_condition(condition, dialect)
    params = [None if p is NOW else p for p in compiled.params]
    now_at = [i for i, p in enumerate(compiled.params) if p is NOW]
    return f"c.merged_into IS NULL AND COALESCE({compiled.text}, FALSE)", params, now_at


def _where(condition: Any, dialect: Dialect, now: float) -> tuple[str, list[Any]]:
    sql, params, now_at = compile_segment(condition, dialect)
    for i in now_at:
        params[i] = now
    return sql, params


def segment_page(tx: Transaction, condition: Any, now: float, *, after: str, page: int) -> list[str]:
    """Up to `page` customer ids in the segment after `after`, in id order."""
    where, params = _where(condition, tx.dialect, now)
    rows = tx.query(f"SELECT c.id FROM customers c WHERE {where} AND c.id > ? ORDER BY c.id LIMIT ?",
                    (*params, after, page))
    return [cid for (cid,) in rows]


def count_segment(tx: Transaction, condition: Any, now: float) -> int:
    where, params = _where(condition, tx.dialect, now)
    return int(tx.scalar(f"SELECT COUNT(*) FROM customers c WHERE {where}", params) or 0)


def in_segment(tx: Transaction, condition: Any, now: float, customer_id: str) -> bool:
    where, params = _where(condition, tx.dialect, now)
    return bool(tx.scalar(f"SELECT 1 FROM customers c WHERE {where} AND c.id = ?", (*params, customer_id)))


@attrs.frozen
class MembershipChange:
    """Who entered a watched segment, who left it (`exited`: the profiles still live; `left` counts
    merged-away profiles too)."""

    entered: tuple[str, ...]
    exited: tuple[str, ...]
    left: int


def refresh_membership(tx: Transaction, segment: str, condition: Any, now: float) -> MembershipChange:
    """Update a watched segment's members to who matches at `now`, set-based."""
    where, params = _where(condition, tx.dialect, now)
    tx.execute(
        "INSERT INTO segment_members (segment, customer_id, entered_at, seen_at) "
        f"SELECT ?, c.id, ?, ? FROM customers c WHERE {where} "
        "ON CONFLICT (segment, customer_id) DO UPDATE SET seen_at = excluded.seen_at",
        (segment, now, now, *params),
    )
    entered = tx.query("SELECT customer_id FROM segment_members WHERE segment = ? AND entered_at = ?", (segment, now))
    left = tx.query(
        "SELECT m.customer_id, c.merged_into FROM segment_members m JOIN customers c ON c.id = m.customer_id "
        "WHERE m.segment = ? AND m.seen_at < ?",
        (segment, now),
    )
    tx.execute("DELETE FROM segment_members WHERE segment = ? AND seen_at < ?", (segment, now))
    return MembershipChange(tuple(cid for (cid,) in entered), tuple(cid for cid, merged in left if not merged),
                            len(left))
