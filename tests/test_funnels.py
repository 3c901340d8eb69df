"""Funnels: ordered steps within a window from the first, counted once per customer, on both stores.

Timelines (hours after t0), funnel Viewed → Added → Checkout → Order within 1 day:
- a: Viewed (web) 0, Added 1, Checkout 2, Order (pos) 3                → all four steps
- b: Viewed (app) 0, Added 2, Checkout 30                             → 2 (checkout is outside the day)
- c: Added 0, Viewed (web) 1, Added 5                                 → 2 (the first Added came before)
- d: Viewed (web) 0; again Viewed 48, Added 49, Checkout 50, Order 51 → 4 (its second attempt)
- f: Viewed (app) 0, Checkout 1                                       → 1 (never added)
- e: Order 0                                                          → not in the funnel
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from omnisdk import Omni, ValidationError, VirtualClock
from omnisdk.store._analytics import customer_pages

T0 = VirtualClock().timestamp()
HOUR = 3600.0
STEPS = ["Product Viewed", "Product Added", "Checkout Started", "Order Completed"]
VIEW, ADD, CHECKOUT, ORDER = STEPS
TIMELINES = {
    "a": [(VIEW, "web", 0), (ADD, "web", 1), (CHECKOUT, "web", 2), (ORDER, "pos", 3)],
    "b": [(VIEW, "app", 0), (ADD, "app", 2), (CHECKOUT, "app", 30)],
    "c": [(ADD, "web", 0), (VIEW, "web", 1), (ADD, "web", 5)],
    "d": [(VIEW, "web", 0), (VIEW, "web", 48), (ADD, "web", 49), (CHECKOUT, "web", 50), (ORDER, "web", 51)],
    "f": [(VIEW, "app", 0), (CHECKOUT, "app", 1)],
    "e": [(ORDER, "pos", 0)],
}


@pytest.fixture
def shop(omni: Omni) -> Omni:
    omni.track_many(
        {"who": cid, "event": event, "channel": channel, "timestamp": T0 + hours * HOUR, "properties": {}}
        for cid, events in TIMELINES.items() for event, channel, hours in events
    )
    omni.track("a", "Segment Entered", {"segment": "vip"})  # other events are ignored
    return omni


def _counts(steps: tuple[object, ...]) -> list[int]:
    return [step.customers for step in steps]  # type: ignore[attr-defined]


def test_counts_conversion_and_median_times(shop: Omni) -> None:
    result = shop.funnel(STEPS, within=timedelta(days=1))

    assert _counts(result.steps) == [5, 4, 2, 2]
    assert [s.from_previous for s in result.steps] == [1.0, 0.8, 0.5, 1.0]
    assert [s.from_first for s in result.steps] == [1.0, 0.8, 0.4, 0.4]
    # gaps Viewed→Added: a 1h, b 2h, c 4h, d 1h → median 1.5h
    assert [s.median_time for s in result.steps] == [None, timedelta(hours=1.5), timedelta(hours=1),
                                                     timedelta(hours=1)]
    assert result.conversion == 0.4
    assert result.breakdown == {}


def test_breakdown_by_the_channel_of_the_first_step(shop: Omni) -> None:
    result = shop.funnel(STEPS, within=timedelta(days=1), by="channel")

    assert {channel: _counts(steps) for channel, steps in result.breakdown.items()} == {
        "app": [2, 1, 0, 0],
        "web": [3, 3, 2, 2],
    }
    rows = result.as_dicts()
    assert rows[0] == {"channel": "all", "step": 1, "event": VIEW, "customers": 5, "from_previous": 1.0,
                       "from_first": 1.0, "median_seconds": None}
    assert len(rows) == 12


def test_a_wider_window_and_a_period(shop: Omni) -> None:
    assert _counts(shop.funnel(STEPS, within=timedelta(days=2)).steps) == [5, 4, 3, 2]  # b's checkout now counts
    # attempts must start in the period: only d's second one (and b's, c's first steps are earlier)
    late = shop.funnel(STEPS, within=timedelta(days=1), since=T0 + 47 * HOUR)
    assert _counts(late.steps) == [1, 1, 1, 1]
    early = shop.funnel(STEPS[:2], within=timedelta(days=1), until=T0 + 0.5 * HOUR)
    assert _counts(early.steps) == [4, 2]  # a, b, d, f start before 00:30 (c at 01:00); a and b add in a day


def test_repeated_events_need_two_occurrences(shop: Omni) -> None:
    assert _counts(shop.funnel([VIEW, VIEW], within=timedelta(days=3)).steps) == [5, 1]  # only d viewed twice


def test_bad_funnels_say_what_and_where(omni: Omni) -> None:
    with pytest.raises(ValidationError, match="steps: a funnel needs at least two steps"):
        omni.funnel(["Product Viewed"])
    with pytest.raises(ValidationError, match="steps: expected a list"):
        omni.funnel("Product Viewed")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"steps\[1\]"):
        omni.funnel(["Product Viewed", ""])
    with pytest.raises(ValidationError, match="within"):
        omni.funnel(STEPS, within=timedelta(seconds=-1))
    with pytest.raises(ValidationError, match="by: expected one of channel"):
        omni.funnel(STEPS, by="journey")


def test_an_empty_funnel(omni: Omni) -> None:
    result = omni.funnel(STEPS)
    assert _counts(result.steps) == [0, 0, 0, 0]
    assert result.conversion is None


@pytest.mark.parametrize("page", [1, 2, 3, 7, 100])
def test_pages_hold_whole_customers_in_order(shop: Omni, page: int) -> None:
    pages = list(customer_pages(shop.store, (VIEW, ADD, CHECKOUT, ORDER), page=page))  # not "Segment Entered"

    flat = [row for rows in pages for row in rows]
    assert [(row.customer_id, row.name) for row in flat] == [
        (cid, event) for cid in sorted(TIMELINES) for event, _, _ in sorted(TIMELINES[cid], key=lambda e: e[2])
    ]
    seen = [sorted({row.customer_id for row in rows}) for rows in pages]
    assert all(seen)
    assert sum(len(customers) for customers in seen) == len(TIMELINES)  # no customer split across pages
