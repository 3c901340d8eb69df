"""A small store for the dashboard's tests: a sent and a skipped message, a failed run, a stuck run, an overdue
queued delivery, a quarantined row, and hostile strings (traits, touchpoint properties) to escape.

`build(store_url)` returns the open client (virtual clock) and the ids the tests look for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from omnisdk import SMS, JourneyContext, Message, Omni, VirtualClock, journey

#: Markup in a trait, a property name and a property value: pages must show it as text.
HOSTILE = '<script>window.pwned=1</script>"><img src=x onerror="window.pwned=2">'
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _lookup_inventory() -> str:
    raise RuntimeError("inventory service down")


@journey("welcome", version="1", trigger="Signed Up")
async def welcome(ctx: JourneyContext) -> None:
    await ctx.send("hello", "hello", channel="sms")


@journey("restock", version="1", trigger="Back In Stock Requested")
async def restock(ctx: JourneyContext) -> None:
    await ctx.run("inventory", _lookup_inventory)


@journey("reminder", version="1", trigger="Cart Started")
async def reminder(ctx: JourneyContext) -> None:
    await ctx.sleep("pause", timedelta(hours=1))
    await ctx.send("nudge", "hello", channel="sms")


@attrs.frozen
class Scenario:
    omni: Omni
    clock: VirtualClock
    sent_delivery: str
    skipped_delivery: str
    failed_run: str
    stuck_run: str
    quarantined: int


def build(store_url: str, **options: Any) -> Scenario:
    clock = VirtualClock(START)
    omni = Omni(store_url, clock=clock, config={"channels": {"sms": {"provider": "memory"}}}, **options)
    omni.templates.add(Message("hello", sms=SMS(text="Hello {{ customer.first_name }}")))
    omni.register(welcome, restock, reminder)
    omni.identify("ada", email="Ada@Example.com", phone="+1 415-555-0100", traits={"first_name": HOSTILE})
    omni.consent("ada", channel="sms", granted=True, source="checkout-form")
    omni.identify("bob", email="bob@example.com", phone="+14155550101", traits={"first_name": "Bob"})
    omni.track("ada", "Product Viewed", {HOSTILE: HOSTILE}, channel="web")
    for cid in ("ada", "bob"):
        omni.track(cid, "Signed Up", channel="web")
    omni.track("bob", "Back In Stock Requested", {"product_id": "sku-1"}, channel="web")
    omni.run_until_idle()
    for _ in range(36):  # the failing step's retries, with backoff, in virtual time
        clock.advance(hours=1)
        omni.run_until_idle()
    omni.track("ada", "Cart Started", {"cart_id": "k1"}, channel="web")
    omni.run_until_idle()
    omni.send("ada", "hello", channel="sms", idempotency_key="overdue-1")  # queued; nobody runs the worker now
    clock.advance(hours=3)  # the reminder's pause ran out 2 h ago: a stuck run
    with omni.store.transaction() as tx:
        tx.execute("UPDATE touchpoints SET properties = '[1]' WHERE customer_id = 'bob' AND name = 'Signed Up'")
    omni.timeline("bob")  # the read quarantines the row it cannot decode
    deliveries = {d.customer_id: d for d in omni.deliveries(journey="welcome")}
    failed = omni.runs(journey="restock", status="failed")
    stuck = omni.runs(journey="reminder", status="waiting")
    (quarantined,) = omni.quarantine()
    assert deliveries["ada"].status == "sent" and deliveries["bob"].status == "skipped", deliveries
    return Scenario(omni=omni, clock=clock, sent_delivery=deliveries["ada"].id,
                    skipped_delivery=deliveries["bob"].id, failed_run=failed[0].id, stuck_run=stuck[0].id,
                    quarantined=quarantined.id)
