"""Ingestion throughput: `track_many` and `track` on SQLite and PostgreSQL, next to the ceiling.

The ceiling is a raw `executemany` of the same rows into a fresh copy of the same table
(same indexes), measured in the same run: what the database itself can take.

    python benchmarks/ingest.py [--events 200000] [--batch 5000] [--postgres URL | --no-postgres]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _stores import postgres_schema

from omnisdk import Omni
from omnisdk._touchpoints import new_id

EVENTS = ["Product Viewed", "Product Added", "Cart Viewed", "Checkout Started", "Order Completed"]
CHANNELS = ["web", "app", "email", "sms", "push", "pos"]


def workload(n: int, customers: int, seed: int = 1) -> list[tuple[str, str, dict[str, object], str]]:
    rng = random.Random(seed)
    return [
        (f"c-{rng.randrange(customers)}", rng.choice(EVENTS),
         {"product_id": f"sku-{rng.randrange(500)}", "price": round(rng.uniform(5, 200), 2)}, rng.choice(CHANNELS))
        for _ in range(n)
    ]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_store(name: str, url: str, events: list[tuple[str, str, dict[str, object], str]], batch: int,
                singles: int) -> dict[str, float]:
    omni = Omni(url)
    items = [{"who": w, "event": e, "properties": p, "channel": c} for w, e, p, c in events]

    def many() -> None:
        for start in range(0, len(items), batch):
            omni.track_many(items[start : start + batch])

    t_many = timed(many)

    def single() -> None:
        for who, event, props, channel in events[:singles]:
            omni.track(who, event, props, channel=channel)

    t_single = timed(single)

    # The ceiling: the same rows (already resolved to customer ids, JSON already encoded, ids
    # already made) into a copy of the touchpoints table with the same indexes.
    now = time.time()
    rows = [(new_id(), w, c, e, json.dumps(p, separators=(",", ":")), now, now) for w, e, p, c in events]
    store = omni.store
    pk = store.dialect.types["pk"]
    js = store.dialect.types["json"]
    with store.transaction() as tx:
        tx.execute(f"CREATE TABLE raw_tp (seq {pk}, id TEXT NOT NULL UNIQUE, customer_id TEXT NOT NULL, "
                   f"channel TEXT NOT NULL, name TEXT NOT NULL, properties {js} NOT NULL, "
                   "occurred_at DOUBLE PRECISION NOT NULL, recorded_at DOUBLE PRECISION NOT NULL, "
                   "routed INTEGER NOT NULL DEFAULT 0)")
        tx.execute("CREATE INDEX raw_tp_ct ON raw_tp (customer_id, occurred_at)")
        tx.execute("CREATE INDEX raw_tp_unrouted ON raw_tp (seq) WHERE routed = 0")

    def raw() -> None:
        for start in range(0, len(rows), batch):
            with store.transaction() as tx:
                tx.executemany("INSERT INTO raw_tp (id, customer_id, channel, name, properties, occurred_at, "
                               "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows[start : start + batch])

    t_raw = timed(raw)
    with store.transaction() as tx:
        tx.execute("DROP TABLE raw_tp")
    omni.close()
    result = {
        "track_many": len(events) / t_many,
        "track": singles / t_single,
        "raw executemany": len(rows) / t_raw,
    }
    print(f"\n{name}: {len(events):,} events, {batch:,} per batch")
    for key, rate in result.items():
        print(f"  {key:<16} {rate:>12,.0f} events/s   {rate / result['raw executemany']:6.2f}x of raw")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--singles", type=int, default=5_000)
    parser.add_argument("--postgres", default="postgresql://127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    events = workload(args.events, args.customers)
    with tempfile.TemporaryDirectory() as tmp:
        bench_store("SQLite (WAL, file)", f"sqlite:///{Path(tmp) / 'bench.db'}", events, args.batch, args.singles)
    if not args.no_postgres:
        with postgres_schema(args.postgres) as url:
            bench_store("PostgreSQL", url, events, args.batch, min(args.singles, 2000))


if __name__ == "__main__":
    main()
