"""The demo store: customers who browse on the web and the app, open emails, and buy online or in store.

Everything goes through the public API, on the default embedded SQLite store.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from .._clock import VirtualClock
from .._omni import Omni
from ._progress import Progress

__all__ = ["run_demo"]

FIRST_NAMES = ["Ada", "Grace", "Alan", "Linus", "Hedy", "Katherine", "Tim", "Margaret", "Dennis", "Barbara"]
ZONES = ["America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/London", "Europe/Paris"]
PRODUCTS = [f"sku-{i}" for i in range(1, 41)]


def run_demo(store: str | None = None, customers: int = 2000, seed: int = 7) -> int:
    started = time.perf_counter()
    rng = random.Random(seed)
    clock = VirtualClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    url = store or "sqlite:///.omnisdk/demo.db"
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:"):
        from pathlib import Path

        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    print(f"omnisdk demo: {customers:,} customers over 30 virtual days on {url}")
    with Omni(url, clock=clock) as omni:
        people = _identify(omni, rng, customers)
        _shop(omni, rng, people, clock)
        _summary(omni, people, time.perf_counter() - started)
    return 0


def _identify(omni: Omni, rng: random.Random, n: int) -> list[str]:
    progress = Progress("profiles and consent", n)
    people = []
    for i in range(n):
        cid = f"cust-{i:05d}"
        anon = f"web-{rng.getrandbits(48):012x}"
        omni.track({"anonymous_id": anon}, "Product Viewed", {"product_id": rng.choice(PRODUCTS)}, channel="web")
        omni.identify(
            cid,
            anonymous_id=anon,
            email=f"{FIRST_NAMES[i % len(FIRST_NAMES)].lower()}.{i}@example.com",
            phone=f"+1415555{i % 10000:04d}" if i < 10000 else None,
            traits={"first_name": FIRST_NAMES[i % len(FIRST_NAMES)], "signup_day": 0},
            timezone=rng.choice(ZONES),
            locale=rng.choice(["en-US", "en-GB", "fr-FR"]),
            preferred_channels=rng.sample(["email", "sms", "push"], 2),
        )
        for channel in ("email", "sms", "push"):
            if rng.random() < 0.7:
                omni.consent(cid, channel=channel, granted=True, source="signup-form")
        people.append(cid)
        progress.advance()
    progress.finish()
    return people


def _shop(omni: Omni, rng: random.Random, people: list[str], clock: VirtualClock) -> None:
    progress = Progress("30 days of shopping", 30)
    for _day in range(30):
        batch = []
        for cid in rng.sample(people, k=max(1, len(people) // 6)):
            product = rng.choice(PRODUCTS)
            channel = rng.choice(["web", "app"])
            batch.append({"who": cid, "event": "Product Viewed", "properties": {"product_id": product},
                          "channel": channel})
            if rng.random() < 0.4:
                batch.append({"who": cid, "event": "Product Added",
                              "properties": {"product_id": product, "price": 20.0, "cart_id": f"k-{cid}"},
                              "channel": channel})
        omni.track_many(batch)
        # In-store purchases arrive from the POS with only the phone number the customer gave.
        for cid in rng.sample(people, k=max(1, len(people) // 40)):
            phone = omni.customer(cid).phone
            if phone:
                omni.track({"phone": phone}, "Order Completed",
                           {"order_id": f"pos-{rng.getrandbits(32):08x}", "revenue": 20.0}, channel="pos")
        clock.advance(timedelta(days=1))
        omni.run_until_idle()
        progress.advance()
    progress.finish()


def _summary(omni: Omni, people: list[str], elapsed: float) -> None:
    with omni.store.transaction(immediate=False) as tx:
        per_channel = Counter(dict(tx.query("SELECT channel, COUNT(*) FROM touchpoints GROUP BY channel")))
        merges = tx.scalar("SELECT COUNT(*) FROM merges")
        omni_customers = tx.scalar(
            "SELECT COUNT(*) FROM (SELECT customer_id FROM touchpoints GROUP BY customer_id "
            "HAVING COUNT(DISTINCT channel) >= 2) AS multi"
        )
    print("\nTouchpoints per channel")
    for channel, n in per_channel.most_common():
        print(f"  {channel:<12} {n:>8,}")
    print(f"\nProfiles stitched from several identifiers: {merges:,}")
    print(f"Customers seen on two or more channels:    {omni_customers:,} of {len(people):,}")
    print(f"\nDone in {elapsed:.1f} s.")
