"""Catalog upserts of 1,000,000 variants, side by side with a plain bulk upsert, in one process.

    python benchmarks/catalog.py                 # 1,000,000 variants on SQLite
    python benchmarks/catalog.py --quick         # 100,000 variants
    python benchmarks/catalog.py --postgres postgresql://127.0.0.1:5432/test   # PostgreSQL too

Both sides read the same rows (fixed seed, generated lazily: neither holds the catalog in memory) and
write the same tables (variants and online stock, the schema of migration 0016) a batch of 1,000 rows
per transaction. Phase "insert" loads an empty catalog; phase "10% changed" upserts every row again with
a tenth of the prices and stock levels changed. omnisdk is `omni.catalog.upsert_many`: it checks every
row, reads the batch's stored variants and levels, writes only what changed (one multi-row statement)
and records each price and stock change for the triggers. The peer on SQLite is stdlib `sqlite3`
`executemany` of `INSERT ... ON CONFLICT DO UPDATE` for every row, unchecked, recording nothing; on
PostgreSQL it is psycopg `COPY` into a temporary table, then one `INSERT ... SELECT ... ON CONFLICT` per
batch. Times are wall clock without tracemalloc; peak memory is a second run of each phase under
tracemalloc, on fresh stores.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import sqlite3
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from omnisdk import Omni, VirtualClock

BATCH = 1000
_COLUMNS = "sku, product_id, title, price, currency, url, image_url, category, brand, attributes, updated_at"
_UPSERT = (f"INSERT INTO catalog_variants ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
           "ON CONFLICT (sku) DO UPDATE SET product_id = excluded.product_id, title = excluded.title, "
           "price = excluded.price, currency = excluded.currency, url = excluded.url, image_url = excluded.image_url, "
           "category = excluded.category, brand = excluded.brand, attributes = excluded.attributes, "
           "updated_at = excluded.updated_at")
_STOCK = ("INSERT INTO catalog_inventory (sku, location, quantity, updated_at) VALUES (?, ?, ?, ?) "
          "ON CONFLICT (sku, location) DO UPDATE SET quantity = excluded.quantity, updated_at = excluded.updated_at")


def rows(count: int, *, changed: float = 0.0, seed: int = 7) -> Iterator[dict[str, Any]]:
    """The catalog, one variant at a time; with `changed`, that share has a new price and stock level."""
    rng = random.Random(seed)
    for i in range(count):
        price = Decimal(rng.randrange(100, 100_000)) / 100
        stock = rng.randrange(0, 50)
        if changed and rng.random() < changed:
            price, stock = price * Decimal("0.9"), stock + 1
        yield {"sku": f"sku-{i:07d}", "product_id": f"p-{i // 4:06d}", "title": f"Product {i // 4} size {i % 4}",
               "price": str(price), "currency": "USD", "url": f"https://shop.example/p/{i // 4}",
               "image_url": f"https://cdn.shop.example/{i // 4}.jpg", "category": f"cat-{i % 97}",
               "brand": f"brand-{i % 13}", "attributes": {"size": i % 4}, "inventory": {"online": stock}}


def omnisdk_side(url: str) -> Callable[[Iterator[dict[str, Any]]], int]:
    omni = Omni(url, clock=VirtualClock(), load_entry_points=False)

    def upsert(source: Iterator[dict[str, Any]]) -> int:
        result = omni.catalog.upsert_many(source, batch_size=BATCH)
        return result.inserted + result.updated

    return upsert


def _batches(source: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in source:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _values(row: dict[str, Any], now: float) -> tuple[Any, ...]:
    import json

    return (row["sku"], row["product_id"], row["title"], row["price"], row["currency"], row["url"],
            row["image_url"], row["category"], row["brand"], json.dumps(row["attributes"]), now)


def sqlite_peer(path: str) -> Callable[[Iterator[dict[str, Any]]], int]:
    """stdlib sqlite3 on a database migrated by omnisdk (same tables, indexes and pragmas' defaults)."""
    Omni(f"sqlite:///{path}", load_entry_points=False).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")

    def upsert(source: Iterator[dict[str, Any]]) -> int:
        written = 0
        for batch in _batches(source):
            now = time.time()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_UPSERT, [_values(row, now) for row in batch])
            conn.executemany(_STOCK, [(row["sku"], "online", row["inventory"]["online"], now) for row in batch])
            conn.execute("COMMIT")
            written += len(batch)
        return written

    return upsert


