"""The catalog tables: variants, inventory per location, price and stock changes, back-in-stock
subscriptions, and each customer's interest in a SKU (viewed, carted, purchased).

Writes are set-based: a batch of variants (or levels, or interest) is read in one statement and
written in one multi-row statement. Every SQL statement about these tables lives here (see
docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import attrs

from .._products import InventoryLevel, Variant
from ._base import Transaction, dumps
from ._quarantine import decode_rows
from ._rows import json_object, optional_text, text

__all__ = ["CHUNK", "CatalogChange", "Interest", "InterestUpdate", "Reorder", "category_purchases", "changes_due",
           "clear_carts", "customers_who_bought", "has_unhandled", "interested_in", "inventory_of", "known_skus",
           "mark_handled", "mark_notified", "mark_sent", "merged_into", "next_browse_due", "next_reorder_due",
           "notify_candidates", "purchase_history", "record_changes", "record_interest", "reorders_due",
           "set_reorder_due", "subscribe", "unsubscribe_purchased", "variants_by_sku", "variants_of_product",
           "viewed_not_carted", "write_inventory", "write_variants"]

_VARIANT_COLUMNS: Final = "sku, product_id, title, price, currency, url, image_url, category, brand, attributes"
#: Rows per statement: 11 parameters each stays below SQLite's 32766 and PostgreSQL's 65535.
CHUNK: Final = 1000


def _placeholders(width: int, rows: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return ", ".join([row] * rows)


def _in(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _price(value: Any) -> Decimal:
    try:
        return Decimal(text(value))
    except InvalidOperation:
        raise ValueError(f"price is not a decimal number: {value!r}") from None


def _variant(row: Sequence[Any]) -> Variant:
    return Variant(sku=text(row[0]), product_id=text(row[1]), title=text(row[2]), price=_price(row[3]),
                   currency=text(row[4]), url=optional_text(row[5]), image_url=optional_text(row[6]),
                   category=optional_text(row[7]), brand=optional_text(row[8]), attributes=json_object(row[9]))


# -- variants
def variants_by_sku(tx: Transaction, skus: Sequence[str]) -> dict[str, Variant]:
    """The stored variants among `skus` (a row that does not decode is quarantined and left out)."""
    found: dict[str, Variant] = {}
    for start in range(0, len(skus), CHUNK):
        chunk = skus[start:start + CHUNK]
        rows = tx.query(f"SELECT {_VARIANT_COLUMNS} FROM catalog_variants WHERE sku IN ({_in(chunk)})", chunk)
        found.update((v.sku, v) for v in decode_rows(tx, "catalog_variants", rows, _variant))
    return found


def variants_of_product(tx: Transaction, product_id: str) -> list[Variant]:
    rows = tx.query(f"SELECT {_VARIANT_COLUMNS} FROM catalog_variants WHERE product_id = ? ORDER BY sku",
                    (product_id,))
    return decode_rows(tx, "catalog_variants", rows, _variant)


def known_skus(tx: Transaction, skus: Sequence[str]) -> set[str]:
    """Those of `skus` the catalog has."""
    found: set[str] = set()
    for start in range(0, len(skus), CHUNK):
        chunk = skus[start:start + CHUNK]
        found.update(str(r[0]) for r in tx.query(f"SELECT sku FROM catalog_variants WHERE sku IN ({_in(chunk)})",
                                                 chunk))
    return found


def write_variants(tx: Transaction, variants: Sequence[Variant], now: float) -> None:
    """Insert or replace `variants` (distinct SKUs), one statement per `CHUNK`."""
    for start in range(0, len(variants), CHUNK):
        chunk = variants[start:start + CHUNK]
        params = [value for v in chunk for value in (
            v.sku, v.product_id, v.title, str(v.price), v.currency, v.url, v.image_url, v.category, v.brand,
            dumps(dict(v.attributes)), now)]
        tx.execute(
            f"INSERT INTO catalog_variants ({_VARIANT_COLUMNS}, updated_at) VALUES {_placeholders(11, len(chunk))} "
            "ON CONFLICT (sku) DO UPDATE SET product_id = excluded.product_id, title = excluded.title, "
            "price = excluded.price, currency = excluded.currency, url = excluded.url, "
            "image_url = excluded.image_url, category = excluded.category, brand = excluded.brand, "
            "attributes = excluded.attributes, updated_at = excluded.updated_at", params)


# -- inventory
def inventory_of(tx: Transaction, skus: Sequence[str]) -> dict[str, dict[str, int]]:
    """Units per location of each of `skus` that has any level stored."""
    found: dict[str, dict[str, int]] = {}
    for start in range(0, len(skus), CHUNK):
        chunk = skus[start:start + CHUNK]
        for sku, location, quantity in tx.query(
                f"SELECT sku, location, quantity FROM catalog_inventory WHERE sku IN ({_in(chunk)}) "
                "ORDER BY sku, location", chunk):
            found.setdefault(str(sku), {})[str(location)] = int(quantity)
    return found


def write_inventory(
    tx: Transaction, levels: Sequence[InventoryLevel], now: float,
) -> list[tuple[str, str, int | None, int]]:
    """Set the levels (one per SKU and location); returns those that changed as (sku, location, old, new)."""
    changed: list[tuple[str, str, int | None, int]] = []
    for start in range(0, len(levels), CHUNK):
        chunk = levels[start:start + CHUNK]
        stored = inventory_of(tx, list(dict.fromkeys(level.sku for level in chunk)))
        moved = []
        for level in chunk:
            old = stored.get(level.sku, {}).get(level.location)
            if old != level.quantity:
                moved.append(level)
                changed.append((level.sku, level.location, old, level.quantity))
        if moved:
            tx.execute(
                f"INSERT INTO catalog_inventory (sku, location, quantity, updated_at) VALUES "
                f"{_placeholders(4, len(moved))} ON CONFLICT (sku, location) DO UPDATE SET "
                "quantity = excluded.quantity, updated_at = excluded.updated_at",
                [value for lv in moved for value in (lv.sku, lv.location, lv.quantity, now)])
    return changed


# -- changes
@attrs.frozen
class CatalogChange:
    """A price or stock change not yet handled by the catalog triggers."""

    seq: int
    sku: str
    kind: str
    location: str | None
    old: str | None
    new: str
    changed_at: float


def record_changes(tx: Transaction, rows: Sequence[tuple[str, str, str | None, str | None, str, str, float]]) -> None:
    """Append (sku, kind, location, old, new, source, changed_at) rows, one statement per `CHUNK`."""
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        tx.execute("INSERT INTO catalog_changes (sku, kind, location, old_value, new_value, source, changed_at) "
                   f"VALUES {_placeholders(7, len(chunk))}", [value for row in chunk for value in row])


def changes_due(tx: Transaction, limit: int) -> list[CatalogChange]:
    """The oldest unhandled changes, locked against other workers on PostgreSQL."""
    rows = tx.query("SELECT seq, sku, kind, location, old_value, new_value, changed_at FROM catalog_changes "
                    f"WHERE handled = 0 ORDER BY seq LIMIT ?{tx.dialect.skip_locked}", (limit,))
    return [CatalogChange(int(r[0]), str(r[1]), str(r[2]), optional_text(r[3]), optional_text(r[4]), str(r[5]),
                          float(r[6])) for r in rows]


def mark_handled(tx: Transaction, seqs: Sequence[int]) -> None:
    for start in range(0, len(seqs), CHUNK):
        chunk = seqs[start:start + CHUNK]
        tx.execute(f"UPDATE catalog_changes SET handled = 1 WHERE seq IN ({_in(chunk)})", chunk)


def has_unhandled(tx: Transaction) -> bool:
    return tx.one("SELECT 1 FROM catalog_changes WHERE handled = 0 LIMIT 1") is not None


# -- back-in-stock subscriptions
def subscribe(tx: Transaction, rows: Sequence[tuple[str, str, str, str]], now: float, *, rearm: bool) -> None:
    """(customer_id, sku, location or '', source) wait for the SKU; with `rearm`, one already notified waits again."""
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        conflict = ("DO UPDATE SET notified_at = NULL, created_at = excluded.created_at, source = excluded.source "
                    "WHERE catalog_subscriptions.notified_at IS NOT NULL") if rearm else "DO NOTHING"
        tx.execute("INSERT INTO catalog_subscriptions (customer_id, sku, location, source, created_at) VALUES "
                   f"{_placeholders(5, len(chunk))} ON CONFLICT (customer_id, sku, location) {conflict}",
                   [value for row in chunk for value in (*row, now)])


def notify_candidates(tx: Transaction, sku: str, location: str, limit: int) -> list[tuple[str, str, str]]:
    """Up to `limit` customers waiting for `sku` at `location` (or anywhere), first come first served:
    (customer_id, subscribed location, source)."""
    rows = tx.query("SELECT customer_id, location, source FROM catalog_subscriptions WHERE sku = ? "
                    "AND notified_at IS NULL AND location IN ('', ?) ORDER BY created_at, customer_id LIMIT ?",
                    (sku, location, limit))
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def mark_notified(tx: Transaction, sku: str, keys: Sequence[tuple[str, str]], now: float) -> None:
    """The (customer_id, location) subscriptions to `sku` were included in a restock's quota."""
    for location in sorted({where for _, where in keys}):
        customers = [c for c, where in keys if where == location]
        for start in range(0, len(customers), CHUNK):
            chunk = customers[start:start + CHUNK]
            tx.execute(f"UPDATE catalog_subscriptions SET notified_at = ? WHERE sku = ? AND location = ? "
                       f"AND customer_id IN ({_in(chunk)})", (now, sku, location, *chunk))


