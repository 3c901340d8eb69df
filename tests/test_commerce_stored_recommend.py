"""Recommendations from the stored touchpoints (`omni.recommend`), on SQLite and PostgreSQL: the same answers
as the `omnisdk.commerce` recommenders given the same orders and views directly, purchases on any channel
(POS included) excluded, stock checked, and recommenders added by plugins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

import omnisdk
from omnisdk import ConfigError, Omni, ValidationError, VirtualClock
from omnisdk.commerce import CoOccurrence, Fallback, History, ItemToItem, Popular, RecentlyViewed, Recommendation
from omnisdk.commerce._stored import TrainingData, items_of

CATEGORY = {"tee": "tops", "hoodie": "tops", "cap": "hats", "beanie": "hats", "socks": "basics", "jeans": "bottoms",
            "belt": "basics", "scarf": "hats"}
ORDERS = {  # customer -> orders (lists of skus), alternately online and at the till
    "ann": [["tee", "cap"], ["socks"]],
    "bob": [["tee", "cap", "socks"]],
    "cy": [["hoodie", "beanie"], ["tee", "cap"]],
    "dee": [["jeans", "belt"]],
    "eve": [["tee"]],
}
VIEWS = {"eve": ["scarf", "beanie", "hoodie"], "fay": ["jeans", "scarf"], "ann": ["scarf", "beanie"]}


def products(skus: Sequence[str]) -> list[dict[str, Any]]:
    return [{"sku": sku, "category": CATEGORY[sku], "price": 10.0} for sku in skus]


@pytest.fixture
def shop(omni: Omni, clock: VirtualClock) -> Omni:
    for cid, orders in ORDERS.items():
        for i, skus in enumerate(orders):
            omni.track(cid, "Order Completed", {"order_id": f"{cid}-{i}", "revenue": 10.0 * len(skus),
                                                "products": products(skus)}, channel="pos" if i % 2 else "web")
            clock.advance(minutes=5)
    for cid, skus in VIEWS.items():
        for sku in skus:
            omni.track(cid, "Product Viewed", {"sku": sku, "category": CATEGORY[sku]}, channel="app")
            clock.advance(minutes=1)
    return omni


def direct_chain() -> Fallback:
    """The default chain, built directly from the same data with the plain-data recommenders."""
    orders = [o for baskets in ORDERS.values() for o in baskets]
    sales = [(sku, [CATEGORY[sku]]) for o in orders for sku in o]
    return Fallback([
        ItemToItem(CoOccurrence.build([o for o in orders if len(o) > 1], k=50)),
        ItemToItem(CoOccurrence.build([v for v in VIEWS.values() if len(v) > 1], k=50), seeds="viewed"),
        RecentlyViewed(),
        Popular.build(sales),
    ])


def history_of(cid: str) -> History:
    bought = [sku for o in ORDERS.get(cid, []) for sku in o]
    viewed = VIEWS.get(cid, [])
    groups = list(dict.fromkeys(CATEGORY[s] for s in reversed(bought + viewed)))
    return History(purchased=bought, viewed=viewed, groups=groups)


@pytest.mark.parametrize("cid", ["ann", "bob", "cy", "dee", "eve", "fay"])
def test_stored_recommendations_equal_the_recommenders_on_the_same_data(shop: Omni, cid: str) -> None:
    got = shop.recommend(cid, k=4)
    assert got == direct_chain().recommend(history_of(cid), 4)
    bought = {sku for o in ORDERS.get(cid, []) for sku in o}  # online and in store
    assert got and not bought & {r.item for r in got}


def test_bought_together_comes_first_and_exclusions_apply(shop: Omni) -> None:
    eve = shop.recommend("eve", k=3)  # bought a tee: the cap goes with it (ann, bob and cy bought both)
    assert eve[0] == Recommendation("cap", eve[0].score, "bought_together")
    assert "cap" not in {r.item for r in shop.recommend("eve", k=3, exclude=["cap"])}
    assert shop.recommend("eve", k=0) == []
    with pytest.raises(ValidationError) as caught:
        shop.recommend("eve", k=-1)
    assert caught.value.field == "k"
    assert shop.recommend("eve", k=2, location="soho") == []  # nothing is counted at that store


def test_out_of_stock_and_not_at_the_pickup_store_are_left_out(shop: Omni) -> None:
    levels = {"cap": {"online": 0, "soho": 0}, "socks": {"online": 5, "soho": 0}, "hoodie": {"soho": 2},
              "beanie": {"online": 1, "soho": 3}, "scarf": {"online": 4}, "belt": {"online": 2, "soho": 1},
              "jeans": {"soho": 1}}  # the tee's stock is not counted: not ruled out, but not at any store either
    shop.catalog.upsert_many([{"sku": sku, "product_id": sku, "title": sku.title(), "price": "10",
                               "category": CATEGORY[sku], **({"inventory": levels[sku]} if sku in levels else {})}
                              for sku in CATEGORY])
    history = history_of("eve")
    unfiltered = [r.item for r in direct_chain().recommend(history, 40)]
    anywhere = [r.item for r in shop.recommend("eve", k=4)]
    at_soho = [r.item for r in shop.recommend("eve", k=4, location="soho")]
    assert anywhere == [i for i in unfiltered if i not in levels or any(levels[i].values())][:4]
    assert at_soho == [i for i in unfiltered if levels.get(i, {}).get("soho", 0) > 0][:4]
    assert "cap" not in anywhere and "cap" in unfiltered[:2]  # bought together with eve's tee, but sold out
    shop.catalog.set_inventory("cap", "soho", 3)  # back in stock at the store
    assert "cap" in [r.item for r in shop.recommend("eve", k=4, location="soho")]


class Everyone:
    """A plugin's recommender: the items most customers interacted with (a stand-in for a CF model)."""

    def __init__(self, data: TrainingData) -> None:
        counts: dict[str, int] = {}
        for items in (*data.purchased.values(), *data.viewed.values()):
            for item in set(items):
                counts[item] = counts.get(item, 0) + 1
        self.ranked = sorted(counts, key=lambda i: (-counts[i], i))

    def recommend(self, history: History, k: int, *, exclude: Any = None) -> list[Recommendation]:
        allowed = exclude.allows(history)
        return [Recommendation(i, 1.0, "everyone") for i in self.ranked if allowed(i)][:k]


