"""Bought-together recommendations for 100,000 synthetic customers, side by side with plain-Python counting.

    python benchmarks/recommendations.py            # 100,000 customers, 10,000 items
    python benchmarks/recommendations.py --quick    # 10,000 customers, a smoke run

Customers (fixed seed) each like one to three of 100 categories and place one to four orders of one to
five items drawn from those categories with Zipf-like popularity. Both sides do the same work on the same
orders: count item pairs per order, score them by cosine, keep 50 neighbours per item, then give every
customer 10 items related to what they bought, leaving out what they bought and the 10% of items out of
stock. omnisdk runs `CoOccurrence.build` and `ItemToItem.recommend_many` (one sparse product) and, for
comparison, `ItemToItem.recommend` customer by customer; the naive peer is dict-of-Counter pair counting and
a per-customer dict of scores. Each time is the best of `--repeat` runs without tracemalloc; peak memory is
measured in a separate run under tracemalloc (which sees numpy's allocations too). The inputs are built
before any clock starts; the answers of both sides are compared at the end.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import math
import platform
import random
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from typing import Any

from omnisdk.commerce import CoOccurrence, Exclusions, History, ItemToItem

NEIGHBOURS = 50
TOP = 10


def simulate(customers: int, items: int, seed: int) -> tuple[list[list[str]], list[History], frozenset[str]]:
    rng = random.Random(seed)
    categories = 100
    per_category = items // categories
    weights = [1 / (rank + 1) ** 1.1 for rank in range(per_category)]
    catalog = [[f"sku-{c:03d}-{i:04d}" for i in range(per_category)] for c in range(categories)]
    orders: list[list[str]] = []
    histories: list[History] = []
    for _ in range(customers):
        tastes = rng.sample(range(categories), rng.randint(1, 3))
        bought: list[str] = []
        for _ in range(rng.randint(1, 4)):
            order = [rng.choices(catalog[rng.choice(tastes)], weights)[0] for _ in range(rng.randint(1, 5))]
            orders.append(order)
            bought += order
        histories.append(History(purchased=bought))
    everything = [sku for skus in catalog for sku in skus]
    in_stock = frozenset(sku for sku in everything if rng.random() >= 0.10)
    return orders, histories, in_stock


def naive_build(orders: list[list[str]], k: int) -> dict[str, list[tuple[str, float]]]:
    held: Counter[str] = Counter()
    pairs: dict[str, Counter[str]] = {}
    for order in orders:
        distinct = set(order)
        held.update(distinct)
        for i in distinct:
            row = pairs.setdefault(i, Counter())
            for j in distinct:
                if i != j:
                    row[j] += 1
    return {
        i: heapq.nsmallest(
            k, ((j, n / math.sqrt(held[i] * held[j])) for j, n in row.items()), key=lambda p: (-p[1], p[0])
        )
        for i, row in pairs.items()
    }


def naive_recommend(
    neighbours: dict[str, list[tuple[str, float]]], histories: list[History], k: int, in_stock: frozenset[str]
) -> list[list[str]]:
    answers = []
    for history in histories:
        bought = set(history.purchased)
        seeds = list(dict.fromkeys(reversed(history.purchased)))[:20]
        scores: dict[str, float] = {}
        for seed in seeds:
            for item, score in neighbours.get(seed, ()):
                scores[item] = scores.get(item, 0.0) + score
        ranked = heapq.nsmallest(
            k,
            ((-s, item) for item, s in scores.items() if item not in bought and item in in_stock),
        )
        answers.append([item for _, item in ranked])
    return answers


def best_time(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = math.inf, None
    for _ in range(repeat):
        result = None
        gc.collect()
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_mib(run: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def retained_mib(run: Callable[[], Any]) -> float:
    """What the result of `run` keeps allocated once it returns (the index an app holds on to)."""
    gc.collect()
    tracemalloc.start()
    try:
        result = run()
        gc.collect()
        size = tracemalloc.get_traced_memory()[0] / 2**20
        del result
        return size
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10,000 customers, one run each")
    args = parser.parse_args()
    if args.quick:
        args.customers, args.repeat = 10_000, 1

    orders, histories, in_stock = simulate(args.customers, args.items, args.seed)
    exclude = Exclusions(available=in_stock)
    print(
        f"{args.customers:,} customers, {len(orders):,} orders, {sum(map(len, orders)):,} order lines, "
        f"{args.items:,} items ({len(in_stock):,} in stock); {NEIGHBOURS} neighbours per item, top {TOP}; "
        f"best of {args.repeat}; Python {platform.python_version()} on {platform.machine()}\n"
    )

    def build() -> CoOccurrence:
        return CoOccurrence.build(orders, k=NEIGHBOURS, measure="cosine")

    ours_build_s, index = best_time(build, args.repeat)
    ours_build_mib = peak_mib(build)
    together = ItemToItem(index)
    ours_many_s, ours = best_time(lambda: together.recommend_many(histories, TOP, exclude=exclude), args.repeat)
    ours_many_mib = peak_mib(lambda: together.recommend_many(histories, TOP, exclude=exclude))
    ours_loop_s, ours_loop = best_time(
        lambda: [together.recommend(h, TOP, exclude=exclude) for h in histories], args.repeat
    )
    ours_loop_mib = peak_mib(lambda: [together.recommend(h, TOP, exclude=exclude) for h in histories])

    naive_build_s, neighbours = best_time(lambda: naive_build(orders, NEIGHBOURS), args.repeat)
    naive_build_mib = peak_mib(lambda: naive_build(orders, NEIGHBOURS))
    naive_rec_s, naive = best_time(lambda: naive_recommend(neighbours, histories, TOP, in_stock), args.repeat)
    naive_rec_mib = peak_mib(lambda: naive_recommend(neighbours, histories, TOP, in_stock))

    rows = [
        ("co-occurrence build", ours_build_s, ours_build_mib, naive_build_s, naive_build_mib),
        ("top-10, batch (recommend_many)", ours_many_s, ours_many_mib, naive_rec_s, naive_rec_mib),
        ("top-10, per customer (recommend)", ours_loop_s, ours_loop_mib, naive_rec_s, naive_rec_mib),
        (
            "build + batch top-10",
            ours_build_s + ours_many_s,
            max(ours_build_mib, ours_many_mib),
            naive_build_s + naive_rec_s,
            max(naive_build_mib, naive_rec_mib),
        ),
    ]
    print(f"{'phase':34} {'omnisdk s':>10} {'peak MiB':>9} {'naive s':>9} {'peak MiB':>9} {'time x':>7} {'mem x':>6}")
    for name, our_s, our_mib, their_s, their_mib in rows:
        print(
            f"{name:34} {our_s:10.2f} {our_mib:9.1f} {their_s:9.2f} {their_mib:9.1f} "
            f"{their_s / our_s:7.1f} {their_mib / our_mib:6.1f}"
        )
    print("(time x and mem x: naive / omnisdk, above 1 means omnisdk is faster or smaller)")
    ours_kept, naive_kept = retained_mib(build), retained_mib(lambda: naive_build(orders, NEIGHBOURS))
    ours_all = peak_mib(lambda: ItemToItem(build()).recommend_many(histories, TOP, exclude=exclude))
    naive_all = peak_mib(lambda: naive_recommend(naive_build(orders, NEIGHBOURS), histories, TOP, in_stock))
    print(
        f"\nindex held: omnisdk {ours_kept:.1f} MiB, naive {naive_kept:.1f} MiB ({naive_kept / ours_kept:.1f} x); "
        f"peak of build + batch top-10 together: omnisdk {ours_all:.1f} MiB, naive {naive_all:.1f} MiB "
        f"({naive_all / ours_all:.1f} x). omnisdk's answers are Recommendation objects (item, score, reason), "
        "the naive peer's bare item ids."
    )

    same_neighbours = sum(
        [j for j, _ in index.related(item)] == [j for j, _ in neighbours.get(item, [])] for item in index.items
    )
    ours_items = [[r.item for r in answer] for answer in ours]
    loop_items = [[r.item for r in answer] for answer in ours_loop]
    same_top = sum(a == b for a, b in zip(ours_items, naive, strict=True))
    same_sets = sum(set(a) == set(b) for a, b in zip(ours_items, naive, strict=True))
    print(
        f"\nagreement with the naive peer: neighbour lists identical for {same_neighbours:,}/{len(index.items):,} "
        f"items; top-10 identical in order for {same_top:,}/{len(naive):,} customers, as sets for {same_sets:,}; "
        f"batch = per-customer for {sum(a == b for a, b in zip(ours_items, loop_items, strict=True)):,}"
    )
    print(
        f"index: {len(index.items):,} items, {len(index.neighbours):,} neighbours kept "
        f"({(index.neighbours.nbytes + index.scores.nbytes + index.indptr.nbytes) / 2**20:.1f} MiB of arrays)"
    )


if __name__ == "__main__":
    main()