def unsubscribe_purchased(tx: Transaction, pairs: Sequence[tuple[str, str]]) -> None:
    """A customer who bought the SKU waits for it no longer."""
    for customer_id, sku in pairs:
        tx.execute("DELETE FROM catalog_subscriptions WHERE customer_id = ? AND sku = ?", (customer_id, sku))


# -- interest
@attrs.frozen
class InterestUpdate:
    """What one batch of touchpoints says of a customer and a SKU (latest times, purchases counted)."""

    customer_id: str
    sku: str
    viewed_at: float | None = None
    carted_at: float | None = None
    purchased_at: float | None = None
    first_purchased_at: float | None = None
    purchases: int = 0


def _latest(column: str) -> str:
    return (f"{column} = CASE WHEN excluded.{column} IS NOT NULL AND (catalog_interest.{column} IS NULL "
            f"OR excluded.{column} > catalog_interest.{column}) THEN excluded.{column} "
            f"ELSE catalog_interest.{column} END")


def record_interest(tx: Transaction, updates: Sequence[InterestUpdate]) -> None:
    """Fold a batch's views, carts and purchases (one update per customer and SKU) into the interest rows."""
    for start in range(0, len(updates), CHUNK):
        chunk = updates[start:start + CHUNK]
        tx.execute(
            "INSERT INTO catalog_interest (customer_id, sku, viewed_at, carted_at, purchased_at, first_purchased_at, "
            f"purchases) VALUES {_placeholders(7, len(chunk))} ON CONFLICT (customer_id, sku) DO UPDATE SET "
            f"{_latest('viewed_at')}, {_latest('carted_at')}, {_latest('purchased_at')}, "
            "first_purchased_at = COALESCE(catalog_interest.first_purchased_at, excluded.first_purchased_at), "
            "purchases = catalog_interest.purchases + excluded.purchases",
            [value for u in chunk for value in (u.customer_id, u.sku, u.viewed_at, u.carted_at, u.purchased_at,
                                                u.first_purchased_at, u.purchases)])


