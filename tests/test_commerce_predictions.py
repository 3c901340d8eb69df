"""Predicted customer value persisted in the store (`omni.predict_value`), on SQLite and PostgreSQL.

The CDNOW sample (from the `lifetimes` wheel, as in test_commerce_clv.py) is ingested as Order Completed
touchpoints, half of them from the POS; what the store holds must equal the models computed directly on the
same orders with `summarize_purchases` and `ValueModel`, and the parameters must be the published ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pytest import approx

from omnisdk import ConfigError, Omni, ValidationError, VirtualClock
from omnisdk.commerce import BetaGeo, GammaGamma, ValueModel, summarize_purchases

lifetimes = pytest.importorskip("lifetimes", reason="the CDNOW data comes with the test extra")

DATA = Path(lifetimes.__file__).parent / "datasets"
CALIBRATION_END = date(1997, 9, 30)
#: Fader, Hardie and Lee (2005): BG/NBD and Gamma-Gamma on CDNOW (a fixed model for the small tests).
PUBLISHED = ValueModel(BetaGeo(0.243, 4.414, 0.793, 2.426), GammaGamma(6.25, 3.74, 15.44))
FIELDS = ("expected_purchases", "probability_alive", "churn_risk", "expected_order_value", "predicted_clv")


def cdnow_orders() -> dict[str, list[tuple[datetime, float]]]:
    orders: dict[str, list[tuple[datetime, float]]] = {}
    for line in (DATA / "CDNOW_sample.txt").read_text().splitlines():
        _, customer, day, _, value = line.split()
        when = datetime.strptime(day, "%Y%m%d").replace(hour=12, tzinfo=UTC)
        if when.date() <= CALIBRATION_END:
            orders.setdefault(f"cd-{int(customer):05d}", []).append((when, float(value)))
    return orders


def ingest(omni: Omni, orders: dict[str, list[tuple[datetime, float]]]) -> None:
    omni.track_many([
        {"who": cid, "event": "Order Completed", "properties": {"order_id": f"{cid}-{i}", "revenue": value},
         "channel": "pos" if i % 2 else "web", "timestamp": when}
        for cid, items in orders.items() for i, (when, value) in enumerate(items)
    ])


def direct(model: ValueModel, orders: dict[str, list[tuple[datetime, float]]], end: datetime) -> dict[str, object]:
    summaries = {cid: summarize_purchases(items, end=end, unit="weeks") for cid, items in orders.items()}
    return dict(model.predict({cid: s for cid, s in summaries.items() if s is not None}))


def stored(omni: Omni, cid: str) -> dict[str, float]:
    prediction = omni.predictions(cid)
    assert prediction is not None, cid
    return {f: getattr(prediction, f) for f in FIELDS}


@pytest.fixture
def cdnow_clock() -> VirtualClock:
    return VirtualClock(datetime(1997, 9, 30, 23, 0, tzinfo=UTC))


@pytest.fixture
def cdnow(store_url: str, cdnow_clock: VirtualClock) -> Iterator[tuple[Omni, dict[str, list[tuple[datetime, float]]]]]:
    orders = cdnow_orders()
    with Omni(store_url, clock=cdnow_clock, load_entry_points=False) as omni:
        ingest(omni, orders)
        yield omni, orders


def test_a_fit_on_stored_purchases_reproduces_cdnow_and_the_direct_computation(
    cdnow: tuple[Omni, dict[str, list[tuple[datetime, float]]]], cdnow_clock: VirtualClock,
) -> None:
    omni, orders = cdnow
    run = omni.predict_value()
    assert run.refit and run.rescored == len(orders) == 2357
    assert run.model is not None
    bg, gg = run.model.purchases, run.model.spend
    assert (bg.r, bg.alpha, bg.a, bg.b) == approx((0.243, 4.414, 0.793, 2.426), rel=0.01)
    assert (gg.p, gg.q, gg.gamma) == approx((6.25, 3.74, 15.44), rel=0.01)
    end = cdnow_clock.now()
    summaries = [s for items in orders.values() if (s := summarize_purchases(items, end=end)) is not None]
    again = ValueModel.fit(summaries)
    assert (again.purchases, again.spend) == (approx(bg), approx(gg))  # same summaries, same optimum
    expected = direct(run.model, orders, end)
    for cid in list(orders)[::50]:
        assert stored(omni, cid) == approx({f: getattr(expected[cid], f) for f in FIELDS}, rel=1e-12)
    prediction = omni.predictions("cd-00001")
    assert prediction is not None and prediction.horizon_days == approx(365.25)
    assert omni.customer("cd-00001").predicted_clv == prediction.predicted_clv


@pytest.fixture
def shop(omni: Omni, clock: VirtualClock) -> Omni:
    for i, cid in enumerate(("ann", "bob", "cy", "dee")):
        for k in range(i + 1):
            omni.track(cid, "Order Completed", {"order_id": f"{cid}-{k}", "revenue": 20.0 + 10 * k},
                       channel="pos" if k % 2 else "web", timestamp=clock.now() - timedelta(days=30 * (k + 1)))
    omni.identify("eve", email="eve@example.com")  # never bought: never scored
    return omni


def test_only_customers_who_bought_since_the_last_run_are_rescored(shop: Omni, clock: VirtualClock) -> None:
    first = shop.predict_value(model=PUBLISHED)
    assert (first.refit, first.rescored) == (True, 4)
    assert shop.predictions("eve") is None
    before = {cid: shop.predictions(cid) for cid in ("ann", "bob", "cy", "dee")}
    clock.advance(days=3)
    shop.track("bob", "Order Completed", {"order_id": "bob-new", "revenue": 55.0}, channel="pos")
    shop.track("ann", "Product Viewed", {"product_id": "sku-1"}, channel="web")  # not a purchase
    again = shop.predict_value()
    assert (again.refit, again.rescored, again.model_id) == (False, 1, first.model_id)
    for cid in ("ann", "cy", "dee"):
        assert shop.predictions(cid) == before[cid]  # not rescored
    bob = shop.predictions("bob")
    assert bob is not None and bob != before["bob"]
    orders = [(tp.occurred_at, float(tp.properties["revenue"])) for tp in shop.timeline("bob")]
    assert stored(shop, "bob") == approx({f: getattr(direct(PUBLISHED, {"bob": orders}, clock.now())["bob"], f)
                                          for f in FIELDS}, rel=1e-12)
    assert shop.predict_value().rescored == 0


def test_the_models_are_refitted_on_schedule_and_when_asked(store_url: str, clock: VirtualClock) -> None:
    config = {"predictions": {"refit_every": 86400 * 7, "batch_size": 300}}
    with Omni(store_url, clock=clock, config=config, load_entry_points=False) as omni:
        orders = cdnow_orders()
        shifted = {cid: [(clock.now() - (datetime(1997, 9, 30, 23, tzinfo=UTC) - when), value)
                         for when, value in items] for cid, items in orders.items()}
        ingest(omni, shifted)
        first = omni.predict_value()
        assert first.refit and first.rescored == 2357  # in batches of 300
        clock.advance(days=1)
        assert omni.predict_value().refit is False
        assert omni.predict_value(refit=True).refit is True
        clock.advance(days=8)
        later = omni.predict_value()
        assert later.refit and later.model_id is not None and first.model_id is not None
        assert later.model_id > first.model_id


def test_a_merge_rescores_the_surviving_profile_on_both_profiles_purchases(shop: Omni, clock: VirtualClock) -> None:
    for days in (50, 5):  # bought at the till with a phone number, before signing up online
        shop.track({"phone": "+14155550123"}, "Order Completed", {"revenue": 40.0}, channel="pos",
                   timestamp=clock.now() - timedelta(days=days))
    shop.predict_value(model=PUBLISHED)
    assert shop.predict_value().rescored == 0
    shop.identify("cy", phone="+14155550123")  # the same person: the profiles merge
    survivor = shop.customer("cy").id
    merged = shop.predictions(survivor)
    assert merged is not None and merged.stale
    run = shop.predict_value()
    assert run.rescored == 1
    orders = [(tp.occurred_at, float(tp.properties["revenue"])) for tp in shop.timeline(survivor)
              if tp.name == "Order Completed"]
    assert len(orders) == 3 + 2
    expected = direct(PUBLISHED, {survivor: orders}, clock.now())[survivor]
    assert stored(shop, survivor) == approx({f: getattr(expected, f) for f in FIELDS}, rel=1e-12)
    assert not shop.predictions(survivor).stale  # type: ignore[union-attr]


def test_the_worker_rescores_every_interval(store_url: str, clock: VirtualClock) -> None:
    config = {"predictions": {"every": 3600}}
    with Omni(store_url, clock=clock, config=config, load_entry_points=False) as omni:
        omni.track("ann", "Order Completed", {"revenue": 30.0}, timestamp=clock.now() - timedelta(days=40))
        omni.track("ann", "Order Completed", {"revenue": 50.0}, timestamp=clock.now() - timedelta(days=10))
        omni.predict_value(model=PUBLISHED)
        omni.track("bob", "Order Completed", {"revenue": 25.0}, channel="pos")
        omni.run_until_idle()
        assert omni.predictions("bob") is None  # the last run was just now: the next is due in an hour
        clock.advance(minutes=61)
        omni.run_until_idle()
        assert omni.predictions("bob") is not None
        assert omni.next_due() is not None


def test_nothing_to_score_and_bad_settings(omni: Omni, store_url: str) -> None:
    run = omni.predict_value()
    assert (run.model, run.rescored) == (None, 0)
    with pytest.raises(ValidationError, match="no fitted model"):
        omni.predict_value(refit=False)
    with pytest.raises(ValidationError, match="weeks"):
        omni.predict_value(model=ValueModel(PUBLISHED.purchases, PUBLISHED.spend, unit="days"))
    for section, field in (({"horizon": 3}, "predictions.horizon"), ({"batch_size": 0}, "predictions.batch_size"),
                           ({"unit": "months"}, "predictions.unit"),
                           ({"timezone": "Mars/Base"}, "predictions.timezone"),
                           ({"every": "hourly"}, "predictions.every")):
        # refused at start when the worker is on, else at the first run
        with pytest.raises(ConfigError) as caught, Omni(store_url, config={"predictions": section},
                                                         load_entry_points=False) as bad:
            bad.predict_value()
        assert caught.value.field == field


@pytest.fixture
def scored(store_url: str, clock: VirtualClock) -> Iterator[Omni]:
    """Twelve customers with one to four purchases, recent or long ago, scored with the published model;
    all with e-mail consent, and one who never bought."""
    config = {"channels": {"email": {"provider": "memory"}}}
    with Omni(store_url, clock=clock, config=config, load_entry_points=False) as omni:
        for i in range(12):
            cid = f"c{i:02d}"
            omni.identify(cid, email=f"{cid}@example.com", traits={"first_name": cid.upper()})
            omni.consent(cid, channel="email", granted=True)
            for k in range(1 + i % 4):
                omni.track(cid, "Order Completed", {"revenue": 15.0 + 12 * i},
                           channel="pos" if (i + k) % 2 else "web",
                           timestamp=clock.now() - timedelta(days=7 * (i % 5) * (k + 1) + 30 * (i // 4)))
        omni.identify("never", email="never@example.com")
        omni.consent("never", channel="email", granted=True)
        omni.predict_value(model=PUBLISHED)
        yield omni


def predicted(omni: Omni, field: str) -> dict[str, float]:
    values = {}
    for cid in [f"c{i:02d}" for i in range(12)] + ["never"]:
        prediction = omni.predictions(cid)
        if prediction is not None:
            values[cid] = getattr(prediction, field)
    return values


@pytest.mark.parametrize("field", ["predicted_clv", "churn_risk", "expected_purchases", "probability_alive"])
def test_segment_membership_follows_the_stored_predictions(scored: Omni, field: str) -> None:
    from omnisdk import segments

    values = predicted(scored, field)
    assert len(values) == 12 and len(set(values.values())) > 3
    threshold = sorted(values.values())[5]
    measure = getattr(segments, field)()
    assert sorted(scored.segment(measure > threshold).customers()) == sorted(
        cid for cid, v in values.items() if v > threshold)
    assert sorted(scored.segment(measure <= threshold).customers()) == sorted(
        cid for cid, v in values.items() if v <= threshold)  # "never" has no prediction: in neither
    both = (segments.predicted_clv() > 0) & (measure > threshold)
    assert scored.segment(both).count() == sum(v > threshold for v in values.values())


def test_a_broadcast_to_churn_risk_above_a_threshold_reaches_exactly_those_customers(scored: Omni) -> None:
    from omnisdk import Email, Message
    from omnisdk.segments import churn_risk

    risk = predicted(scored, "churn_risk")
    threshold = sorted(risk.values())[6]
    at_risk = {cid for cid, v in risk.items() if v > threshold}
    assert 0 < len(at_risk) < 12
    scored.templates.add(Message("win-back", email=Email(
        subject="We miss you, {{ customer.first_name }}",
        text="Your predicted value: {{ '%.2f' | format(customer.predicted_clv) }}; "
             "churn risk {{ (customer.churn_risk * 100) | round | int }}%")))
    scored.broadcast("win-back", churn_risk() > threshold, channel="email", name="win-back")
    scored.run_until_idle()
    sent = scored.provider("email").sent  # type: ignore[attr-defined]
    assert {m.customer_id for m in sent} == at_risk
    for message in sent:
        prediction = scored.predictions(message.customer_id)
        assert prediction is not None
        assert message.content.text == (f"Your predicted value: {prediction.predicted_clv:.2f}; "
                                        f"churn risk {round(prediction.churn_risk * 100)}%")


def test_templates_read_the_prediction_and_none_before_one(scored: Omni) -> None:
    from omnisdk import SMS, Message

    message = Message("vip", sms=SMS(text="{% if customer.predicted_clv is none %}welcome{% else %}"
                                          "CLV {{ customer.predicted_clv | round(1) }} over "
                                          "{{ customer.prediction.horizon_days | int }} days{% endif %}"))
    c03 = scored.customer("c03")
    rendered = scored.templates.render(message, "sms", scored.templates.context(c03))
    assert c03.prediction is not None
    assert rendered.text == f"CLV {round(c03.prediction.predicted_clv, 1)} over 365 days"
    never = scored.templates.render(message, "sms", scored.templates.context(scored.customer("never")))
    assert never.text == "welcome"


def test_a_fit_without_finite_predictions_is_refused_and_nothing_is_stored(shop: Omni) -> None:
    degenerate = ValueModel(BetaGeo(2.0, 19.0, 58728.0, 5369022.0), GammaGamma(4.5, 7.9, 80.0))  # a, b runaway
    with pytest.raises(ValidationError, match="no finite prediction"):
        shop.predict_value(model=degenerate)
    assert shop.predictions("ann") is None
    with pytest.raises(ValidationError, match="no fitted model"):
        shop.predict_value(refit=False)  # the refused fit was not stored
