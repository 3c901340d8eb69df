"""Customers' touchpoints streamed from the store in pages, whole customers at a time.

Funnels and attribution walk each customer's timeline in order. Reading pages keyed on
(customer_id, occurred_at, seq) keeps memory to one page plus one customer's touchpoints, and
each page is its own short read transaction, so writers are never held up for long.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..store import SQLStore

__all__ = ["PAGE", "customer_pages"]

Row = tuple[Any, ...]

#: Touchpoints read per query.
PAGE = 10_000


def customer_pages(
    store: SQLStore,
    columns: Sequence[str],
    where: str = "1 = 1",
    params: Sequence[Any] = (),
    *,
    page: int = PAGE,
) -> Iterator[list[Row]]:
    """Rows of `columns` (then customer_id, occurred_at, seq) matching `where`, each list holding whole
    customers, ordered by customer and time (recording order breaks ties)."""
    select = f"SELECT {', '.join(columns)}, customer_id, occurred_at, seq FROM touchpoints"
    order = " ORDER BY customer_id, occurred_at, seq LIMIT ?"
    tail = len(columns)
    carry: list[Row] = []
    after: Row | None = None
    while True:
        if after is None:
            sql, args = f"{select} WHERE ({where}){order}", [*params, page]
        else:
            sql = f"{select} WHERE ({where}) AND (customer_id, occurred_at, seq) > (?, ?, ?){order}"
            args = [*params, *after, page]
        with store.transaction(immediate=False) as tx:
            rows = tx.query(sql, args)
        if len(rows) < page:
            if carry or rows:
                yield carry + rows
            return
        after = rows[-1][tail:]
        last_customer = after[0]
        split = len(rows)
        while split and rows[split - 1][tail] == last_customer:
            split -= 1
        if split or (carry and carry[0][tail] != last_customer):
            yield carry + rows[:split]  # every customer before the page's last one is complete
            carry = rows[split:]
        else:
            carry += rows  # one customer spans pages
