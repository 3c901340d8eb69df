"""The fixtures omnisdk's pytest plugin gives every user: a journey proven over weeks in milliseconds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from omnisdk import SMS, Email, Message, journey
from omnisdk.journeys import JourneyContext


@journey("winback-test", version="1", trigger="Order Completed", exit_on=["Order Completed"])
async def winback(ctx: JourneyContext) -> None:
    if await ctx.wait_for("came-back", "Order Completed", timeout=timedelta(days=30)):
        return
    await ctx.send("miss-you", "miss-you", channel="email")
    await ctx.sleep("a-week", timedelta(days=7))
    await ctx.send("last-call", "last-call", channel="sms")


def test_journey_tester_fixture_runs_a_journey_over_weeks(journey_tester: Callable[..., Any]) -> None:
    config = {"channels": {"email": {"provider": "memory"}, "sms": {"provider": "memory"}}}
    tester = journey_tester(winback, config=config)
    tester.omni.templates.add(Message("miss-you", email=Email(subject="We miss you", text="Come back")))
    tester.omni.templates.add(Message("last-call", sms=SMS(text="Last call: 15% off")))
    tester.identify("c-1", email="ada@example.com", phone="+14155550100")
    tester.consent("c-1", "email")
    tester.consent("c-1", "sms")

    tester.emit("c-1", "Order Completed", {"revenue": 20.0}, channel="pos")
    tester.advance(days=29)
    assert tester.deliveries("c-1") == []
    tester.advance(days=2)
    tester.advance(days=8)

    assert [(d.template, d.channel, d.status) for d in tester.deliveries("c-1")] == [
        ("miss-you", "email", "sent"), ("last-call", "sms", "sent"),
    ]
    assert tester.statuses("c-1") == ["completed"]
