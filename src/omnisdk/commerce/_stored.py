"""Recommendations learned from the stored touchpoints: bought together (Order Completed on any channel,
POS included), viewed together, recently viewed and popular in the customer's categories, tried in that
order (`[recommendations] chain`), behind the one `Recommender` interface.

Items are what the events name: each of an order's `products` (their `sku`, else `product_id`), or an
event's own `sku` / `product_id`; a product's `category` makes the groups `Popular` ranks in. A plugin adds
a recommender (a collaborative-filtering model, a vendor's API) with the `register_recommenders` hook:
`register(name, build)`, where `build(TrainingData) -> Recommender`, and names it in the chain.

The model is rebuilt from the store every `rebuild_every` seconds, when first needed after that, inside
the caller's transaction. Exclusions: what the customer bought, the items given, and with a `Stock`
(the catalog's inventory) what is out of stock (items whose stock the catalog does not count are
kept), or not stocked at the pickup store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from .._clock import Clock
from .._errors import ConfigError, ValidationError
from .._logging import get_logger
from ..store import Transaction
from ..store._recommendations import interactions, recent_interactions
from ._cooccurrence import CoOccurrence, ItemToItem
from ._factorization import Factorization
from ._recommend import Exclusions, Fallback, History, Popular, RecentlyViewed, Recommendation, Recommender

__all__ = ["BUILT_IN", "RecommendationSettings", "Stock", "StoredRecommendations", "TrainingData", "items_of"]

log = get_logger("omnisdk.commerce")


def items_of(properties: Any) -> list[tuple[str, str | None]]:
    """The (item, category) pairs an event names: its `products`' sku/product_id, or its own."""
    if not isinstance(properties, Mapping):
        return []
    products = properties.get("products")
    entries = [p for p in products if isinstance(p, Mapping)] if isinstance(products, list) else [properties]
    found = []
    for entry in entries:
        item = entry.get("sku") or entry.get("product_id")
        if isinstance(item, str | int) and not isinstance(item, bool) and str(item):
            category = entry.get("category")
            found.append((str(item), str(category) if isinstance(category, str) and category else None))
    return found


@attrs.frozen
class TrainingData:
    """What the store holds, as a recommender learns from it: every order's items (baskets), each
    customer's purchased and viewed items (oldest first), and each item's category."""

    orders: Sequence[Sequence[str]]
    purchased: Mapping[str, Sequence[str]]
    viewed: Mapping[str, Sequence[str]]
    categories: Mapping[str, str]


#: Builds a recommender from the training data (what `register_recommenders` registers).
RecommenderFactory = Callable[[TrainingData], Recommender]


def _bought_together(data: TrainingData, settings: RecommendationSettings) -> Recommender | None:
    baskets = [o for o in data.orders if len(set(o)) > 1]
    return ItemToItem(CoOccurrence.build(baskets, k=settings.neighbours)) if baskets else None


def _viewed_together(data: TrainingData, settings: RecommendationSettings) -> Recommender | None:
    baskets = [v for v in data.viewed.values() if len(set(v)) > 1]
    return ItemToItem(CoOccurrence.build(baskets, k=settings.neighbours), seeds="viewed") if baskets else None


def _collaborative(data: TrainingData, settings: RecommendationSettings) -> Recommender | None:
    rows = [[*data.purchased.get(c, ()), *data.viewed.get(c, ())] for c in {*data.purchased, *data.viewed}]
    return Factorization.build(sorted(rows), factors=settings.factors) if rows else None


def _popular(data: TrainingData) -> Recommender | None:
    sales = [(item, [data.categories[item]] if item in data.categories else []) for o in data.orders for item in o]
    if not sales:  # a shop without orders yet: the most viewed
        sales = [(item, [data.categories[item]] if item in data.categories else [])
                 for items in data.viewed.values() for item in items]
    return Popular.build(sales) if sales else None


