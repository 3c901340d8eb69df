"""The demo store: a month of an omnichannel shop, in virtual time, through the public API.

Customers browse on the web and the app, sign up, abandon carts, buy online or at the store's
POS (arriving as signed Square webhooks), pick up orders, and lapse. Journeys react on every
channel; deliveries go through the real provider plugins to local imitations of Twilio,
SendGrid, FCM, Lob and Square; delivery receipts and engagement come back as signed webhooks.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .._clock import VirtualClock
from .._errors import OmniError
from .._omni import Omni
from ..segments import churn_risk, did, did_not, predicted_clv
from ..store._analytics import count_by, merge_count, runs_exited_by, sent_since, touchpoints_by_channel
from ._progress import Progress
from ._providers import DemoProviders, demo_providers
from ._shop import JOURNEYS, MESSAGES

__all__ = ["run_demo"]

FIRST_NAMES = ["Ada", "Grace", "Alan", "Linus", "Hedy", "Katherine", "Tim", "Margaret", "Dennis", "Barbara"]
ZONES = ["America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/London", "Europe/Paris"]
PRODUCTS = [f"sku-{i}" for i in range(1, 41)]
PRICES = {sku: float(12 + (i * 37) % 110) for i, sku in enumerate(PRODUCTS)}
START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
DAYS = 30


def run_demo(store: str | None = None, customers: int = 2000, seed: int = 7, report: str | None = None) -> int:
    started = time.perf_counter()
    rng = random.Random(seed)
    clock = VirtualClock(START - timedelta(days=365))
    url = store or "sqlite:///.omnisdk/demo.db"
    _fresh(url)
    print(f"omnisdk demo: {customers:,} customers, {DAYS} virtual days, store {url}")
    with demo_providers() as providers, Omni(url, config=providers.config, clock=clock) as omni:
        for message in MESSAGES:
            omni.templates.add(message)
        _import_catalog(omni, providers.square.location_id)
        omni.register(*JOURNEYS)
        omni.watch_segment("lapsed", did("Order Completed") & did_not("Order Completed", within=timedelta(days=30)))
        people, lapsed = _sign_up(omni, rng, customers, clock)
        stats = _simulate(omni, rng, [p for p in people if p not in lapsed], clock, providers)
        _summary(omni, providers, stats, time.perf_counter() - started)
        _predicted_value(omni)
        if report:
            _write_report(omni, report)
    return 0


CATEGORIES = ["tents", "footwear", "jackets", "kitchen", "packs"]
NAMES = {"tents": "tent", "footwear": "trail shoe", "jackets": "rain jacket", "kitchen": "camp mug", "packs": "daypack"}
SOLD_OUT = PRODUCTS[::9]  # sku-1, sku-10, ...: restocked half-way through the month


def _import_catalog(omni: Omni, store: str) -> None:
    """The shop's 40 products with stock online and at the SoHo store (a Square location), a few sold out."""
    rows = []
    for i, sku in enumerate(PRODUCTS):
        category = CATEGORIES[i % len(CATEGORIES)]
        stock = {"online": 0, store: 0} if sku in SOLD_OUT else {"online": 5 + (i * 7) % 40, store: (i * 3) % 6}
        rows.append({"sku": sku, "product_id": sku, "title": f"{NAMES[category].title()} no. {i + 1}",
                     "price": f"{PRICES[sku]:.2f}", "currency": "USD", "category": category,
                     "url": f"https://acme.example/p/{sku}", "image_url": f"https://cdn.acme.example/{sku}.jpg",
                     "inventory": stock})
    result = omni.catalog.upsert_many(rows)
    print(f"Catalog: {result.inserted} variants, {result.inventory} stock levels, {len(SOLD_OUT)} sold out")


