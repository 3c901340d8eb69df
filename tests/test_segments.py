"""Segments over traits, consent and event history on any channel, on both stores."""

from __future__ import annotations

from datetime import timedelta

import pytest

from omnisdk import Omni, ValidationError, VirtualClock
from omnisdk.segments import consented, count, did, did_not, has, last_channel, total, trait


@pytest.fixture
def shop(omni: Omni, clock: VirtualClock) -> Omni:
    omni.identify("gold-buyer", email="g@example.com", traits={"tier": "gold", "age": 41})
    omni.identify("silver", phone="+14155550101", traits={"tier": "silver", "age": 29})
    omni.identify("lapsed", email="l@example.com", traits={"tier": "gold", "age": "unknown"})
    omni.consent("silver", channel="sms", granted=True)
    omni.consent("gold-buyer", channel="sms", granted=True)
    omni.consent("gold-buyer", channel="sms", granted=False)  # the latest entry wins
    omni.track("lapsed", "Order Completed", {"revenue": 300.0}, channel="web")
    clock.advance(days=100)
    omni.track("gold-buyer", "Order Completed", {"revenue": 120.0, "store": "soho"}, channel="pos")
    omni.track("gold-buyer", "Order Completed", {"revenue": 80.0}, channel="web")
    omni.track("silver", "Product Added", {"product_id": "sku-1"}, channel="app")
    omni.track("silver", "Message Delivered", {}, channel="sms")  # not engagement
    return omni


def members(omni: Omni, condition: object) -> list[str]:
    return sorted(omni.segment(condition).customers())  # type: ignore[arg-type]


def test_traits(shop: Omni) -> None:
    assert members(shop, trait("tier") == "gold") == ["gold-buyer", "lapsed"]
    assert members(shop, trait("age") >= 30) == ["gold-buyer"]
    assert members(shop, trait("age") < 30) == ["silver"]  # "unknown" is not a number, either way
    assert members(shop, trait("tier") != "gold") == ["silver"]


def test_event_history_with_windows(shop: Omni) -> None:
    recent = did("Order Completed", within=timedelta(days=30))
    assert members(shop, recent) == ["gold-buyer"]
    assert members(shop, did("Order Completed") & ~recent) == ["lapsed"]
    assert members(shop, did_not("Order Completed")) == ["silver"]
    assert members(shop, did("Order Completed", where={"store": "soho"})) == ["gold-buyer"]


def test_counts_and_sums(shop: Omni) -> None:
    assert members(shop, count("Order Completed") >= 2) == ["gold-buyer"]
    assert members(shop, total("Order Completed", "revenue") > 250) == ["lapsed"]
    assert members(shop, total("Order Completed", "revenue", within=timedelta(days=30)) >= 200) == ["gold-buyer"]


def test_consent_and_last_channel(shop: Omni) -> None:
    assert members(shop, consented("sms")) == ["silver"]
    assert members(shop, consented("sms", purpose="transactional")) == ["gold-buyer", "lapsed", "silver"]
    assert members(shop, last_channel() == "app") == ["silver"]
    assert members(shop, last_channel() == "web") == ["gold-buyer", "lapsed"]
    assert members(shop, has("phone") | (trait("tier") == "gold")) == ["gold-buyer", "lapsed", "silver"]


def test_count_and_streaming_agree(shop: Omni) -> None:
    segment = shop.segment(did("Order Completed") | consented("sms"))
    assert segment.count() == 3
    assert list(segment.customers(page=1)) == ["gold-buyer", "lapsed", "silver"]
    assert segment.contains("silver") and not shop.segment(trait("tier") == "bronze").contains("silver")


def test_watched_segment_entries_and_exits_are_touchpoints(shop: Omni, clock: VirtualClock) -> None:
    shop.watch_segment("recent-buyers", did("Order Completed", within=timedelta(days=7)))
    shop.run_until_idle()
    assert [t.name for t in shop.timeline("gold-buyer") if t.name.startswith("Segment")] == ["Segment Entered"]

    clock.advance(days=8)
    shop.run_until_idle()

    entered_exited = [(t.name, t.properties["segment"]) for t in shop.timeline("gold-buyer")
                      if t.name.startswith("Segment")]
    assert entered_exited == [("Segment Entered", "recent-buyers"), ("Segment Exited", "recent-buyers")]


def test_bad_keys_are_rejected() -> None:
    with pytest.raises(ValidationError) as err:
        trait("x'); DROP TABLE customers; --")
    assert err.value.field == "trait"
