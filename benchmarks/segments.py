"""Segment evaluation over a million customers on SQLite and PostgreSQL, with memory kept flat.

Setup rows are bulk-inserted with SQL (the benchmark measures evaluation, not ingestion).

    python benchmarks/segments.py [--customers 1000000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from _stores import postgres_schema

from omnisdk import Omni, VirtualClock
from omnisdk._touchpoints import new_id
from omnisdk.segments import consented, count, did, trait

DAY = 86400.0


def populate(omni: Omni, n: int, seed: int = 3) -> None:
    rng = random.Random(seed)
    now = omni.clock.timestamp()
    chunk = 50_000
    for start in range(0, n, chunk):
        customers, touchpoints, consents = [], [], []
        for i in range(start, min(n, start + chunk)):
            cid = f"c{i:07d}"
            customers.append((cid, json.dumps({"tier": rng.choice(["gold", "silver", "bronze"]),
                                               "age": rng.randrange(18, 80)}), now, now))
            for _ in range(rng.choice((0, 1, 2, 3))):
                name = rng.choice(("Order Completed", "Product Viewed", "Product Added"))
                when = now - rng.uniform(0, 180) * DAY
                touchpoints.append((new_id(), cid, rng.choice(("web", "pos", "app")), name,
                                    json.dumps({"revenue": round(rng.uniform(5, 300), 2)}), when, when))
            if rng.random() < 0.5:
                consents.append((cid, "email", "marketing", 1, "bench", now))
        with omni.store.transaction() as tx:
            tx.executemany("INSERT INTO customers (id, traits, preferred_channels, created_at, updated_at) "
                           "VALUES (?, ?, '[]', ?, ?)", customers)
            tx.executemany("INSERT INTO touchpoints (id, customer_id, channel, name, properties, occurred_at, "
                           "recorded_at, routed) VALUES (?, ?, ?, ?, ?, ?, ?, 1)", touchpoints)
            tx.executemany("INSERT INTO consents (customer_id, channel, purpose, granted, source, recorded_at) "
                           "VALUES (?, ?, ?, ?, ?, ?)", consents)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(label: str, url: str, n: int) -> None:
    omni = Omni(url, clock=VirtualClock())
    t0 = time.perf_counter()
    populate(omni, n)
    if omni.store.dialect.name == "postgresql":
        with omni.store.transaction() as tx:
            tx.execute("ANALYZE")
    print(f"\n{label}: {n:,} customers loaded in {time.perf_counter() - t0:.1f} s (RSS {rss_mb():.0f} MB)")
    segments = {
        "gold & bought in 30d": (trait("tier") == "gold") & did("Order Completed", within=timedelta(days=30)),
        "email consent & >=2 orders": consented("email") & (count("Order Completed") >= 2),
        "age>=60 | no views": (trait("age") >= 60) | ~did("Product Viewed"),
    }
    for name, condition in segments.items():
        segment = omni.segment(condition)
        t = time.perf_counter()
        size = segment.count()
        t_count = time.perf_counter() - t
        t = time.perf_counter()
        streamed = sum(1 for _ in segment.customers(page=10_000))
        t_stream = time.perf_counter() - t
        assert streamed == size
        print(f"  {name:<28} {size:>9,} members   count {t_count:6.2f} s   stream ids {t_stream:6.2f} s   "
              f"peak RSS {rss_mb():.0f} MB")
    omni.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--postgres", default="postgresql://127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run("SQLite", f"sqlite:///{Path(tmp) / 'seg.db'}", args.customers)
    if not args.no_postgres:
        with postgres_schema(args.postgres, "omni_seg") as url:
            run("PostgreSQL", url, args.customers)


if __name__ == "__main__":
    main()