def clear_carts(tx: Transaction, pairs: Sequence[tuple[str, str]]) -> None:
    """A SKU removed from the cart is carted no more."""
    for customer_id, sku in pairs:
        tx.execute("UPDATE catalog_interest SET carted_at = NULL WHERE customer_id = ? AND sku = ?",
                   (customer_id, sku))


@attrs.frozen
class Interest:
    """A customer interested in a SKU: when they last viewed and carted it."""

    customer_id: str
    sku: str
    viewed_at: float | None
    carted_at: float | None


def interested_in(
    tx: Transaction, sku: str, *, since: float, viewed: bool, carted: bool, sent_column: str, limit: int,
    after: str = "",
) -> list[Interest]:
    """Customers who viewed (`viewed`) or carted (`carted`) `sku` since `since`, have not bought it since,
    and were not sent this trigger (`sent_column`) since then; a page of `limit` after customer `after`."""
    assert sent_column in ("price_sent_at", "low_stock_sent_at")
    recent = []
    if viewed:
        recent.append("viewed_at >= ?")
    if carted:
        recent.append("carted_at >= ?")
    last = "(CASE WHEN carted_at IS NULL OR (viewed_at IS NOT NULL AND viewed_at > carted_at) THEN viewed_at " \
           "ELSE carted_at END)" if viewed else "carted_at"
    rows = tx.query(
        f"SELECT customer_id, sku, viewed_at, carted_at FROM catalog_interest WHERE sku = ? AND customer_id > ? "
        f"AND ({' OR '.join(recent)}) AND (purchased_at IS NULL OR purchased_at < {last}) "
        f"AND ({sent_column} IS NULL OR {sent_column} < {last}) ORDER BY customer_id LIMIT ?",
        (sku, after, *([since] * len(recent)), limit))
    return [Interest(str(r[0]), str(r[1]), r[2], r[3]) for r in rows]


