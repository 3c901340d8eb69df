"""AsyncOmni: the same API with async methods; store calls run off the event loop."""

from __future__ import annotations

import asyncio
import inspect
from datetime import UTC, datetime

from omnisdk import AsyncOmni, Omni, VirtualClock
from omnisdk.segments import trait


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


def test_async_client_has_every_method_of_the_sync_one_with_its_parameters() -> None:
    for name, method in inspect.getmembers(Omni, inspect.isfunction):
        if name.startswith("_"):
            continue
        twin = getattr(AsyncOmni, "aclose" if name == "close" else name)
        sync_params = list(inspect.signature(method).parameters)
        async_params = list(inspect.signature(twin).parameters)
        assert sync_params == async_params[: len(sync_params)], name
        blocking = name not in {"register", "provider", "segment", "watch_segment"}
        assert inspect.iscoroutinefunction(twin) == blocking, name


def test_async_client_segments_and_next_due(store_url: str) -> None:
    start = datetime(2024, 5, 1, 12, tzinfo=UTC)

    async def scenario() -> tuple[int, datetime | None]:
        async with AsyncOmni(store_url, clock=VirtualClock(start=start)) as omni:
            await omni.identify("c-1", traits={"plan": "gold"})
            await omni.identify("c-2", traits={"plan": "free"})
            gold = omni.watch_segment("gold", trait("plan") == "gold")
            return await asyncio.to_thread(gold.count), await omni.next_due()

    assert asyncio.run(scenario()) == (1, start)
