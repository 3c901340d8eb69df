"""`omni.catalog`: the products and variants a shop sells and their stock per location.

Bulk upserts stream: items are checked one by one and written a batch at a time (one read and one
multi-row write per batch), so a million rows cost one batch of memory. A change of price or stock
is appended to `catalog_changes` in the same transaction, which is what the catalog triggers
(back in stock, price drop, low stock in cart) react to, durably.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

from .._clock import Clock
from .._errors import BatchItemError, BatchValidationError, ValidationError
from .._identity import IdentityResolver, Who
from .._products import (
    CatalogUpsert,
    InventoryLevel,
    Product,
    Variant,
    check_location,
    check_quantity,
    check_sku,
    inventory_from,
    variant_from,
)
from ..store import SQLStore, Transaction
from ..store import _catalog as db

if TYPE_CHECKING:
    from ._triggers import CatalogWatcher, Rule

__all__ = ["AsyncCatalog", "Catalog", "CatalogValidationError"]

OnError = Literal["raise", "collect"]
#: Variants per transaction of `upsert_many`.
BATCH: Final = 1000
#: Refused rows kept with their reason (all are counted): a file of garbage does not fill memory.
MAX_ERRORS: Final = 1000


class CatalogValidationError(BatchValidationError):
    """Some catalog rows were refused (`errors`: index, field, why); the others were stored (`result`)."""

    def __init__(self, result: CatalogUpsert) -> None:
        super().__init__(result.errors, recorded=result.inserted + result.updated)
        self.result = result


@attrs.define
class _Batch:
    variants: dict[str, Variant] = attrs.field(factory=dict)
    levels: dict[tuple[str, str], InventoryLevel] = attrs.field(factory=dict)


class Catalog:
    """Variants and inventory in the store; `watch` turns on the catalog triggers."""

    def __init__(self, store: SQLStore, clock: Clock, identity: IdentityResolver, watcher: CatalogWatcher) -> None:
        self.store = store
        self.clock = clock
        self.identity = identity
        self.watcher = watcher

    # -- bulk writes
    def upsert_many(
        self, items: Iterable[Variant | Product | Mapping[str, Any]], *, on_error: OnError = "raise",
        source: str = "api", batch_size: int = BATCH,
    ) -> CatalogUpsert:
        """Insert or update variants (a `Product` stands for its variants; a mapping may carry `inventory`:
        a count of online stock or {location: count}). Streams `items` a batch at a time.

        Refused rows are reported with their index and field: `CatalogValidationError` once the valid
        rows are stored, or in the result's `errors` with `on_error="collect"`."""
        if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
            raise ValidationError("expected an iterable of variants, products or mappings", field="items",
                                  value=type(items).__name__)
        if on_error not in ("raise", "collect"):
            raise ValidationError("expected 'raise' or 'collect'", field="on_error", value=on_error)
        if not isinstance(batch_size, int) or not 1 <= batch_size <= 100_000:
            raise ValidationError("expected 1 to 100000", field="batch_size", value=batch_size)
        result = CatalogUpsert()
        errors: list[BatchItemError] = []
        refused = 0
        batch = _Batch()
        for index, item in enumerate(items):
            try:
                self._add(batch, item)
            except ValidationError as exc:
                refused += 1
                if len(errors) < MAX_ERRORS:
                    field = f"items[{index}].{exc.field}" if exc.field else f"items[{index}]"
                    errors.append(BatchItemError(index, field, str(exc).removeprefix(f"{exc.field}: ")))
            if len(batch.variants) >= batch_size or len(batch.levels) >= batch_size:
                result += self._flush(batch, source)
                batch = _Batch()
        if batch.variants or batch.levels:
            result += self._flush(batch, source)
        result = attrs.evolve(result, errors=tuple(errors), refused=refused)
        if errors and on_error == "raise":
            raise CatalogValidationError(result)
        return result

    @staticmethod
    def _add(batch: _Batch, item: Any) -> None:
        """Check one item and add its variants and levels to the batch (a later row for a SKU wins)."""
        if isinstance(item, Product):
            for variant in item.expanded():
                batch.variants[variant.sku] = variant_from(variant)
            return
        inventory = item.get("inventory") if isinstance(item, Mapping) else None
        variant = variant_from(item)
        levels = inventory_from(inventory, variant.sku) if inventory is not None else []
        batch.variants.pop(variant.sku, None)  # re-inserted last, so the write order is the input's
        batch.variants[variant.sku] = variant
        for level in levels:
            batch.levels[(level.sku, level.location)] = level

    def _flush(self, batch: _Batch, source: str) -> CatalogUpsert:
        now = self.clock.timestamp()
        with self.store.transaction() as tx:
            result = self.write_variants(tx, list(batch.variants.values()), source=source, now=now)
            changed = self.write_levels(tx, list(batch.levels.values()), source=source, now=now)
        return attrs.evolve(result, inventory=changed)

    def write_variants(
        self, tx: Transaction, variants: Sequence[Variant], *, source: str, now: float, merge: bool = False,
    ) -> CatalogUpsert:
        """Store distinct-SKU variants in `tx`, recording price changes; with `merge`, a field the update
        leaves empty (a webhook that does not carry the image) keeps its stored value."""
        stored = db.variants_by_sku(tx, [v.sku for v in variants])
        writes: list[Variant] = []
        changes: list[tuple[str, str, str | None, str | None, str, str, float]] = []
        inserted = updated = unchanged = 0
        for variant in variants:
            old = stored.get(variant.sku)
            if old is not None and merge:
                variant = _merged(old, variant)
            if old is None:
                inserted += 1
            elif old == variant:
                unchanged += 1
                continue
            else:
                updated += 1
                if old.price != variant.price or old.currency != variant.currency:
                    changes.append((variant.sku, "price", None, str(old.price), str(variant.price), source, now))
            writes.append(variant)
        db.write_variants(tx, writes, now)
        db.record_changes(tx, changes)
        return CatalogUpsert(inserted=inserted, updated=updated, unchanged=unchanged)

    def write_levels(self, tx: Transaction, levels: Sequence[InventoryLevel], *, source: str, now: float) -> int:
        """Store distinct (SKU, location) levels in `tx`, recording each change; returns how many changed."""
        moved = db.write_inventory(tx, levels, now)
        db.record_changes(tx, [(sku, "stock", location, None if old is None else str(old), str(new), source, now)
                               for sku, location, old, new in moved])
        return len(moved)

    # -- inventory
    def set_inventory(self, sku: str, location: str, quantity: int) -> InventoryLevel:
        """Units of `sku` available at `location` ("online" or a store's location id) from now on."""
        level = InventoryLevel(sku=check_sku(sku), location=check_location(location),
                               quantity=check_quantity(quantity))
        self.set_inventory_many([level])
        return level

    def set_inventory_many(
        self, levels: Iterable[InventoryLevel | tuple[str, str, int] | Mapping[str, Any]], *, source: str = "api",
    ) -> int:
        """Set many levels (`InventoryLevel`s, (sku, location, quantity) tuples or mappings) in one
        transaction per batch; returns how many changed. A bad level refuses the whole call."""
        checked: dict[tuple[str, str], InventoryLevel] = {}
        for index, level in enumerate(levels):
            checked_level = _level(level, f"levels[{index}]")
            checked[(checked_level.sku, checked_level.location)] = checked_level
        rows = list(checked.values())
        changed = 0
        now = self.clock.timestamp()
        for start in range(0, len(rows), BATCH):
            with self.store.transaction() as tx:
                changed += self.write_levels(tx, rows[start:start + BATCH], source=source, now=now)
        return changed

    def inventory(self, sku: str) -> Mapping[str, int]:
        """Units per location of `sku` ({} when no level was ever set)."""
        sku = check_sku(sku)
        with self.store.transaction(immediate=False) as tx:
            return db.inventory_of(tx, [sku]).get(sku, {})

    def available(self, sku: str, location: str | None = None) -> bool:
        """Whether any unit of `sku` is available at `location`, or anywhere when None."""
        levels = self.inventory(sku)
        if location is not None:
            return levels.get(check_location(location), 0) > 0
        return any(quantity > 0 for quantity in levels.values())

    # -- reads
    def variant(self, sku: str) -> Variant | None:
        sku = check_sku(sku)
        with self.store.transaction(immediate=False) as tx:
            return db.variants_by_sku(tx, [sku]).get(sku)

    def variants(self, skus: Iterable[str]) -> dict[str, Variant]:
        """The known variants among `skus`, by SKU (unknown ones are left out)."""
        wanted = list(dict.fromkeys(check_sku(s, f"skus[{i}]") for i, s in enumerate(skus)))
        with self.store.transaction(immediate=False) as tx:
            found = db.variants_by_sku(tx, wanted)
        return {sku: found[sku] for sku in wanted if sku in found}

    def product(self, product_id: str) -> Product | None:
        """The product and its variants; its title, url, image, category and brand are its first variant's."""
        if not isinstance(product_id, str) or not product_id:
            raise ValidationError("expected a product id", field="product_id", value=product_id)
        with self.store.transaction(immediate=False) as tx:
            variants = db.variants_of_product(tx, product_id)
        if not variants:
            return None
        first = variants[0]
        return Product(product_id=product_id, title=first.title, variants=tuple(variants), url=first.url,
                       image_url=first.image_url, category=first.category, brand=first.brand)

    # -- triggers
    def subscribe(self, customer: Who, sku: str, location: str | None = None) -> None:
        """The customer wants to hear when `sku` is back in stock (at `location`, or anywhere)."""
        sku = check_sku(sku)
        where = "" if location is None else check_location(location)
        now = self.clock.timestamp()
        with self.store.transaction() as tx:
            cid = self.identity.resolve_who(tx, customer, now, "customer")
            db.subscribe(tx, [(cid, sku, where, "subscribed")], now, rearm=True)

    def watch(self, *rules: Rule) -> None:
        """Turn on catalog triggers (`BackInStock`, `PriceDrop`, `BrowseAbandonment`, `LowStockInCart`,
        `Replenishment`); each records its event for journeys to use as their trigger. A rule of the same
        kind replaces the one before."""
        self.watcher.watch(*rules)