def mark_sent(tx: Transaction, column: str, pairs: Sequence[tuple[str, str]], now: float) -> None:
    """A trigger (`column`: price_sent_at, low_stock_sent_at, browse_sent_at) fired for these (customer, SKU)."""
    assert column in ("price_sent_at", "low_stock_sent_at", "browse_sent_at")
    for sku in sorted({sku for _, sku in pairs}):
        customers = [c for c, s in pairs if s == sku]
        for start in range(0, len(customers), CHUNK):
            chunk = customers[start:start + CHUNK]
            tx.execute(f"UPDATE catalog_interest SET {column} = ? WHERE sku = ? AND customer_id IN ({_in(chunk)})",
                       (now, sku, *chunk))


#: A view not followed by a cart or purchase of the SKU, not answered yet, and the customer's last
#: view (the browsing session is over once its last view is older than the window).
_UNANSWERED: Final = (
    "(carted_at IS NULL OR carted_at < viewed_at) AND (purchased_at IS NULL OR purchased_at < viewed_at) "
    "AND (browse_sent_at IS NULL OR browse_sent_at < viewed_at) AND NOT EXISTS (SELECT 1 FROM catalog_interest "
    "AS later WHERE later.customer_id = i.customer_id AND later.viewed_at > ?)")


def viewed_not_carted(tx: Transaction, *, viewed_from: float, viewed_until: float, limit: int) -> list[Interest]:
    """Views in [viewed_from, viewed_until] not followed by a cart or a purchase of the SKU, not yet
    answered by a browse-abandonment trigger; oldest view first."""
    rows = tx.query(
        "SELECT customer_id, sku, viewed_at, carted_at FROM catalog_interest AS i WHERE viewed_at >= ? "
        f"AND viewed_at <= ? AND {_UNANSWERED} ORDER BY viewed_at, customer_id LIMIT ?",
        (viewed_from, viewed_until, viewed_until, limit))
    return [Interest(str(r[0]), str(r[1]), r[2], r[3]) for r in rows]


def next_browse_due(tx: Transaction, *, viewed_from: float) -> float | None:
    """The earliest last view of a customer since `viewed_from` that no browse-abandonment trigger answered."""
    value = tx.scalar(
        "SELECT MAX(viewed_at) FROM catalog_interest WHERE viewed_at >= ? GROUP BY customer_id HAVING SUM(CASE WHEN "
        "(carted_at IS NULL OR carted_at < viewed_at) AND (purchased_at IS NULL OR purchased_at < viewed_at) AND "
        "(browse_sent_at IS NULL OR browse_sent_at < viewed_at) THEN 1 ELSE 0 END) > 0 ORDER BY 1 LIMIT 1",
        (viewed_from,))
    return None if value is None else float(value)


