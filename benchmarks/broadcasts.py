"""Queueing a broadcast to a million customers on SQLite and PostgreSQL: recipients per second and peak memory.

Side by side in one run, per store:
  * stream ids   - reading the segment's ids a page at a time (`omni.segment(...).customers()`): the floor;
  * naive loop   - what an app would write without broadcasts: stream the ids and call `enqueue_delivery`
                   for each, a page per transaction (run on the first `--naive` customers only);
  * broadcast    - `omni.broadcast(...)` queued by the broadcast worker: at a time, at a local time in
                   each customer's zone, and at each customer's best time (send-time optimisation).

Customers (and, for send-time optimisation, their past opens) are bulk-inserted by a child process, so
the peak RSS printed is the parent's: what queueing costs, not what loading the data cost.

    python benchmarks/broadcasts.py [--customers 1000000] [--naive 100000] [--stores sqlite,postgresql]

Peak RSS is per process: run one store per process (`--stores postgresql`) to read each store's own peak.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import resource
import tempfile
import time
from datetime import time as clock_time
from pathlib import Path

from _stores import postgres_schema

from omnisdk import Email, Message, Omni, VirtualClock
from omnisdk._touchpoints import new_id
from omnisdk.delivery import enqueue_delivery
from omnisdk.segments import trait

DAY = 86400.0
ZONES = ("America/New_York", "America/Los_Angeles", "Europe/London", "Europe/Paris", "Asia/Tokyo",
         "Asia/Kolkata", "Australia/Sydney", None)
CONFIG = {"analytics": {"broadcast_pages_per_tick": 1_000_000}}


def populate(url: str, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    omni = Omni(url, clock=VirtualClock())
    now = omni.clock.timestamp()
    chunk = 50_000
    for start in range(0, n, chunk):
        customers, opens = [], []
        for i in range(start, min(n, start + chunk)):
            cid = f"c{i:07d}"
            customers.append((cid, json.dumps({"plan": "newsletter", "tier": rng.choice(("gold", "silver"))}),
                              rng.choice(ZONES), now, now))
            if rng.random() < 0.3:  # a third have a habit: opens around one hour of the day (UTC here)
                hour = rng.randrange(24)
                for _ in range(rng.randrange(1, 4)):
                    when = now - rng.randrange(1, 60) * DAY - (now % DAY) + hour * 3600 + rng.randrange(3600)
                    opens.append((new_id(), cid, "email", "Message Opened", "{}", when, when))
        with omni.store.transaction() as tx:
            tx.executemany("INSERT INTO customers (id, traits, timezone, preferred_channels, created_at, updated_at) "
                           "VALUES (?, ?, ?, '[]', ?, ?)", customers)
            tx.executemany("INSERT INTO touchpoints (id, customer_id, channel, name, properties, occurred_at, "
                           "recorded_at, routed) VALUES (?, ?, ?, ?, ?, ?, ?, 1)", opens)
    if omni.store.dialect.name == "postgresql":
        with omni.store.transaction() as tx:
            tx.execute("ANALYZE")
    omni.close()


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB."""
    with open("/proc/self/statm") as f:
        current = int(f.read().split()[1]) * resource.getpagesize() / 2**20
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def line(label: str, count: int, seconds: float, baseline: float | None = None) -> None:
    rate = count / seconds if seconds else float("inf")
    ratio = f"   x{rate / baseline:5.1f} vs naive" if baseline else ""
    current, peak = rss_mb()
    print(f"  {label:<26} {count:>9,} in {seconds:7.2f} s = {rate:>9,.0f}/s   RSS {current:4.0f} MB "
          f"(peak {peak:4.0f} MB){ratio}")


def drain(omni: Omni, loop: asyncio.AbstractEventLoop) -> None:
    """Tick only the broadcast worker (no sending: this measures queueing) until every page is queued."""
    while loop.run_until_complete(omni._core.broadcasts.tick()):
        pass


def run(label: str, url: str, n: int, naive: int) -> None:
    t0 = time.perf_counter()
    child = multiprocessing.get_context("fork").Process(target=populate, args=(url, n))
    child.start()
    child.join()
    assert child.exitcode == 0
    print(f"\n{label}: {n:,} customers loaded in {time.perf_counter() - t0:.1f} s (by a child process)")
    omni = Omni(url, clock=VirtualClock(), config=CONFIG)
    omni.templates.add(Message("sale", email=Email(subject="Sale", text="20% off")))
    everyone = trait("plan") == "newsletter"
    loop = asyncio.new_event_loop()

    t = time.perf_counter()
    streamed = sum(1 for _ in omni.segment(everyone).customers(page=2000))
    line("stream ids (floor)", streamed, time.perf_counter() - t)

    t = time.perf_counter()
    queued = 0
    ids = omni.segment(everyone).customers(page=2000)
    now = omni.clock.timestamp()
    while queued < naive:
        page = [cid for _, cid in zip(range(2000), ids, strict=False)]
        if not page:
            break
        with omni.store.transaction() as tx:
            for cid in page:
                enqueue_delivery(tx, key=f"naive:{cid}", customer_id=cid, template="sale", channels=["email"], now=now)
        queued += len(page)
    naive_rate = queued / (time.perf_counter() - t)
    line("naive loop", queued, time.perf_counter() - t)

    for mode, options in (("broadcast at a time", {}),
                          ("broadcast at local 10:00", {"local_time": clock_time(10)}),
                          ("broadcast at best time", {"send_time": "best"})):
        t = time.perf_counter()
        planned = omni.broadcast("sale", everyone, channel="email", **options)  # type: ignore[arg-type]
        drain(omni, loop)
        seconds = time.perf_counter() - t
        t = time.perf_counter()
        status = omni.broadcast_status(planned.id)
        status_seconds = time.perf_counter() - t
        assert status.enqueued == n == status.audience == status.queued, status
        line(mode, status.enqueued, seconds, naive_rate)
        print(f"  {'':<26} broadcast_status() over {status.enqueued:,} deliveries: {status_seconds:.2f} s")
    loop.close()
    omni.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--naive", type=int, default=100_000, help="customers the naive loop queues")
    parser.add_argument("--postgres", default="postgresql://127.0.0.1:5432/test")
    parser.add_argument("--stores", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    args = parser.parse_args()
    stores = args.stores.split(",")
    if "sqlite" in stores:
        with tempfile.TemporaryDirectory() as tmp:
            run("SQLite", f"sqlite:///{Path(tmp) / 'broadcast.db'}", args.customers, args.naive)
    if "postgresql" in stores:
        with postgres_schema(args.postgres, "omni_bc") as url:
            run("PostgreSQL", url, args.customers, args.naive)


if __name__ == "__main__":
    main()
