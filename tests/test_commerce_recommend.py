"""Recommendations: co-occurrence you can check by hand, the simple recommenders, and the one promise every
recommender keeps whatever it is given: an excluded item is never recommended."""

from __future__ import annotations

import math
from collections import Counter
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest import approx

from omnisdk import ValidationError
from omnisdk.commerce import (
    PURCHASED,
    CoOccurrence,
    Exclusions,
    Fallback,
    History,
    ItemToItem,
    Popular,
    RecentlyViewed,
    Recommendation,
    Recommender,
    in_stock,
)

BUDGET = settings(max_examples=150, deadline=None, derandomize=True)
# a, b, c, d are held by 3, 3, 2 and 1 of the 4 baskets; a+b: 2, a+c: 2, b+c: 1, b+d: 1
BASKETS = [["a", "b"], ["a", "b", "c"], ["a", "c"], ["b", "d"]]


def test_counts_cosine_and_lift_by_hand() -> None:
    counts = CoOccurrence.build(BASKETS, k=5, measure="count")
    assert counts.related("a") == [("b", 2.0), ("c", 2.0)]
    assert counts.related("b") == [("a", 2.0), ("c", 1.0), ("d", 1.0)]
    assert counts.related("d") == [("b", 1.0)]
    cosine = CoOccurrence.build(BASKETS, k=5, measure="cosine")
    assert same(cosine.related("a"), [("c", 2 / math.sqrt(6)), ("b", 2 / 3)])
    assert same(cosine.related("b"), [("a", 2 / 3), ("d", 1 / math.sqrt(3)), ("c", 1 / math.sqrt(6))])
    lift = CoOccurrence.build(BASKETS, k=5, measure="lift")
    assert same(lift.related("b"), [("d", 4 / 3), ("a", 8 / 9), ("c", 2 / 3)])


def same(actual: list[tuple[str, float]], expected: list[tuple[str, float]]) -> bool:
    """The same items in the same order, with the same scores up to rounding."""
    return [i for i, _ in actual] == [i for i, _ in expected] and [s for _, s in actual] == approx(
        [s for _, s in expected]
    )


def test_only_the_k_best_shared_often_enough_are_kept() -> None:
    assert CoOccurrence.build(BASKETS, k=1, measure="count").related("b") == [("a", 2.0)]
    assert CoOccurrence.build(BASKETS, k=5, measure="count", min_together=2).related("b") == [("a", 2.0)]
    assert CoOccurrence.build([["a", "a", "b"]], measure="count").related("a") == [("b", 1.0)]  # once per basket
    assert CoOccurrence.build(BASKETS).related("unknown") == []
    assert CoOccurrence.build([]).related("a") == []
    with pytest.raises(ValidationError, match="k"):
        CoOccurrence.build(BASKETS, k=0)


baskets = st.lists(st.lists(st.sampled_from("abcdefghij"), max_size=6), max_size=30)


@BUDGET
@given(baskets=baskets, k=st.integers(1, 12), block_pairs=st.integers(1, 40))
def test_co_occurrence_equals_counting_pairs_whatever_the_blocks(
    baskets: list[list[str]], k: int, block_pairs: int
) -> None:
    held = Counter(item for basket in baskets for item in set(basket))
    pairs: Counter[tuple[str, str]] = Counter()
    for basket in baskets:
        for i, j in combinations(sorted(set(basket)), 2):
            pairs[i, j] += 1
            pairs[j, i] += 1
    index = CoOccurrence.build(baskets, k=k, measure="cosine", block_pairs=block_pairs)
    for item in held:
        expected = sorted(
            ((j, n / math.sqrt(held[i] * held[j])) for (i, j), n in pairs.items() if i == item),
            key=lambda pair: (-pair[1], pair[0]),
        )[:k]
        assert same(index.related(item), expected)  # the same IEEE operations, so ties tie in both


