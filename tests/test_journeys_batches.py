"""A batch of runs writes set-based, on both stores: its messages, step memos and new states cost
the same statements whatever the batch's size, and a message whose key is already queued sends
the batch down the careful path, where the step keeps the delivery that was there."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from omnisdk import JourneyContext, Omni, VirtualClock, journey
from omnisdk.delivery import enqueue_delivery


@journey("batched", version="1", trigger="Signed Up")
async def batched(ctx: JourneyContext) -> None:
    await ctx.send("first", "batched-first", channel="email")
    await ctx.sleep("pause", timedelta(days=1))
    await ctx.send("second", "batched-second", channel="email")


def _statements_to_park_and_complete(omni: Omni, clock: VirtualClock, prefix: str, customers: int) -> int:
    """SQL statements the journey runtime runs to park `customers` new runs and then complete them."""
    omni.track_many([(f"{prefix}{i}", "Signed Up", {}) for i in range(customers)])
    runtime = omni._core.journeys
    before = omni.store.activity.statements
    asyncio.run(runtime.tick())
    clock.advance(days=1, seconds=1)
    asyncio.run(runtime.tick())
    return omni.store.activity.statements - before


def test_a_batch_costs_the_same_statements_for_3_runs_as_for_60(store_url: str, clock: VirtualClock) -> None:
    with Omni(store_url, clock=clock, load_entry_points=False) as omni:
        omni.register(batched)
        few = _statements_to_park_and_complete(omni, clock, "a", 3)
        many = _statements_to_park_and_complete(omni, clock, "b", 60)
        assert len(omni.runs(status="completed", limit=100)) == 63
        assert len(omni.deliveries(limit=200)) == 2 * 63
    assert many == few


def test_a_step_whose_message_key_is_taken_keeps_the_queued_delivery(store_url: str, clock: VirtualClock) -> None:
    with Omni(store_url, clock=clock, load_entry_points=False) as omni:
        omni.register(batched)
        omni.track("ada", "Signed Up")
        omni.track("bob", "Signed Up")
        runtime = omni._core.journeys
        runtime.route()
        ada = omni.runs(customer_id="ada")[0]
        with omni.store.transaction() as tx:  # queued under the step's key before the step ran
            taken = enqueue_delivery(tx, key=f"{ada.id}:first", customer_id="ada", template="batched-first",
                                     channels=["email"], now=clock.timestamp(), run_id=ada.id, journey="batched",
                                     step="first")
        omni.run_until_idle()
        clock.advance(days=1, seconds=1)
        omni.run_until_idle()
        assert [(d.id, d.step) for d in omni.deliveries(customer_id="ada")][:1] == [(taken, "first")]
        assert sorted(d.step or "" for d in omni.deliveries(customer_id="ada")) == ["first", "second"]
        assert sorted(d.step or "" for d in omni.deliveries(customer_id="bob")) == ["first", "second"]
        assert {r.status for r in omni.runs()} == {"completed"}
