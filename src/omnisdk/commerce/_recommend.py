"""Recommendations behind one interface: a `Recommender` takes a customer's `History` and returns up to `k`
items, never one its `Exclusions` rule out (bought already, out of stock, not stocked at the pickup store).

Everything here is plain Python over plain data (item ids are strings), so a message can be rendered
without a model server; the co-occurrence recommenders are in `_cooccurrence`, and a collaborative-filtering
model from another library plugs in by implementing `Recommender.recommend`.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import attrs

from .._errors import ValidationError

__all__ = [
    "Exclusions",
    "Fallback",
    "History",
    "Popular",
    "RecentlyViewed",
    "Recommendation",
    "Recommender",
    "in_stock",
]


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _set(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


@attrs.frozen
class History:
    """What one customer did, oldest first: items bought (online or in store), items viewed, and the groups
    `Popular` ranks for them (their segments, or the categories they browse)."""

    purchased: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    viewed: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    groups: tuple[str, ...] = attrs.field(default=(), converter=_strings)


@attrs.frozen
class Exclusions:
    """Which items may not be recommended: `items` (e.g. the product the message is already about), what the
    customer bought when `purchased`, and, when `available` is given, everything not in it (pass
    `in_stock(inventory)`, or `in_stock(inventory, store_id)` for a store pickup message)."""

    items: frozenset[str] = attrs.field(default=frozenset(), converter=_set)
    purchased: bool = True
    available: Container[str] | None = None

    def banned(self, history: History) -> frozenset[str]:
        """The items refused for this customer by name (`available` aside)."""
        return self.items | frozenset(history.purchased) if self.purchased else self.items

    def allows(self, history: History) -> Callable[[str], bool]:
        """The test one customer's candidates go through (for recommenders written elsewhere)."""
        banned, available = self.banned(history), self.available
        if available is None:
            return lambda item: item not in banned
        return lambda item: item not in banned and item in available


PURCHASED = Exclusions()  # the default: leave out only what the customer bought


def in_stock(inventory: Mapping[str, Mapping[str, int]], location: str | None = None) -> frozenset[str]:
    """Items with stock at `location` (a store id, or the online warehouse's), or anywhere when None;
    `inventory` maps item -> location -> units."""
    if location is None:
        return frozenset(item for item, places in inventory.items() if any(n > 0 for n in places.values()))
    return frozenset(item for item, places in inventory.items() if places.get(location, 0) > 0)


@attrs.frozen
class Recommendation:
    """One recommended item, its score (comparable within one recommender's answer) and why it was chosen."""

    item: str
    score: float
    reason: str


@runtime_checkable
class Recommender(Protocol):
    """The contract every recommender meets, including ones from other libraries (e.g. collaborative
    filtering): at most `k` recommendations, best first, none of them refused by `exclude`."""

    def recommend(self, history: History, k: int, *, exclude: Exclusions = ...) -> list[Recommendation]: ...


def best(
    scores: Iterable[tuple[str, float]], k: int, exclude: Exclusions, banned: Container[str], reason: str
) -> list[Recommendation]:
    """The `k` best items neither `banned` nor unavailable, highest score first and ties by item id, so
    answers are reproducible."""
    if k < 0:
        raise ValidationError("must be >= 0", field="k", value=k)
    available = exclude.available
    if available is None:
        pool = ((-s, item) for item, s in scores if item not in banned)
    else:
        pool = ((-s, item) for item, s in scores if item not in banned and item in available)
    return [Recommendation(item, -negative, reason) for negative, item in heapq.nsmallest(k, pool)]


@attrs.frozen
class RecentlyViewed:
    """The customer's own recently viewed items, newest first (score 1 for the newest, 1/2 the next...)."""

    def recommend(self, history: History, k: int, *, exclude: Exclusions = PURCHASED) -> list[Recommendation]:
        newest_first = list(dict.fromkeys(reversed(history.viewed)))
        return best(
            ((item, 1.0 / (rank + 1)) for rank, item in enumerate(newest_first)),
            k,
            exclude,
            exclude.banned(history),
            "viewed",
        )


Ranking = tuple[tuple[str, float], ...]


@attrs.frozen
class Popular:
    """Best sellers (or most viewed) per group and overall. A history with groups is scored by each item's
    share of its groups' events, summed over the groups; one without gets the overall ranking. Only the
    `depth` best items per group are kept, so an answer may be short when many are excluded."""

    overall: Ranking
    by_group: Mapping[str, Ranking]

    @classmethod
    def build(cls, events: Iterable[tuple[str, Iterable[str]]], *, depth: int = 200) -> Popular:
        """`events` are (item, groups) pairs: a sale of an item, and the groups it counts in (the item's
        category, the buyer's segments; none for the overall ranking only)."""
        overall: Counter[str] = Counter()
        grouped: dict[str, Counter[str]] = {}
        for item, groups in events:
            overall[item] += 1
            for group in groups:
                grouped.setdefault(group, Counter())[item] += 1
        return cls(overall=_ranking(overall, depth), by_group={g: _ranking(c, depth) for g, c in grouped.items()})

    def recommend(self, history: History, k: int, *, exclude: Exclusions = PURCHASED) -> list[Recommendation]:
        rankings = [self.by_group[g] for g in dict.fromkeys(history.groups) if g in self.by_group]
        if not rankings:
            return best(self.overall, k, exclude, exclude.banned(history), "popular")
        scores: dict[str, float] = {}
        for ranking in rankings:
            for item, share in ranking:
                scores[item] = scores.get(item, 0.0) + share
        return best(scores.items(), k, exclude, exclude.banned(history), "popular")


def _ranking(counts: Counter[str], depth: int) -> Ranking:
    total = sum(counts.values())
    top = heapq.nsmallest(depth, counts.items(), key=lambda pair: (-pair[1], pair[0]))
    return tuple((item, n / total) for item, n in top)


@attrs.frozen
class Fallback:
    """Recommenders tried in order, each filling what the ones before left of `k` with new items: e.g.
    bought together, then popular in the customer's categories, then popular overall."""

    recommenders: Sequence[Recommender] = attrs.field(converter=tuple)

    def recommend(self, history: History, k: int, *, exclude: Exclusions = PURCHASED) -> list[Recommendation]:
        chosen: list[Recommendation] = []
        for recommender in self.recommenders:
            if len(chosen) >= k:
                break
            taken = exclude.items | {r.item for r in chosen}
            chosen += recommender.recommend(history, k - len(chosen), exclude=attrs.evolve(exclude, items=taken))
        return chosen