#: The recommenders omnisdk builds itself, by the names `[recommendations] chain` uses (`collaborative`,
#: a truncated SVD of who bought and viewed what, is not in the default chain).
BUILT_IN: Mapping[str, Callable[[TrainingData, RecommendationSettings], Recommender | None]] = {
    "bought_together": _bought_together,
    "viewed_together": _viewed_together,
    "recently_viewed": lambda data, _: RecentlyViewed(),
    "popular": lambda data, _: _popular(data),
    "collaborative": _collaborative,
}


class Stock(Protocol):
    """Inventory per item and location (the catalog's): what the exclusions check in one query per answer."""

    def stock(self, tx: Transaction, items: Sequence[str]) -> Mapping[str, Mapping[str, int]]: ...


@attrs.frozen(kw_only=True)
class RecommendationSettings:
    """`[recommendations]`: which events are purchases and views, the chain of recommenders, neighbours kept
    per item, the touchpoints of a customer's history read per answer, and how often the model is rebuilt."""

    purchase_event: str = "Order Completed"
    view_events: tuple[str, ...] = ("Product Viewed", "Product Added")
    chain: tuple[str, ...] = ("bought_together", "viewed_together", "recently_viewed", "popular")
    neighbours: int = 50
    factors: int = 32
    history: int = 100
    rebuild_every: float = 86400.0

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None, known: Iterable[str]) -> RecommendationSettings:
        section = section or {}
        if not isinstance(section, Mapping):
            raise ConfigError("must be a table", field="recommendations")
        fields = {a.name for a in attrs.fields(cls)}
        for key in section:
            if key not in fields:
                raise ConfigError(f"unknown key (known: {', '.join(sorted(fields))})", field=f"recommendations.{key}")
        kwargs: dict[str, Any] = {}
        for key in ("neighbours", "factors", "history"):
            if key in section:
                if not isinstance(section[key], int) or isinstance(section[key], bool) or section[key] < 1:
                    raise ConfigError("expected an integer >= 1", field=f"recommendations.{key}")
                kwargs[key] = section[key]
        if "rebuild_every" in section:
            value = section["rebuild_every"]
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ConfigError("expected a number of seconds >= 0", field="recommendations.rebuild_every")
            kwargs["rebuild_every"] = float(value)
        if "purchase_event" in section:
            if not isinstance(section["purchase_event"], str) or not section["purchase_event"]:
                raise ConfigError("expected an event name", field="recommendations.purchase_event")
            kwargs["purchase_event"] = section["purchase_event"]
        for key in ("view_events", "chain"):
            if key in section:
                value = section[key]
                if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
                    raise ConfigError("expected a list of names", field=f"recommendations.{key}")
                kwargs[key] = tuple(value)
        names = set(known)
        for name in kwargs.get("chain", ()):
            if name not in names:
                raise ConfigError(f"unknown recommender {name!r} (known: {', '.join(sorted(names))})",
                                  field="recommendations.chain")
        return cls(**kwargs)


_PAGE = 5000