def _fresh(url: str) -> None:
    if url.startswith("sqlite:///") and ":memory:" not in url:
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _sign_up(omni: Omni, rng: random.Random, n: int, clock: VirtualClock) -> tuple[list[str], set[str]]:
    """Profiles, stitched from an anonymous web visit; almost half bought in the past year, and of those some
    have lapsed (returned with the profiles: they stay away this month unless a win-back brings them)."""
    progress = Progress("customers and their history", n)
    people = []
    history = []
    lapsed: set[str] = set()
    for i in range(n):
        cid = f"cust-{i:05d}"
        name = FIRST_NAMES[i % len(FIRST_NAMES)]
        anon = f"web-{rng.getrandbits(48):012x}"
        omni.track({"anonymous_id": anon}, "Product Viewed", {"product_id": rng.choice(PRODUCTS)}, channel="web")
        omni.identify(
            cid, anonymous_id=anon, email=f"{name.lower()}.{i}@example.com", phone=f"+1415555{i % 10000:04d}",
            fcm_token=f"fcm-{rng.getrandbits(64):016x}" if rng.random() < 0.6 else None,
            traits={"first_name": name}, timezone=rng.choice(ZONES), locale="en-US",
            preferred_channels=rng.sample(["email", "sms", "push"], 2),
            address={"name": f"{name} Example", "line1": f"{100 + i} Main St", "city": "San Francisco",
                     "state": "CA", "postal_code": "94107", "country": "US"},
        )
        for channel, share in (("email", 0.85), ("sms", 0.55), ("push", 0.7), ("direct_mail", 0.5)):
            if rng.random() < share:
                omni.consent(cid, channel=channel, granted=True, source="signup-form")
        orders, dropped = _past_orders(rng, cid, i)
        history += orders
        if dropped:
            lapsed.add(cid)
        people.append(cid)
        progress.advance()
    omni.track_many(history)
    clock.set(START)
    omni.run_until_idle()  # the lapsed segment's first evaluation, before the month starts
    progress.finish()
    return people, lapsed


def _past_orders(rng: random.Random, cid: str, i: int) -> tuple[list[dict[str, Any]], bool]:
    """A year of orders before the month, as BG/NBD pictures a customer base: each buys at their own rate
    while active, and after each order may stop for good (those have lapsed: they do not shop this month)."""
    if rng.random() >= 0.45:
        return [], False
    rate, drop = rng.gammavariate(0.6, 1 / 25), rng.betavariate(0.7, 2.0)  # orders a day; chance to stop
    spend = rng.gammavariate(4.0, 12.0)  # the customer's usual basket
    day, orders = rng.uniform(0, 120), list[dict[str, Any]]()
    while day < 365:
        product = rng.choice(PRODUCTS)
        orders.append({"who": cid, "event": "Order Completed", "channel": rng.choice(["web", "pos"]),
                       "properties": {"order_id": f"old-{i}-{len(orders)}", "product_id": product,
                                      "revenue": round(spend * rng.uniform(0.6, 1.6), 2)},
                       "timestamp": START - timedelta(days=365 - day)})
        if rng.random() < drop:
            return orders, True
        day += rng.expovariate(rate)
    return orders, False


