"""Catalog triggers: back in stock, price drop, browse abandonment, low stock in cart, replenishment.

The `CatalogWatcher` is a worker of the core. It reads what customers do as their touchpoints are
recorded (in the same transaction: views, carts, purchases on any channel, POS included) into
`catalog_interest`, and on each tick handles the queued price and stock changes and the due
time-based triggers. Each trigger fires by recording a touchpoint (`Events.BACK_IN_STOCK`, …) for
the customer through the recorder, so a journey starts on it like on any event
(`@journey(..., trigger=Events.BACK_IN_STOCK, exit_on=[Events.ORDER_COMPLETED])`) and its exits on
purchase work on every channel. Touchpoint ids derive from what fired them: a tick that is redone
records nothing twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any, ClassVar, Final

import attrs

from .._clock import Clock, to_datetime
from .._errors import ConfigError, ValidationError
from .._logging import get_logger
from .._products import Variant
from .._recorder import Recorder
from .._touchpoints import Events
from ..store import SQLStore, Transaction, dumps, loads
from ..store import _catalog as db

__all__ = ["RULE_SECTIONS", "BackInStock", "BrowseAbandonment", "CatalogWatcher", "LowStockInCart", "PriceDrop",
           "Replenishment", "Rule", "rules_from_config"]

log = get_logger("omnisdk.catalog")

_PAGE: Final = 500
#: Reorder intervals shorter than this (two orders on one day) predict nothing.
MIN_REORDER_INTERVAL: Final = 86400.0
_VIEWED, _ADDED, _REMOVED = Events.PRODUCT_VIEWED, Events.PRODUCT_ADDED, Events.PRODUCT_REMOVED
_PURCHASED = Events.ORDER_COMPLETED
_WATCHED = frozenset({_VIEWED, _ADDED, _REMOVED, _PURCHASED})


def _positive_duration(_instance: Any, attribute: attrs.Attribute[Any], value: timedelta) -> None:
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise ValidationError("expected a timedelta of 0 or more", field=attribute.name, value=value)


def _optional_decimal(value: Decimal | float | str | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


@attrs.frozen(kw_only=True)
class BackInStock:
    """Restocked SKUs notify their waiting customers (subscribed, or viewed it sold out), first come
    first served, `quota_factor` customers per unit restocked: 5 units notify 5 (of 10 000) at factor
    1; the others wait for the next restock."""

    event: ClassVar[str] = Events.BACK_IN_STOCK
    quota_factor: float = 1.0
    #: A view of a SKU sold out everywhere subscribes the viewer.
    viewed: bool = True

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.quota_factor, int | float) or not 0 < self.quota_factor <= 1000:
            raise ValidationError("expected a number above 0 (customers per unit restocked)", field="quota_factor",
                                  value=self.quota_factor)


@attrs.frozen(kw_only=True)
class PriceDrop:
    """A price cut reaches customers who viewed or carted the SKU within `lookback` and did not buy it
    since, once per view or cart; the cut must reach every threshold given (percent and/or amount)."""

    event: ClassVar[str] = Events.PRICE_DROPPED
    min_percent: float | None = None
    min_amount: Decimal | None = attrs.field(default=None, converter=_optional_decimal)
    lookback: timedelta = attrs.field(default=timedelta(days=30), validator=_positive_duration)
    viewed: bool = True
    carted: bool = True

    def qualifies(self, old: Decimal, new: Decimal) -> bool:
        cut = old - new
        if cut <= 0:
            return False
        if self.min_percent is not None and (old == 0 or cut / old * 100 < Decimal(str(self.min_percent))):
            return False
        return self.min_amount is None or cut >= self.min_amount


@attrs.frozen(kw_only=True)
class BrowseAbandonment:
    """Customers who viewed SKUs and neither carted nor bought them within `window` (and bought nothing
    since) get one event listing them; views older than `window + max_age` are left alone."""

    event: ClassVar[str] = Events.BROWSE_ABANDONED
    window: timedelta = attrs.field(default=timedelta(hours=1), validator=_positive_duration)
    max_age: timedelta = attrs.field(default=timedelta(days=1), validator=_positive_duration)


@attrs.frozen(kw_only=True)
class LowStockInCart:
    """Stock of a carted (not bought) SKU falling under `threshold` at `location` ("online" by
    default; None: all locations together) reaches the customers who carted it within `cart_window`."""

    event: ClassVar[str] = Events.LOW_STOCK_IN_CART
    threshold: int = attrs.field(default=5)
    location: str | None = "online"
    cart_window: timedelta = attrs.field(default=timedelta(days=7), validator=_positive_duration)

    @threshold.validator
    def _whole(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValidationError("expected a whole number of units, at least 1", field="threshold", value=value)


@attrs.frozen(kw_only=True)
class Replenishment:
    """A customer is due to buy a SKU again `lead` before their own rhythm says: the mean time between
    their purchases of the SKU, or of its category when they bought the SKU once."""

    event: ClassVar[str] = Events.REPLENISHMENT_DUE
    lead: timedelta = attrs.field(default=timedelta(0), validator=_positive_duration)


Rule = BackInStock | PriceDrop | BrowseAbandonment | LowStockInCart | Replenishment
_DEFAULTS: Final[Mapping[str, type[Any]]] = {
    Events.BACK_IN_STOCK: BackInStock, Events.PRICE_DROPPED: PriceDrop, Events.BROWSE_ABANDONED: BrowseAbandonment,
    Events.LOW_STOCK_IN_CART: LowStockInCart, Events.REPLENISHMENT_DUE: Replenishment,
}


#: `[catalog.<name>]` sections and the rules they configure.
RULE_SECTIONS: Final[Mapping[str, type[Any]]] = {
    "back_in_stock": BackInStock, "price_drop": PriceDrop, "browse_abandonment": BrowseAbandonment,
    "low_stock_in_cart": LowStockInCart, "replenishment": Replenishment,
}


def rules_from_config(section: Mapping[str, Any] | None) -> list[Rule]:
    """The rules of the `[catalog]` config section, e.g. `[catalog.back_in_stock] quota_factor = 2` or
    `[catalog.browse_abandonment] window = { hours = 2 }` (a duration is a table of timedelta keywords)."""
    rules: list[Rule] = []
    for name, options in (section or {}).items():
        kind = RULE_SECTIONS.get(name)
        where = f"catalog.{name}"
        if kind is None:
            raise ConfigError(f"unknown catalog trigger; expected one of {', '.join(RULE_SECTIONS)}", field=where)
        if not isinstance(options, Mapping):
            raise ConfigError("expected a table of the trigger's settings", field=where)
        try:
            rules.append(kind(**{key: timedelta(**value) if isinstance(value, Mapping) else value
                                 for key, value in options.items()}))
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise ConfigError(str(exc), field=where) from None
    return rules


def _sku(properties: Mapping[str, Any]) -> str | None:
    for key in ("sku", "product_id"):
        value = properties.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _purchased(properties: Mapping[str, Any]) -> list[str]:
    """The SKUs of an order: its `products` (Segment's spec), or the order's own sku/product_id."""
    products = properties.get("products")
    skus = [s for p in products if isinstance(p, Mapping) and (s := _sku(p))] if isinstance(products, list) else []
    own = _sku(properties)
    return skus + ([own] if own and own not in skus else [])


def _card(variant: Variant | None, sku: str) -> dict[str, Any]:
    """What a message needs to show the SKU."""
    if variant is None:
        return {"sku": sku}
    return {"sku": sku, "product_id": variant.product_id, "title": variant.title, "price": float(variant.price),
            "currency": variant.currency, "url": variant.url, "image_url": variant.image_url,
            "category": variant.category, "brand": variant.brand}


class CatalogWatcher:
    """A `Worker`: turns catalog changes and customers' interest into trigger events."""

    def __init__(self, store: SQLStore, clock: Clock, recorder: Recorder) -> None:
        self.store = store
        self.clock = clock
        self.recorder = recorder
        self.rules: dict[str, Any] = {}

    def watch(self, *rules: Rule) -> None:
        for rule in rules:
            if not isinstance(rule, tuple(_DEFAULTS.values())):
                raise ValidationError("expected BackInStock, PriceDrop, BrowseAbandonment, LowStockInCart or "
                                      "Replenishment", field="rules", value=type(rule).__name__)
            self.rules[rule.event] = rule

    def watch_events(self, events: Sequence[str]) -> None:
        """A journey triggered by a catalog event turns its trigger on with the defaults, unless watched already."""
        for event in events:
            if event in _DEFAULTS and event not in self.rules:
                self.rules[event] = _DEFAULTS[event]()

    # -- what customers do, as it is recorded
    def observe(self, tx: Transaction, rows: Sequence[Sequence[Any]]) -> None:
        """Fold new touchpoint rows (id, customer_id, channel, name, properties JSON, occurred_at, …) into
        the interest table, in the transaction that stores them."""
        seen: dict[tuple[str, str], dict[str, Any]] = {}
        removed: list[tuple[str, str]] = []
        for row in rows:
            if row[3] not in _WATCHED:
                continue
            try:
                properties = loads(row[4])
            except ValueError:
                continue
            if not isinstance(properties, Mapping):
                continue
            customer_id, name, at = str(row[1]), row[3], float(row[5])
            skus = _purchased(properties) if name == _PURCHASED else [s for s in [_sku(properties)] if s]
            for sku in skus:
                entry = seen.setdefault((customer_id, sku), {})
                if name == _REMOVED:
                    removed.append((customer_id, sku))
                    entry.pop("carted_at", None)
                    continue
                column = {_VIEWED: "viewed_at", _ADDED: "carted_at"}.get(name)
                if column is not None:
                    entry[column] = max(at, entry.get(column, at))
                else:
                    entry["purchases"] = entry.get("purchases", 0) + 1
                    entry["purchased_at"] = max(at, entry.get("purchased_at", at))
                    entry["first_purchased_at"] = min(at, entry.get("first_purchased_at", at))
        if not seen:
            return
        known = db.known_skus(tx, sorted({sku for _, sku in seen}))
        updates = [db.InterestUpdate(cid, sku, **entry) for (cid, sku), entry in seen.items()
                   if sku in known and entry]
        db.clear_carts(tx, [pair for pair in removed if pair[1] in known])
        db.record_interest(tx, updates)
        bought = [(u.customer_id, u.sku) for u in updates if u.purchases]
        if bought:
            db.unsubscribe_purchased(tx, bought)
            self._expect_reorders(tx, bought)
        rule = self.rules.get(Events.BACK_IN_STOCK)
        if rule is not None and rule.viewed:
            self._subscribe_viewers(tx, [u for u in updates if u.viewed_at is not None], float(rows[-1][6]))

    @staticmethod
    def _subscribe_viewers(tx: Transaction, views: Sequence[db.InterestUpdate], now: float) -> None:
        """A view of a SKU sold out everywhere (stock known, none left) subscribes the viewer."""
        if not views:
            return
        stock = db.inventory_of(tx, sorted({u.sku for u in views}))
        sold_out = {sku for sku, levels in stock.items() if not any(q > 0 for q in levels.values())}
        db.subscribe(tx, [(u.customer_id, u.sku, "", "viewed") for u in views if u.sku in sold_out], now,
                     rearm=True)

    @staticmethod
    def _expect_reorders(tx: Transaction, bought: Sequence[tuple[str, str]]) -> None:
        """When each buyer is expected to buy the SKU again: after their mean interval between purchases
        of it, or of its category when this was their first of the SKU."""
        variants = db.variants_by_sku(tx, sorted({sku for _, sku in bought}))
        due: list[tuple[str, str, float | None]] = []
        for history in db.purchase_history(tx, bought):
            interval = _interval([history])
            category = variants[history.sku].category if history.sku in variants else None
            if category is not None:
                siblings = db.category_purchases(tx, history.customer_id, category)
                if interval is None:
                    interval = _interval(siblings)
                due.extend((history.customer_id, s.sku, None) for s in siblings if s.sku != history.sku)
            last = history.purchased_at
            due.append((history.customer_id, history.sku,
                        None if interval is None or last is None else float(last) + interval))
        db.set_reorder_due(tx, due)

    # -- the Worker protocol
    async def tick(self) -> int:
        done = self._changes()
        if Events.BROWSE_ABANDONED in self.rules:
            done += self._browse_abandonment(self.rules[Events.BROWSE_ABANDONED])
        if Events.REPLENISHMENT_DUE in self.rules:
            done += self._replenishment(self.rules[Events.REPLENISHMENT_DUE])
        return done

    def next_due(self) -> float | None:
        now = self.clock.timestamp()
        dues: list[float] = []
        with self.store.transaction(immediate=False) as tx:
            if db.has_unhandled(tx):
                return now
            browse = self.rules.get(Events.BROWSE_ABANDONED)
            if browse is not None:
                first = db.next_browse_due(tx, viewed_from=now - (browse.window + browse.max_age).total_seconds())
                if first is not None:
                    dues.append(first + browse.window.total_seconds())
            reorder = self.rules.get(Events.REPLENISHMENT_DUE)
            if reorder is not None and (when := db.next_reorder_due(tx)) is not None:
                dues.append(when - reorder.lead.total_seconds())
        return min(dues) if dues else None

    # -- changes of price and stock
    def _changes(self) -> int:
        now = self.clock.timestamp()
        with self.store.transaction() as tx:
            changes = db.changes_due(tx, _PAGE)
            if not changes:
                return 0
            variants = db.variants_by_sku(tx, sorted({c.sku for c in changes}))
            rows: list[tuple[Any, ...]] = []
            for change in changes:
                variant = variants.get(change.sku)
                if change.kind == "stock":
                    self._stock_change(tx, change, variant, rows, now)
                elif change.kind == "price":
                    self._price_change(tx, change, variant, rows, now)
            self._record(tx, rows, now)
            db.mark_handled(tx, [c.seq for c in changes])
        return len(changes)

    def _stock_change(
        self, tx: Transaction, change: db.CatalogChange, variant: Variant | None, rows: list[tuple[Any, ...]],
        now: float,
    ) -> None:
        old, new = int(change.old or 0), int(change.new)
        location = change.location or ""
        back = self.rules.get(Events.BACK_IN_STOCK)
        if back is not None and new > old:
            quota = math.ceil((new - old) * back.quota_factor)
            waiting = db.notify_candidates(tx, change.sku, location, quota)
            for customer_id, _where, source in waiting:
                rows.append((f"bis:{change.seq}:{customer_id}", customer_id, Events.BACK_IN_STOCK,
                             {**_card(variant, change.sku), "location": location, "quantity": new,
                              "restocked": new - old, "subscribed_by": source}))
            db.mark_notified(tx, change.sku, [(c, where) for c, where, _ in waiting], now)
        low = self.rules.get(Events.LOW_STOCK_IN_CART)
        if low is None or (low.location is not None and low.location != location):
            return
        if low.location is None:  # all locations together: this change moved the total by new - old
            new = sum(db.inventory_of(tx, [change.sku]).get(change.sku, {}).values())
            old = new - (int(change.new) - int(change.old or 0))
        if not 0 < new < low.threshold <= old:
            return
        since = now - low.cart_window.total_seconds()
        for interest in self._pages(tx, change.sku, since, viewed=False, carted=True, sent="low_stock_sent_at",
                                    now=now):
            rows.append((f"lowstock:{change.seq}:{interest.customer_id}", interest.customer_id,
                         Events.LOW_STOCK_IN_CART,
                         {**_card(variant, change.sku), "location": low.location or "all", "quantity": new}))

    def _price_change(
        self, tx: Transaction, change: db.CatalogChange, variant: Variant | None, rows: list[tuple[Any, ...]],
        now: float,
    ) -> None:
        rule = self.rules.get(Events.PRICE_DROPPED)
        if rule is None or change.old is None:
            return
        old, new = Decimal(change.old), Decimal(change.new)
        if not rule.qualifies(old, new):
            return
        since = now - rule.lookback.total_seconds()
        for interest in self._pages(tx, change.sku, since, viewed=rule.viewed, carted=rule.carted,
                                    sent="price_sent_at", now=now):
            carted = interest.carted_at is not None and interest.carted_at >= since
            rows.append((f"price:{change.seq}:{interest.customer_id}", interest.customer_id, Events.PRICE_DROPPED,
                         {**_card(variant, change.sku), "old_price": float(old), "new_price": float(new),
                          "drop": float(old - new), "drop_percent": round(float((old - new) / old * 100), 2),
                          "interest": "carted" if carted else "viewed"}))

    @staticmethod
    def _pages(
        tx: Transaction, sku: str, since: float, *, viewed: bool, carted: bool, sent: str, now: float,
    ) -> list[db.Interest]:
        """Every interested customer, a page at a time; each is marked sent."""
        found: list[db.Interest] = []
        after = ""
        while True:
            page = db.interested_in(tx, sku, since=since, viewed=viewed, carted=carted, sent_column=sent,
                                    limit=_PAGE, after=after)
            found.extend(page)
            db.mark_sent(tx, sent, [(i.customer_id, i.sku) for i in page], now)
            if len(page) < _PAGE:
                return found
            after = page[-1].customer_id

    # -- time-based triggers
    def _browse_abandonment(self, rule: BrowseAbandonment) -> int:
        now = self.clock.timestamp()
        until = now - rule.window.total_seconds()
        with self.store.transaction() as tx:
            views = db.viewed_not_carted(tx, viewed_from=until - rule.max_age.total_seconds(), viewed_until=until,
                                         limit=_PAGE)
            if not views:
                return 0
            by_customer: dict[str, list[db.Interest]] = {}
            for view in views:
                by_customer.setdefault(view.customer_id, []).append(view)
            buyers = db.customers_who_bought(tx, list(by_customer),
                                             min(float(v.viewed_at or now) for v in views))
            variants = db.variants_by_sku(tx, sorted({v.sku for v in views}))
            rows: list[tuple[Any, ...]] = []
            for customer_id, viewed in by_customer.items():
                if customer_id in buyers:
                    continue
                latest = max(viewed, key=lambda v: float(v.viewed_at or 0))
                skus = [v.sku for v in sorted(viewed, key=lambda v: -float(v.viewed_at or 0))]
                rows.append((f"browse:{customer_id}:{int(float(latest.viewed_at or 0) * 1000)}", customer_id,
                             Events.BROWSE_ABANDONED, {**_card(variants.get(latest.sku), latest.sku), "skus": skus}))
            db.mark_sent(tx, "browse_sent_at", [(v.customer_id, v.sku) for v in views], now)
            self._record(tx, rows, now)
        return len(views)

    def _replenishment(self, rule: Replenishment) -> int:
        now = self.clock.timestamp()
        with self.store.transaction() as tx:
            due = db.reorders_due(tx, now + rule.lead.total_seconds(), _PAGE)
            if not due:
                return 0
            variants = db.variants_by_sku(tx, sorted({sku for _, sku, _, _ in due}))
            rows = [(f"reorder:{cid}:{sku}:{int(last * 1000)}", cid, Events.REPLENISHMENT_DUE,
                     {**_card(variants.get(sku), sku), "expected_at": to_datetime(when).isoformat(),
                      "last_purchased_at": to_datetime(last).isoformat()})
                    for cid, sku, when, last in due]
            db.set_reorder_due(tx, [(cid, sku, None) for cid, sku, _, _ in due])
            self._record(tx, rows, now)
        return len(due)

    def _record(self, tx: Transaction, rows: Sequence[tuple[Any, ...]], now: float) -> None:
        """Record trigger events (id, customer_id, name, properties) for the customers' current profiles."""
        if not rows:
            return
        moved = dict(db.merged_into(tx, sorted({str(r[1]) for r in rows})))
        for _ in range(8):  # a chain of merges: follow it to its end
            onward = db.merged_into(tx, sorted(set(moved.values())))
            if not onward:
                break
            moved = {k: onward.get(v, v) for k, v in moved.items()}
        self.recorder.touchpoints(tx, [(tp_id, moved.get(cid, cid), "server", name, dumps(properties), now, now)
                                       for tp_id, cid, name, properties in rows])
        log.info("catalog_triggers_fired", count=len(rows))


def _interval(history: Sequence[db.Reorder]) -> float | None:
    """The mean time between purchases over `history` (one SKU's, or a category's), if it says anything."""
    purchases = sum(h.purchases for h in history)
    firsts = [float(h.first_purchased_at) for h in history if h.first_purchased_at is not None]
    lasts = [float(h.purchased_at) for h in history if h.purchased_at is not None]
    if purchases < 2 or not firsts or not lasts:
        return None
    interval = (max(lasts) - min(firsts)) / (purchases - 1)
    return interval if interval >= MIN_REORDER_INTERVAL else None