def postgres_peer(url: str) -> Callable[[Iterator[dict[str, Any]]], int]:
    """psycopg COPY into temporary tables, then one INSERT ... SELECT ... ON CONFLICT per batch."""
    import psycopg

    Omni(url, load_entry_points=False).close()
    base, _, schema = url.partition("?schema=")
    conn = psycopg.connect(base, autocommit=True)
    conn.execute(f'SET search_path TO "{schema}"')
    conn.execute("CREATE TEMPORARY TABLE v_in (LIKE catalog_variants) ON COMMIT DELETE ROWS")
    conn.execute("CREATE TEMPORARY TABLE s_in (LIKE catalog_inventory) ON COMMIT DELETE ROWS")
    sets = ("product_id", "title", "price", "currency", "url", "image_url", "category", "brand", "attributes",
            "updated_at")
    merge = (f"INSERT INTO catalog_variants ({_COLUMNS}) SELECT {_COLUMNS} FROM v_in ON CONFLICT (sku) DO UPDATE SET "
             + ", ".join(f"{c} = excluded.{c}" for c in sets))
    stock = ("INSERT INTO catalog_inventory SELECT * FROM s_in ON CONFLICT (sku, location) DO UPDATE SET "
             "quantity = excluded.quantity, updated_at = excluded.updated_at")

    def upsert(source: Iterator[dict[str, Any]]) -> int:
        written = 0
        for batch in _batches(source):
            now = time.time()
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy(f"COPY v_in ({_COLUMNS}) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(_values(row, now))
                with cur.copy("COPY s_in (sku, location, quantity, updated_at) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row((row["sku"], "online", row["inventory"]["online"], now))
                cur.execute(merge)
                cur.execute(stock)
            written += len(batch)
        return written

    return upsert


def measure(make: Callable[[], Callable[[Iterator[dict[str, Any]]], int]], count: int) -> list[tuple[float, float]]:
    """(seconds, peak MiB) of the insert phase and of the 10%-changed phase."""
    upsert = make()
    timed = []
    for changed in (0.0, 0.1):
        gc.collect()
        start = time.perf_counter()
        upsert(rows(count, changed=changed))
        timed.append(time.perf_counter() - start)
    upsert = make()
    peaks = []
    for changed in (0.0, 0.1):
        gc.collect()
        tracemalloc.start()
        upsert(rows(count, changed=changed))
        peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
    return list(zip(timed, peaks, strict=True))


def report(name: str, count: int, ours: list[tuple[float, float]], peer: list[tuple[float, float]]) -> None:
    print(f"\n{name}: {count:,} variants, batches of {BATCH}")
    print(f"{'phase':12} {'omnisdk rows/s':>15} {'peak MiB':>9} {'peer rows/s':>12} {'peak MiB':>9} "
          f"{'speed ratio':>12}")
    for phase, (o_s, o_m), (p_s, p_m) in zip(("insert", "10% changed"), ours, peer, strict=True):
        print(f"{phase:12} {count / o_s:>15,.0f} {o_m:>9.1f} {count / p_s:>12,.0f} {p_m:>9.1f} {p_s / o_s:>12.2f}")
    print("(speed ratio: omnisdk rows/s / peer rows/s; the peer checks nothing and records no changes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 variants")
    parser.add_argument("--count", type=int, help="variants (default 1,000,000; 100,000 with --quick)")
    parser.add_argument("--postgres", metavar="URL", help="also run on PostgreSQL (a throwaway schema)")
    args = parser.parse_args()
    count = args.count or (100_000 if args.quick else 1_000_000)
    print(f"python {platform.python_version()} on {platform.machine()}, sqlite {sqlite3.sqlite_version}")
    with tempfile.TemporaryDirectory() as tmp:
        made = iter(range(100))
        ours = measure(lambda: omnisdk_side(f"sqlite:///{Path(tmp) / f'o{next(made)}.db'}"), count)
        peer = measure(lambda: sqlite_peer(str(Path(tmp) / f"p{next(made)}.db")), count)
    report("SQLite", count, ours, peer)
    if args.postgres:
        from _stores import postgres_schema

        with postgres_schema(args.postgres) as a, postgres_schema(args.postgres) as b, \
                postgres_schema(args.postgres) as c, postgres_schema(args.postgres) as d:
            urls = iter([a, b])
            ours = measure(lambda: omnisdk_side(next(urls)), count)
            urls = iter([c, d])
            peer = measure(lambda: postgres_peer(next(urls)), count)
        report("PostgreSQL", count, ours, peer)


if __name__ == "__main__":
    main()