def _simulate(omni: Omni, rng: random.Random, people: list[str], clock: VirtualClock,
              providers: DemoProviders) -> Counter[str]:
    stats: Counter[str] = Counter()
    progress = Progress(f"{DAYS} days of shopping", DAYS)
    carts: dict[str, str] = {}
    new_signups = iter(rng.sample(people, k=len(people) // 3))
    for day in range(DAYS):
        plan: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for _ in range(len(people) // 90):
            cid = next(new_signups, None)
            if cid:
                plan[rng.randrange(8, 22)].append({"who": cid, "event": "Signed Up", "channel": "web"})
        for cid in rng.sample(people, k=len(people) // 7):
            hour, product = rng.randrange(7, 23), rng.choice(PRODUCTS)
            channel = rng.choice(["web", "app"])
            plan[hour].append({"who": cid, "event": "Product Viewed", "channel": channel,
                               "properties": {"product_id": product}})
            if rng.random() < 0.45:
                plan[hour].append({"who": cid, "event": "Product Added", "channel": channel,
                                   "properties": {"product_id": product, "price": PRICES[product],
                                                  "cart_id": f"k-{cid}"}})
                carts[cid] = product
        for hour in range(24):
            clock.set(START + timedelta(days=day, hours=hour))
            if plan[hour]:
                omni.track_many([{**item, "timestamp": clock.now()} for item in plan[hour]])
            _buy(omni, rng, carts, clock, providers, stats, hour)
            due = omni.next_due()  # like an app's scheduler: wake the runtime only when work is due
            if due is not None and due <= clock.now():
                omni.run_until_idle()
        if day == DAYS // 2:  # the sold-out products come back: their waiting viewers hear first
            for sku in SOLD_OUT:
                omni.catalog.set_inventory(sku, "online", 3)
            stats["products restocked"] += len(SOLD_OUT)
        _engage(omni, rng, providers, clock, stats)
        progress.advance()
    clock.set(START + timedelta(days=DAYS))
    omni.run_until_idle()
    progress.finish()
    return stats


def _buy(omni: Omni, rng: random.Random, carts: dict[str, str], clock: VirtualClock, providers: DemoProviders,
         stats: Counter[str], hour: int) -> None:
    """Some carts are bought online, some in store (a signed Square webhook naming only the email)."""
    if not 9 <= hour <= 20:
        return
    for cid in [c for c in list(carts) if rng.random() < 0.03]:
        product = carts.pop(cid)
        order_id = f"o-{rng.getrandbits(40):010x}"
        if rng.random() < 0.4:
            email = omni.customer(cid).email
            payment = {"id": f"pay-{order_id}", "status": "COMPLETED", "order_id": order_id,
                       "buyer_email_address": email, "location_id": providers.square.location_id,
                       "amount_money": {"amount": round(PRICES[product] * 100), "currency": "USD"},
                       "updated_at": clock.now().isoformat().replace("+00:00", "Z")}
            url, headers, body = providers.square_payment(payment, f"evt-{order_id}")
            if omni.handle_webhook("square", "POST", url, headers, body).status == 200:
                stats["in-store purchases (Square webhooks)"] += 1
            if rng.random() < 0.5:
                omni.track(cid, "Order Ready for Pickup", {"order_id": order_id, "store": "Acme SoHo"}, channel="pos")
                stats["pickups"] += 1
        else:
            channel = rng.choice(["web", "app"])
            omni.track(cid, "Checkout Started", {"cart_id": f"k-{cid}", "revenue": PRICES[product]}, channel=channel)
            omni.track(cid, "Order Completed", {"order_id": order_id, "revenue": PRICES[product],
                                                "product_id": product}, channel=channel)
            stats["online purchases"] += 1


def _engage(omni: Omni, rng: random.Random, providers: DemoProviders, clock: VirtualClock,
            stats: Counter[str]) -> None:
    """Receipts and engagement for the day's messages, as the providers would post them."""
    since = clock.timestamp() - 86400
    with omni.store.transaction(immediate=False) as tx:
        sent_today = sent_since(tx, since)
    events = []
    for sent in sent_today:
        delivery_id, channel, provider_message_id = sent.delivery_id, sent.channel, sent.provider_message_id
        if channel == "sms" and provider_message_id:
            url, headers, body = providers.twilio_status(provider_message_id, "delivered")
            omni.handle_webhook("twilio", "POST", url, headers, body)
            stats["webhooks"] += 1
        elif channel == "email":
            base = {"email": "x@example.com", "timestamp": int(clock.timestamp()),
                    "omnisdk_delivery_id": delivery_id, "sg_message_id": provider_message_id}
            events.append({**base, "event": "delivered", "sg_event_id": f"d-{delivery_id}"})
            if rng.random() < 0.35:
                events.append({**base, "event": "open", "sg_event_id": f"o-{delivery_id}"})
                if rng.random() < 0.3:
                    events.append({**base, "event": "click", "url": "https://acme.example/cart",
                                   "sg_event_id": f"c-{delivery_id}"})
            if rng.random() < 0.01:
                events.append({**base, "event": "unsubscribe", "sg_event_id": f"u-{delivery_id}"})
    for start in range(0, len(events), 500):
        url, headers, body = providers.sendgrid_events(events[start : start + 500], clock.timestamp())
        omni.handle_webhook("sendgrid", "POST", url, headers, body)
        stats["webhooks"] += 1


def _summary(omni: Omni, providers: DemoProviders, stats: Counter[str], elapsed: float) -> None:
    with omni.store.transaction(immediate=False) as tx:
        per_channel = count_by(tx, "deliveries")
        per_journey = count_by(tx, "journey_runs")
        touch = touchpoints_by_channel(tx)
        merges = merge_count(tx)
        pos_exits = runs_exited_by(tx, "cart-abandonment", "pos", "Order Completed")
    print("\nTouchpoints by channel: " + ", ".join(f"{c} {n:,}" for c, n in touch))
    print(f"Profiles stitched from several identifiers: {merges:,}")
    _table("Deliveries by channel and status", per_channel)
    _table("Journey runs by status", per_journey)
    reasons = Counter(d.decisions[-1].reason.split(" (")[0] for d in omni.deliveries(status="skipped")
                      if d.decisions)
    if reasons:
        _table("Why messages were not sent (the decision log's top reasons)", reasons.most_common(5))
    print("\nOmnichannel moments")
    for key, value in sorted(stats.items()):
        print(f"  {key:<40} {value:>7,}")
    print(f"  {'cart journeys ended by an in-store buy':<40} {pos_exits:>7,}")
    sent = {type(p).__name__.removesuffix("Imitation"): len(p.requests) for p in providers.imitations()}
    print("Requests the provider imitations served: " + ", ".join(f"{k} {v:,}" for k, v in sent.items()))
    violations = sum(len(p.violations) for p in providers.imitations())
    print(f"Requests that broke a provider's API contract: {violations}")
    print(f"\nDone in {elapsed:.1f} s.")


def _predicted_value(omni: Omni) -> None:
    """BG/NBD + Gamma-Gamma on every purchase, online and in store, and who the win-back offer is for."""
    try:
        run = omni.predict_value()
    except OmniError as exc:  # e.g. too few repeat buyers for the fit to converge
        print(f"\nPredicted customer value: not fitted ({exc})")
        return
    if run.model is None:
        return
    bg, gg = run.model.purchases, run.model.spend
    print(f"\nPredicted customer value ({run.rescored:,} customers scored; BG/NBD r={bg.r:.3f} alpha={bg.alpha:.2f} "
          f"a={bg.a:.3f} b={bg.b:.3f}, Gamma-Gamma p={gg.p:.2f} q={gg.q:.2f} gamma={gg.gamma:.2f})")
    for label, condition in (("likely to churn (churn_risk > 0.7)", churn_risk() > 0.7),
                             ("worth a coupon (predicted_clv > 100)", predicted_clv() > 100),
                             ("both", (churn_risk() > 0.7) & (predicted_clv() > 100))):
        print(f"  {label:<40} {omni.segment(condition).count():>7,}")


def _table(title: str, rows: Sequence[tuple[Any, ...]]) -> None:
    print(f"\n{title}")
    for row in rows:
        *labels, count = row
        print("  " + "".join(f"{str(x)[:60]:<22}" for x in labels) + f"{count:>8,}")


def _write_report(omni: Omni, path: str) -> None:
    report = omni.report(html=path)
    channels = sorted({c for result in report.attribution.values() for c in result.channels})
    models = [m for m in ("last_touch", "linear", "position_based", "markov") if m in report.attribution]
    print("\nConversions credited to each channel, by attribution model")
    print("  " + f"{'channel':<14}" + "".join(f"{m:>16}" for m in models))
    for channel in channels:
        cells = "".join(f"{report.attribution[m].conversions.get(channel, 0.0):>16,.1f}" for m in models)
        print(f"  {channel:<14}{cells}")
    for series in report.experiments:
        if series.result is not None:
            print(f"\nExperiment {series.name} (against {series.control}): {series.result.decision}"
                  + (f", winner {series.result.winner}" if series.result.winner else ""))
            for variant in series.result.variants:
                print(f"  {variant.name:<14}{variant.exposures:>7,} exposed {variant.conversion_rate:>8.1%} converted")
    print(f"\nThe full report (channel mix, funnel, attribution, journeys, experiments): {path}")
