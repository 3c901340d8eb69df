"""Customers' touchpoints streamed from the store in pages, whole customers at a time.

Funnels and attribution walk each customer's timeline in order. Reading pages keyed on
(customer_id, occurred_at, seq) keeps memory to one page plus one customer's touchpoints, and
each page is its own short read transaction, so writers are never held up for long.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..store import SQLStore, decode_rows, timestamp

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
    customers, ordered by customer and time (recording order breaks ties).

    Pages are keyed on the customer id alone (a range of the (customer_id, occurred_at) index); the
    page's last customer, maybe cut short, is read again at the start of the next page.
    """
    select = f"SELECT {', '.join(columns)}, customer_id, occurred_at, seq FROM touchpoints WHERE ({where})"
    order = " ORDER BY customer_id, occurred_at, seq"
    tail = len(columns)
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
                last = rows[-1][tail]
                while split and rows[split - 1][tail] == last:
                    split -= 1
                if not split:  # one customer fills the page: read all of theirs
                    rows = tx.query(f"{select} AND customer_id = ?{order}", [*params, last])
                    split = len(rows)
            readable = decode_rows(tx, "touchpoints", rows[:split], _timed, key=_seq)
        if readable:
            yield readable
        if complete:
            return
        after = rows[split - 1][tail]


def _timed(row: Sequence[Any]) -> Row:
    """A row whose time can be read (analytics turns it into a datetime)."""
    timestamp(row[-2])
    return tuple(row)  # the row itself: tuple() of a tuple copies nothing


def _seq(row: Sequence[Any]) -> tuple[Any, ...]:
    return (row[-1],)