def test_bought_together_leaves_out_what_was_bought_and_what_is_not_available() -> None:
    together = ItemToItem(CoOccurrence.build(BASKETS, measure="count"))
    assert together.recommend(History(purchased=["b"]), 5) == [
        Recommendation("a", 2.0, "bought_together"),
        Recommendation("c", 1.0, "bought_together"),
        Recommendation("d", 1.0, "bought_together"),
    ]
    # a and c both relate to b and d: a scores 2 (with b), c 1; d was bought
    assert [r.item for r in together.recommend(History(purchased=["b", "d"]), 5)] == ["a", "c"]
    inventory = {"a": {"online": 0, "store-9": 3}, "c": {"online": 4}, "d": {"online": 1}}
    assert in_stock(inventory) == {"a", "c", "d"}
    assert in_stock(inventory, "online") == {"c", "d"}
    assert in_stock(inventory, "store-9") == {"a"}
    online = Exclusions(available=in_stock(inventory, "online"))
    assert [r.item for r in together.recommend(History(purchased=["b"]), 5, exclude=online)] == ["c", "d"]
    pickup = Exclusions(available=in_stock(inventory, "store-9"))
    assert [r.item for r in together.recommend(History(purchased=["b"]), 5, exclude=pickup)] == ["a"]
    not_c = Exclusions(items={"c"})
    assert [r.item for r in together.recommend(History(purchased=["b"]), 5, exclude=not_c)] == ["a", "d"]
    assert together.recommend(History(purchased=["b"]), 0) == []


def test_viewed_together_starts_from_views_and_never_offers_them_back() -> None:
    sessions = [["shoe", "sock"], ["shoe", "lace"], ["shoe", "sock", "bag"]]
    viewed = ItemToItem(CoOccurrence.build(sessions, measure="count"), seeds="viewed")
    answer = viewed.recommend(History(viewed=["sock", "shoe"]), 5, exclude=Exclusions(purchased=False))
    assert answer == [Recommendation("bag", 2.0, "viewed_together"), Recommendation("lace", 1.0, "viewed_together")]
    assert ItemToItem(viewed.index, seeds="viewed", recent=1).recommend(History(viewed=["sock", "shoe"]), 5) == [
        Recommendation("sock", 2.0, "viewed_together"),  # only the newest view (shoe) is a seed
        Recommendation("bag", 1.0, "viewed_together"),
        Recommendation("lace", 1.0, "viewed_together"),
    ]


def test_recently_viewed_is_newest_first_once_each() -> None:
    history = History(viewed=["a", "b", "a", "c"], purchased=["c"])
    assert RecentlyViewed().recommend(history, 5) == [
        Recommendation("a", 0.5, "viewed"),
        Recommendation("b", 1 / 3, "viewed"),
    ]
    assert [r.item for r in RecentlyViewed().recommend(history, 2, exclude=Exclusions(purchased=False))] == ["c", "a"]


def test_popular_in_the_customers_groups_then_overall() -> None:
    sales = [("tee", ["apparel"])] * 3 + [("cap", ["apparel", "vip"])] * 2 + [("mug", ["home"])] * 4
    popular = Popular.build(sales)
    assert popular.recommend(History(), 3) == [
        Recommendation("mug", 4 / 9, "popular"),
        Recommendation("tee", 3 / 9, "popular"),
        Recommendation("cap", 2 / 9, "popular"),
    ]
    assert popular.recommend(History(groups=["apparel"]), 3) == [
        Recommendation("tee", 0.6, "popular"),
        Recommendation("cap", 0.4, "popular"),
    ]
    # cap: 0.4 of apparel + all of vip
    assert [r.item for r in popular.recommend(History(groups=["apparel", "vip"]), 3)] == ["cap", "tee"]
    assert popular.recommend(History(groups=["unknown"]), 1) == [Recommendation("mug", 4 / 9, "popular")]
    assert [item for item, _ in Popular.build(sales, depth=1).by_group["apparel"]] == ["tee"]