class StoredRecommendations:
    """The store's recommender (a `Fallback` over the chain), and answers for customers, with exclusions."""

    def __init__(
        self, clock: Clock, settings: RecommendationSettings, *,
        plugins: Mapping[str, RecommenderFactory] | None = None, stock: Stock | None = None,
    ) -> None:
        self._clock = clock
        self.settings = settings
        self._plugins = dict(plugins or {})
        self.stock = stock
        self._model: tuple[float, Recommender, Mapping[str, str]] | None = None

    def training_data(self, tx: Transaction) -> TrainingData:
        """Every purchase and view in the store, read in pages."""
        purchase, views = self.settings.purchase_event, set(self.settings.view_events)
        orders: list[list[str]] = []
        purchased: dict[str, list[str]] = {}
        viewed: dict[str, list[str]] = {}
        categories: dict[str, str] = {}
        after = 0
        while True:
            page = interactions(tx, (purchase, *views), after_seq=after, page=_PAGE)
            for i in page:
                pairs = items_of(i.properties)
                categories.update((item, c) for item, c in pairs if c)
                items = [item for item, _ in pairs]
                if i.name == purchase:
                    orders.append(items)
                    purchased.setdefault(i.customer_id, []).extend(items)
                else:
                    viewed.setdefault(i.customer_id, []).extend(items)
            if len(page) < _PAGE:
                break
            after = page[-1].seq
        return TrainingData(orders=orders, purchased=purchased, viewed=viewed, categories=categories)

    def recommender(self, tx: Transaction) -> Recommender:
        """The chain, built from the store (again once `rebuild_every` has passed)."""
        now = self._clock.timestamp()
        if self._model is None or now - self._model[0] >= self.settings.rebuild_every:
            data = self.training_data(tx)
            built: list[Recommender] = []
            for name in self.settings.chain:
                if name in self._plugins:
                    built.append(self._plugins[name](data))
                elif (recommender := BUILT_IN[name](data, self.settings)) is not None:
                    built.append(recommender)
            chain = Fallback(built)  # type: ignore[arg-type]  # mypy reads the tuple converter as generic
            self._model = (now, chain, data.categories)
            log.info("recommendations_built", orders=len(data.orders), categorised_items=len(data.categories))
        return self._model[1]

    def invalidate(self) -> None:
        """Rebuild at the next answer (after an import, or in tests)."""
        self._model = None

    def histories(self, tx: Transaction, customer_ids: Sequence[str]) -> dict[str, History]:
        """Each customer's purchases and views (latest `history` of them), and their categories as groups."""
        self.recommender(tx)
        assert self._model is not None
        categories = self._model[2]
        purchase, names = self.settings.purchase_event, (self.settings.purchase_event, *self.settings.view_events)
        bought: dict[str, list[str]] = {cid: [] for cid in customer_ids}
        seen: dict[str, list[str]] = {cid: [] for cid in customer_ids}
        for i in recent_interactions(tx, list(bought), names, per_customer=self.settings.history):
            target = bought if i.name == purchase else seen
            target[i.customer_id].extend(item for item, _ in items_of(i.properties))
        return {
            cid: History(purchased=bought[cid], viewed=seen[cid], groups=_groups(bought[cid] + seen[cid], categories))
            for cid in bought
        }

    def recommend(
        self, tx: Transaction, history: History, k: int, *, exclude: Iterable[str] = (), location: str | None = None,
    ) -> list[Recommendation]:
        """Up to `k` items for this history, none bought, none in `exclude`, and with a `Stock`: none out of
        stock (anywhere, or at `location` for a store pickup message)."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise ValidationError("expected an integer >= 0", field="k", value=k)
        model = self.recommender(tx)
        rule = Exclusions(items=frozenset(exclude))
        if self.stock is None:
            if location is not None:
                raise ValidationError("store stock needs a catalog", field="location", value=location)
            return model.recommend(history, k, exclude=rule)
        candidates = model.recommend(history, 4 * k + 8, exclude=rule)  # then one stock query for them all
        levels = self.stock.stock(tx, [c.item for c in candidates])
        return [c for c in candidates if _stocked(levels.get(c.item), location)][:k]


def _stocked(levels: Mapping[str, int] | None, location: str | None) -> bool:
    """In stock: anywhere, when the catalog tracks the item's stock (an item it has no count for is not
    ruled out); at `location` (a pickup store), only with units counted there."""
    if location is not None:
        return levels is not None and levels.get(location, 0) > 0
    return levels is None or not levels or any(n > 0 for n in levels.values())


def _groups(items: Sequence[str], categories: Mapping[str, str]) -> list[str]:
    """The categories of the customer's items, most recent first."""
    return list(dict.fromkeys(categories[i] for i in reversed(items) if i in categories))
