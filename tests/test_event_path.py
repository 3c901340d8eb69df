"""One event path: every writer's touchpoints reach `touchpoint_recorded` once each, after they are
stored, and never when the transaction that wrote them rolled back. On both stores."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from omnisdk import BatchValidationError, NotFoundError, Omni, VirtualClock, hookimpl
from omnisdk.segments import trait


class Listener:
    """Hears every touchpoint and checks, as it hears it, that the touchpoint is already stored."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, str, str]] = []
        self.stored_when_heard: list[bool] = []

    @hookimpl
    def touchpoint_recorded(self, touchpoint: Any, omni: Any) -> None:
        self.heard.append((touchpoint.id, touchpoint.customer_id, touchpoint.name))
        self.stored_when_heard.append(touchpoint.id in {t.id for t in omni.timeline(touchpoint.customer_id)})

    def names(self) -> list[str]:
        return [name for _, _, name in self.heard]


@pytest.fixture
def listener() -> Listener:
    return Listener()


@pytest.fixture
def shop(store_url: str, clock: VirtualClock, listener: Listener) -> Iterator[Omni]:
    with Omni(store_url, clock=clock, plugins=[listener], load_entry_points=False) as client:
        yield client


def stored_ids(omni: Omni, *customers: str) -> list[str]:
    return [t.id for c in customers for t in omni.timeline(c)]


def test_track_is_announced_once_after_it_is_stored(shop: Omni, listener: Listener) -> None:
    first = shop.track("c-1", "Product Viewed", {"sku": "a"}, channel="web", id="tp-1")
    shop.track("c-1", "Product Viewed", {"sku": "a"}, channel="web", id="tp-1")  # the same touchpoint again
    shop.track({"email": "ada@example.com"}, "Signed Up")

    assert [tp_id for tp_id, _, _ in listener.heard][:1] == [first.id]
    assert listener.names() == ["Product Viewed", "Signed Up"]
    assert all(listener.stored_when_heard)
    assert sorted(i for i, _, _ in listener.heard) == sorted(stored_ids(shop, "c-1", listener.heard[1][1]))


def test_track_many_announces_each_new_touchpoint_once(shop: Omni, listener: Listener) -> None:
    shop.track("c-1", "Cart Viewed", id="old")
    listener.heard.clear()
    items: list[Any] = [
        {"who": "c-1", "event": "Product Added", "id": "a"},
        {"who": "c-2", "event": "Product Added", "id": "b"},
        {"who": "c-2", "event": "Product Added", "id": "b"},  # twice in one batch: stored once
        {"who": "c-1", "event": "Cart Viewed", "id": "old"},  # already stored
        ("c-3", "Order Completed", {"revenue": 5.0}),
        {"who": "c-3", "event": ""},  # invalid: left out and reported
    ]
    with pytest.raises(BatchValidationError) as caught:
        shop.track_many(items)

    assert caught.value.recorded == 3
    heard = Counter(tp_id for tp_id, _, _ in listener.heard)
    assert len(heard) == 3 and set(heard.values()) == {1}
    assert {"a", "b"} <= set(heard) and "old" not in heard
    assert all(listener.stored_when_heard)
    assert sorted(heard) == sorted(set(stored_ids(shop, "c-1", "c-2", "c-3")) - {"old"})


def test_segment_entries_and_exits_are_announced(shop: Omni, listener: Listener, clock: VirtualClock) -> None:
    shop.identify("gold", traits={"tier": "gold"})
    shop.identify("silver", traits={"tier": "silver"})
    shop.watch_segment("gold-tier", trait("tier") == "gold")
    shop.run_until_idle()
    shop.identify("gold", traits={"tier": "silver"})
    shop.identify("silver", traits={"tier": "gold"})
    clock.advance(hours=2)
    shop.run_until_idle()

    segment_events = [(cid, name) for _, cid, name in listener.heard if name.startswith("Segment")]
    assert segment_events[0] == ("gold", "Segment Entered")  # the second refresh: an entry and an exit, once each
    assert sorted(segment_events[1:]) == [("gold", "Segment Exited"), ("silver", "Segment Entered")]
    assert all(listener.stored_when_heard)
    stored = [t.id for c in ("gold", "silver") for t in shop.timeline(c) if t.name.startswith("Segment")]
    assert sorted(stored) == sorted(i for i, _, name in listener.heard if name.startswith("Segment"))


def test_a_rolled_back_transaction_announces_nothing(shop: Omni, listener: Listener, clock: VirtualClock) -> None:
    core = shop._core
    now = clock.timestamp()
    with pytest.raises(RuntimeError), core.store.transaction() as tx:
        cid = core.identity.resolve_who(tx, "c-9", now)
        core.recorder.touchpoints(tx, [("tp-x", cid, "server", "Order Completed", "{}", now, now)])
        raise RuntimeError("the writer fails after storing")

    assert listener.heard == []
    with pytest.raises(NotFoundError):  # nothing of it was kept, not even the profile
        shop.timeline("c-9")


def test_a_rolled_back_segment_refresh_announces_nothing(
    shop: Omni, listener: Listener, clock: VirtualClock
) -> None:
    shop.identify("gold", traits={"tier": "gold"})
    segment = shop.watch_segment("gold-tier", trait("tier") == "gold")
    core = shop._core
    with pytest.raises(RuntimeError), core.store.transaction() as tx:
        segment.refresh(tx, clock.timestamp(), core.recorder)
        raise RuntimeError("the refresh fails")

    assert listener.heard == []
    assert [t for t in shop.timeline("gold") if t.name.startswith("Segment")] == []
    clock.advance(timedelta(seconds=1))
    shop.run_until_idle()  # the next refresh records the entry, once
    assert [name for _, _, name in listener.heard] == ["Segment Entered"]


def test_a_failing_listener_neither_loses_the_event_nor_silences_the_others(
    store_url: str, clock: VirtualClock, listener: Listener
) -> None:
    class Failing:
        @hookimpl
        def touchpoint_recorded(self, touchpoint: Any) -> None:
            raise RuntimeError("a listener's bug")

    # pluggy calls the last registered plugin first: the failing one goes before `listener`
    with Omni(store_url, clock=clock, plugins=[listener, Failing()], load_entry_points=False) as shop:
        shop.track("c-1", "Product Viewed", id="tp-1")
        shop.track_many([("c-1", "Cart Viewed")])
        assert [t.name for t in shop.timeline("c-1")] == ["Product Viewed", "Cart Viewed"]

    assert listener.names() == ["Product Viewed", "Cart Viewed"]
