"""AsyncOmni: the same API with async methods; store calls run off the event loop."""

from __future__ import annotations

import asyncio

from omnisdk import AsyncOmni, VirtualClock


def test_async_client_tracks_and_stitches(store_url: str) -> None:
    async def scenario() -> list[tuple[str, str]]:
        async with AsyncOmni(store_url, clock=VirtualClock()) as omni:
            await omni.track({"anonymous_id": "a-1"}, "Product Viewed", {"product_id": "p1"}, channel="app")
            await omni.identify("c-1", anonymous_id="a-1", email="grace@example.com")
            await omni.consent("c-1", channel="email", granted=True)
            added = await omni.track_many([("c-1", "Product Added", {"product_id": "p1"})] * 3)
            assert added == 3
            customer = await omni.customer("c-1")
            assert customer.has_consent("email")
            return [(t.channel, t.name) for t in await omni.timeline("c-1")]

    assert asyncio.run(scenario()) == [("app", "Product Viewed")] + [("server", "Product Added")] * 3
