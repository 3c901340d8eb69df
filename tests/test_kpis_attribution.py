"""`omni.attribution`: the models over the store's touchpoints, on both stores.

Timelines (hours after t0), conversions are "Order Completed", lookback 30 days:
- c-1: email sent (message d1) 0, the same email opened 1, web view 2, order on the web 3 (100)
  → path email > web, converting, 100 (the open is the same message: one touch)
- c-2: SMS sent (d2) 0, order at the POS 1 (50)                     → sms, converting, 50
- c-3: order at the POS 0 (30), no touch before                    → pos, converting, 30
- c-4: email sent (d3) 0                                            → email, not converting
- c-5: segment entry and web view 0, POS order 40 days later (60)  → web not converting; pos converting, 60
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from omnisdk import Omni, ValidationError, VirtualClock
from omnisdk.analytics import REPORT_MODELS, Path, attribute, attributions

T0 = VirtualClock().timestamp()
HOUR = 3600.0
DAY = 24 * HOUR


@pytest.fixture
def shop(omni: Omni) -> Omni:
    events = [
        ("c-1", "Message Sent", "email", 0, {"delivery_id": "d1"}),
        ("c-1", "Message Opened", "email", HOUR, {"delivery_id": "d1"}),
        ("c-1", "Product Viewed", "web", 2 * HOUR, {}),
        ("c-1", "Order Completed", "web", 3 * HOUR, {"revenue": 100}),
        ("c-2", "Message Sent", "sms", 0, {"delivery_id": "d2"}),
        ("c-2", "Order Completed", "pos", HOUR, {"revenue": 50.0}),
        ("c-3", "Order Completed", "pos", 0, {"revenue": 30.0}),
        ("c-4", "Message Sent", "email", 0, {"delivery_id": "d3"}),
        ("c-5", "Segment Entered", "server", 0, {"segment": "vip"}),
        ("c-5", "Product Viewed", "web", 0, {}),
        ("c-5", "Order Completed", "pos", 40 * DAY, {"revenue": 60.0}),
    ]
    omni.track_many({"who": cid, "event": event, "channel": channel, "timestamp": T0 + at, "properties": props}
                    for cid, event, channel, at, props in events)
    return omni


PATHS = [
    Path(("email", "web"), 1, 100.0, 0, ages=(3 / 24, 1 / 24)),
    Path(("sms",), 1, 50.0, 0, ages=(1 / 24,)),
    Path(("pos",), 1, 30.0, 0, ages=(0.0,)),
    Path(("email",), 0, 0.0, 1, ages=(0.0,)),
    Path(("web",), 0, 0.0, 1, ages=(0.0,)),
    Path(("pos",), 1, 60.0, 0, ages=(0.0,)),
]


def test_rule_based_models_by_hand(shop: Omni) -> None:
    first = shop.attribution("first_touch")
    assert dict(first.conversions) == {"email": 1.0, "web": 0.0, "sms": 1.0, "pos": 2.0}
    assert dict(first.value) == {"email": 100.0, "web": 0.0, "sms": 50.0, "pos": 90.0}
    last = shop.attribution("last_touch")
    assert dict(last.value) == {"email": 0.0, "web": 100.0, "sms": 50.0, "pos": 90.0}
    linear = shop.attribution("linear")  # the open adds no second email touch: 1/2 each, not 2/3 to email
    assert dict(linear.conversions) == {"email": 0.5, "web": 0.5, "sms": 1.0, "pos": 2.0}


def test_every_model_matches_the_same_paths_given_directly(shop: Omni) -> None:
    results = attributions(shop.store, REPORT_MODELS, params={"time_decay": {"half_life": 0.1}})

    assert tuple(results) == REPORT_MODELS
    for model, result in results.items():
        params = {"half_life": 0.1} if model == "time_decay" else {}
        expected = attribute(PATHS, model, **params)
        assert dict(result.conversions) == pytest.approx(dict(expected.conversions)), model
        assert dict(result.value) == pytest.approx(dict(expected.value)), model
        assert result.total_conversions == pytest.approx(4.0)
    markov = results["markov"]
    assert markov.removal_effects == pytest.approx(attribute(PATHS, "markov").removal_effects)


def test_lookback_touches_and_period(shop: Omni) -> None:
    # a 60-day lookback puts c-5's web view on its POS order's path
    wide = shop.attribution("first_touch", lookback=timedelta(days=60))
    assert dict(wide.conversions) == {"email": 1.0, "web": 1.0, "sms": 1.0, "pos": 1.0}
    # only clicks and opens count as touches: c-1's path is the open alone
    engaged = shop.attribution("last_touch", touches=["Message Opened", "Link Clicked"])
    assert dict(engaged.conversions) == {"email": 1.0, "pos": 3.0}
    assert engaged.value["email"] == 100.0
    late = shop.attribution("last_touch", since=T0 + 2 * DAY)
    assert dict(late.conversions) == {"pos": 1.0}


def test_bad_attribution_arguments(shop: Omni) -> None:
    with pytest.raises(ValidationError, match="models: unknown model 'magic'"):
        shop.attribution("magic")
    with pytest.raises(ValidationError, match="model: expected one model name"):
        shop.attribution(["linear"])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="half_life"):
        shop.attribution("time_decay", half_life=-1)
    with pytest.raises(ValidationError, match="lookback"):
        shop.attribution("linear", lookback=timedelta(0))


def test_markov_of_higher_order_and_an_empty_store(omni: Omni) -> None:
    assert omni.attribution("markov", order=2).conversions == {}
    assert omni.attribution("time_decay").total_value == 0.0