class Collaborative:
    """What a model from another library looks like behind the protocol."""

    def recommend(self, history: History, k: int, *, exclude: Exclusions = PURCHASED) -> list[Recommendation]:
        allowed = exclude.allows(history)
        return [Recommendation(i, 1.0, "cf") for i in ("x", "mug", "y") if allowed(i)][:k]


def test_fallback_fills_from_the_next_recommender_with_new_items() -> None:
    popular = Popular.build([("mug", ["home"]), ("a", ["home"]), ("z", ["home"])])
    chain = Fallback([ItemToItem(CoOccurrence.build(BASKETS, measure="count")), Collaborative(), popular])
    assert all(isinstance(r, Recommender) for r in [*chain.recommenders, chain, RecentlyViewed()])
    answer = chain.recommend(History(purchased=["d"]), 5)
    assert [(r.item, r.reason) for r in answer] == [
        ("b", "bought_together"),
        ("x", "cf"),
        ("mug", "cf"),
        ("y", "cf"),
        ("a", "popular"),
    ]
    assert [r.item for r in chain.recommend(History(purchased=["d"]), 2)] == ["b", "x"]


def test_batch_answers_are_the_single_answers() -> None:
    together = ItemToItem(CoOccurrence.build(BASKETS, measure="cosine"))
    histories = [History(purchased=["b"]), History(), History(purchased=["a", "zzz"]), History(purchased=["b", "d"])]
    exclude = Exclusions(items={"d"})
    batch = together.recommend_many(histories, 2, exclude=exclude)
    assert batch == [together.recommend(h, 2, exclude=exclude) for h in histories]
    assert together.recommend_many(histories, 2, exclude=exclude, chunk=1) == batch


items = st.sampled_from("abcdefghij")
histories = st.builds(
    History,
    purchased=st.lists(items, max_size=6),
    viewed=st.lists(items, max_size=6),
    groups=st.lists(st.sampled_from(["g1", "g2", "g3"]), max_size=2),
)
exclusions = st.builds(
    Exclusions,
    items=st.frozensets(items, max_size=4),
    purchased=st.booleans(),
    available=st.none() | st.frozensets(items),
)


def excluded(history: History, exclude: Exclusions) -> set[str]:
    banned = set(exclude.items) | (set(history.purchased) if exclude.purchased else set())
    if exclude.available is not None:
        banned |= set("abcdefghij") - set(exclude.available)
    return banned


@BUDGET
@given(
    baskets=baskets,
    sales=st.lists(st.tuples(items, st.lists(st.sampled_from(["g1", "g2"]), max_size=2)), max_size=30),
    history=histories,
    exclude=exclusions,
    k=st.integers(0, 12),
)
def test_excluded_items_never_appear(
    baskets: list[list[str]], sales: list[tuple[str, list[str]]], history: History, exclude: Exclusions, k: int
) -> None:
    index = CoOccurrence.build(baskets, k=4, measure="count")
    recommenders: list[Recommender] = [
        ItemToItem(index),
        ItemToItem(index, seeds="viewed"),
        RecentlyViewed(),
        Popular.build(sales, depth=5),
        Collaborative(),
    ]
    banned = excluded(history, exclude)
    for recommender in [*recommenders, Fallback(recommenders)]:
        answer = recommender.recommend(history, k, exclude=exclude)
        assert len(answer) <= k
        assert not {r.item for r in answer} & banned
        assert len({r.item for r in answer}) == len(answer)
    for recommender in recommenders:  # best first (a Fallback's answer is best first per recommender)
        scores = [r.score for r in recommender.recommend(history, k, exclude=exclude)]
        assert scores == sorted(scores, reverse=True)
    # counts are integers, so the batch path's sums are exact and its answers the same
    assert ItemToItem(index).recommend_many([history], k, exclude=exclude) == [
        ItemToItem(index).recommend(history, k, exclude=exclude)
    ]