def customers_who_bought(tx: Transaction, customer_ids: Sequence[str], since: float) -> set[str]:
    """Of `customer_ids`, those with any purchase since `since` (browse abandonment leaves buyers alone)."""
    found: set[str] = set()
    for start in range(0, len(customer_ids), CHUNK):
        chunk = customer_ids[start:start + CHUNK]
        found.update(str(r[0]) for r in tx.query(
            f"SELECT DISTINCT customer_id FROM catalog_interest WHERE customer_id IN ({_in(chunk)}) "
            "AND purchased_at >= ?", (*chunk, since)))
    return found


# -- replenishment
@attrs.frozen
class Reorder:
    """A customer's purchase history of one SKU: how often, first and last."""

    customer_id: str
    sku: str
    purchases: int
    first_purchased_at: float | None
    purchased_at: float | None


def purchase_history(tx: Transaction, pairs: Sequence[tuple[str, str]]) -> list[Reorder]:
    found = []
    for customer_id, sku in pairs:
        row = tx.one("SELECT purchases, first_purchased_at, purchased_at FROM catalog_interest "
                     "WHERE customer_id = ? AND sku = ?", (customer_id, sku))
        if row is not None:
            found.append(Reorder(customer_id, sku, int(row[0]), row[1], row[2]))
    return found


def category_purchases(tx: Transaction, customer_id: str, category: str) -> list[Reorder]:
    """The customer's purchase history of every SKU in `category`."""
    rows = tx.query("SELECT i.sku, i.purchases, i.first_purchased_at, i.purchased_at FROM catalog_interest AS i "
                    "JOIN catalog_variants AS v ON v.sku = i.sku WHERE i.customer_id = ? AND v.category = ? "
                    "AND i.purchases > 0", (customer_id, category))
    return [Reorder(customer_id, str(r[0]), int(r[1]), r[2], r[3]) for r in rows]


def set_reorder_due(tx: Transaction, rows: Iterable[tuple[str, str, float | None]]) -> None:
    """(customer_id, sku, due or None): when the customer is expected to buy the SKU again."""
    for customer_id, sku, due in rows:
        tx.execute("UPDATE catalog_interest SET reorder_due_at = ? WHERE customer_id = ? AND sku = ?",
                   (due, customer_id, sku))


def reorders_due(tx: Transaction, until: float, limit: int) -> list[tuple[str, str, float, float]]:
    """(customer_id, sku, due, last purchase) whose expected reorder is at or before `until`."""
    rows = tx.query("SELECT customer_id, sku, reorder_due_at, purchased_at FROM catalog_interest "
                    "WHERE reorder_due_at IS NOT NULL AND reorder_due_at <= ? ORDER BY reorder_due_at, customer_id "
                    "LIMIT ?", (until, limit))
    return [(str(r[0]), str(r[1]), float(r[2]), float(r[3])) for r in rows]


def next_reorder_due(tx: Transaction) -> float | None:
    value = tx.scalar("SELECT MIN(reorder_due_at) FROM catalog_interest WHERE reorder_due_at IS NOT NULL")
    return None if value is None else float(value)


def merged_into(tx: Transaction, customer_ids: Sequence[str]) -> Mapping[str, str]:
    """Where each of `customer_ids` that merged into another profile lives now (one step per call)."""
    found: dict[str, str] = {}
    for start in range(0, len(customer_ids), CHUNK):
        chunk = customer_ids[start:start + CHUNK]
        found.update((str(r[0]), str(r[1])) for r in tx.query(
            f"SELECT id, merged_into FROM customers WHERE id IN ({_in(chunk)}) AND merged_into IS NOT NULL", chunk))
    return found