class EveryonePlugin:
    @omnisdk.hookimpl
    def register_recommenders(self, register: Any) -> None:
        register("everyone", Everyone)
        register("broken")  # not (name, build): reported, the rest still loads


def test_a_plugin_recommender_joins_the_chain(store_url: str, clock: VirtualClock) -> None:
    config = {"recommendations": {"chain": ["everyone", "popular"]}}
    with Omni(store_url, clock=clock, config=config, plugins=[EveryonePlugin()], load_entry_points=False) as omni:
        omni.track("ann", "Order Completed", {"products": products(["tee", "cap"])}, channel="pos")
        omni.track("bob", "Order Completed", {"products": products(["tee"])}, channel="web")
        omni.track("bob", "Product Viewed", {"sku": "cap"}, channel="web")
        omni.track("cy", "Product Viewed", {"product_id": "socks"}, channel="web")
        # two customers each for the cap and the tee (ties by name), one for the socks cy viewed
        assert [(r.item, r.reason) for r in omni.recommend("cy", k=2)] == [("cap", "everyone"), ("tee", "everyone")]
        assert any("register_recommenders" in str(e) for e in omni.plugin_errors)
    with pytest.raises(ConfigError) as caught, Omni(store_url, config={"recommendations": {"chain": ["nope"]}},
                                                     load_entry_points=False) as bad:
        bad.recommend("ann")
    assert caught.value.field == "recommendations.chain"


def test_items_are_read_from_products_or_the_event_itself() -> None:
    assert items_of({"products": [{"sku": "a", "category": "x"}, {"product_id": 7}, "junk", {"name": "no id"}]}) == [
        ("a", "x"), ("7", None)]
    assert items_of({"product_id": "p-1", "category": ""}) == [("p-1", None)]
    assert items_of({"sku": True}) == [] and items_of(None) == [] and items_of({"products": "a"}) == []


def test_collaborative_filtering_equals_the_dense_svd_and_finds_the_customers_taste(
    store_url: str, clock: VirtualClock,
) -> None:
    """Two kinds of customer (campers, runners), nobody buying across; a new camper who bought one tent is
    recommended the other camping items, scored as the projection onto the factors numpy's SVD finds."""
    import numpy as np

    from omnisdk.commerce._factorization import Factorization

    camping, running = ["tent", "stove", "lamp", "mat"], ["shoe", "watch", "socks", "cap"]
    rows = [[camping[i % 4], camping[(i + 1) % 4], camping[(i + 2) % 4]] for i in range(8)] + [
        [running[i % 4], running[(i + 3) % 4]] for i in range(8)]
    config = {"recommendations": {"chain": ["collaborative"], "factors": 2}}
    with Omni(store_url, clock=clock, config=config, load_entry_points=False) as omni:
        for n, items in enumerate(rows):
            omni.track(f"c{n}", "Order Completed", {"products": [{"sku": s} for s in items[:-1]]},
                       channel="pos" if n % 2 else "web")
            omni.track(f"c{n}", "Product Viewed", {"sku": items[-1]}, channel="app")
        omni.track("new", "Order Completed", {"products": [{"sku": "tent"}]}, channel="pos")
        got = omni.recommend("new", k=3)
    assert [r.reason for r in got] == ["collaborative"] * 3
    assert {r.item for r in got} == {"stove", "lamp", "mat"}

    # the oracle: the same matrix (every customer, "new" too), factored densely by numpy
    everyone = sorted([*rows, ["tent"]])
    items = list(dict.fromkeys(i for row in everyone for i in row))
    dense = np.array([[1.0 if i in row else 0.0 for i in items] for row in everyone])
    _, _, vt = np.linalg.svd(dense, full_matrices=False)
    v = vt[:2].T
    scores = v @ v[items.index("tent")]
    expected = sorted(((items[j], s) for j, s in enumerate(scores) if items[j] != "tent" and s > 1e-12),
                      key=lambda p: (-p[1], p[0]))[:3]
    assert [(r.item, r.score) for r in got] == [(i, pytest.approx(s, rel=1e-9)) for i, s in expected]
    model = Factorization.build(everyone, factors=2)
    assert model.vectors.shape == (8, 2)
    assert model.recommend(History(purchased=["shoe"]), 2)[0].item in {"watch", "socks", "cap"}
    assert Factorization.build([["a"]]).recommend(History(purchased=["a"]), 3) == []
    with pytest.raises(ValidationError):
        Factorization.build(rows, factors=0)