def _merged(old: Variant, new: Variant) -> Variant:
    return attrs.evolve(new, url=new.url or old.url, image_url=new.image_url or old.image_url,
                        category=new.category or old.category, brand=new.brand or old.brand,
                        attributes={**old.attributes, **new.attributes})


def _level(level: Any, field: str) -> InventoryLevel:
    sku: Any
    location: Any
    quantity: Any
    if isinstance(level, InventoryLevel):
        sku, location, quantity = level.sku, level.location, level.quantity
    elif isinstance(level, tuple) and len(level) == 3:
        sku, location, quantity = level
    elif isinstance(level, Mapping):
        sku, location, quantity = level.get("sku"), level.get("location"), level.get("quantity")
    else:
        raise ValidationError("expected an InventoryLevel, (sku, location, quantity) or a mapping", field=field)
    return InventoryLevel(sku=check_sku(sku, f"{field}.sku"), location=check_location(location, f"{field}.location"),
                          quantity=check_quantity(quantity, f"{field}.quantity"))


class AsyncCatalog:
    """`AsyncOmni.catalog`: the same methods as `Catalog`, awaited, run in a thread."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def upsert_many(
        self, items: Iterable[Variant | Product | Mapping[str, Any]], *, on_error: OnError = "raise",
        source: str = "api", batch_size: int = BATCH,
    ) -> CatalogUpsert:
        return await asyncio.to_thread(self._catalog.upsert_many, items, on_error=on_error, source=source,
                                       batch_size=batch_size)

    async def variant(self, sku: str) -> Variant | None:
        return await asyncio.to_thread(self._catalog.variant, sku)

    async def variants(self, skus: Iterable[str]) -> dict[str, Variant]:
        return await asyncio.to_thread(self._catalog.variants, list(skus))

    async def product(self, product_id: str) -> Product | None:
        return await asyncio.to_thread(self._catalog.product, product_id)

    async def set_inventory(self, sku: str, location: str, quantity: int) -> InventoryLevel:
        return await asyncio.to_thread(self._catalog.set_inventory, sku, location, quantity)

    async def set_inventory_many(
        self, levels: Iterable[InventoryLevel | tuple[str, str, int] | Mapping[str, Any]], *, source: str = "api",
    ) -> int:
        return await asyncio.to_thread(self._catalog.set_inventory_many, list(levels), source=source)

    async def inventory(self, sku: str) -> Mapping[str, int]:
        return await asyncio.to_thread(self._catalog.inventory, sku)

    async def available(self, sku: str, location: str | None = None) -> bool:
        return await asyncio.to_thread(self._catalog.available, sku, location)

    async def subscribe(self, customer: Who, sku: str, location: str | None = None) -> None:
        await asyncio.to_thread(self._catalog.subscribe, customer, sku, location)

    def watch(self, *rules: Rule) -> None:
        self._catalog.watch(*rules)
