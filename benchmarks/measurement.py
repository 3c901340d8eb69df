"""Measurement at scale: KPIs, a funnel, Markov attribution and the full report over a generated store.

Rows are bulk-inserted with SQL (this measures analysis, not ingestion). Time and peak Python
heap for each call, on SQLite and PostgreSQL.

    python benchmarks/measurement.py [--customers 100000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from _stores import postgres_schema

from omnisdk import Omni, VirtualClock
from omnisdk.store import dumps

CHANNELS = ["email", "sms", "push"]
FUNNEL = ["Product Viewed", "Product Added", "Checkout Started", "Order Completed"]


def populate(omni: Omni, customers: int, seed: int = 7) -> tuple[int, int]:
    rng = random.Random(seed)
    t0 = omni.clock.timestamp()
    touchpoints, deliveries = [], []
    for c in range(customers):
        cid = f"c{c:07d}"
        t = t0 + rng.random() * 86400 * 20
        for k in range(rng.randint(0, 3)):
            channel, did = rng.choice(CHANNELS), f"d{c}-{k}"
            status = rng.choice(["sent", "delivered", "skipped", "failed"])
            sent = t if status != "skipped" else None
            deliveries.append((did, f"k{did}", cid, "tmpl", dumps([channel]), channel, "memory", "marketing", "{}",
                               "j", "s", status, t, "[]", 0.0075 if sent else None, 1 if sent else None, sent, t, t))
            if sent:
                touchpoints.append((f"s{did}", cid, channel, "Message Sent", dumps({"delivery_id": did}), t, t))
                if rng.random() < 0.3:
                    touchpoints.append((f"o{did}", cid, channel, "Message Opened", dumps({"delivery_id": did}),
                                        t + 600, t))
            t += rng.random() * 86400
        for name in FUNNEL:
            if rng.random() < 0.5:
                break
            t += rng.random() * 3600 * 30
            props = {"revenue": round(rng.random() * 100, 2)} if name == "Order Completed" else {}
            touchpoints.append((f"e{c}-{name}", cid, rng.choice(["web", "app", "pos"]), name, dumps(props), t, t))
    with omni.store.transaction() as tx:
        tx.executemany(
            "INSERT INTO deliveries (id, idempotency_key, customer_id, template, channels, channel, provider, purpose, "
            "data, journey, step, status, due_at, decisions, cost, segments, sent_at, created_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", deliveries)
        tx.executemany(
            "INSERT INTO touchpoints (id, customer_id, channel, name, properties, occurred_at, recorded_at, routed) "
            "VALUES (?,?,?,?,?,?,?,1)", touchpoints)
    return len(touchpoints), len(deliveries)


def measure(label: str, url: str, customers: int, out: Path) -> None:
    omni = Omni(url, clock=VirtualClock(), load_entry_points=False)
    n_tp, n_del = populate(omni, customers)
    print(f"\n{label}: {customers:,} customers, {n_tp:,} touchpoints, {n_del:,} deliveries")
    calls: list[tuple[str, Callable[[], object]]] = [
        ("kpis by channel", lambda: omni.kpis(by="channel")),
        ("kpis by journey, step", lambda: omni.kpis(by=("journey", "step"))),
        ("funnel, 4 steps by channel", lambda: omni.funnel(FUNNEL, by="channel")),
        ("attribution, markov", lambda: omni.attribution("markov")),
        ("report (html + csv, 6 models)", lambda: omni.report(html=str(out / "r.html"), csv=str(out / "csv"))),
    ]
    for name, call in calls:
        start = time.perf_counter()
        call()
        took = time.perf_counter() - start
        tracemalloc.start()  # a second run for the heap peak: tracing slows Python down
        call()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"  {name:<32} {took:7.2f} s   peak Python heap {peak / 2**20:6.1f} MiB")
    omni.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--postgres", default="postgresql://127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure("SQLite", f"sqlite:///{Path(tmp) / 'm.db'}", args.customers, Path(tmp))
        if not args.no_postgres:
            with postgres_schema(args.postgres, "omni_measure") as url:
                measure("PostgreSQL", url, args.customers, Path(tmp))


if __name__ == "__main__":
    main()
