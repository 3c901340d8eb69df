"""KPIs per channel, provider, journey and step, on both stores, with numbers checkable by hand.

The story (clock starts at t0 = 2026-01-05 12:00 UTC):
- t0: the "cart" journey's "nudge" step queues an SMS to c-1, c-2 and c-3; c-3 gave no consent (skipped).
  Both SMS are sent (1 segment, $0.0075 each); c-1 clicks, c-2's is delivered.
- t0+30min: c-2 buys for 40 → the latest message to c-2 is its SMS.
- t0+1h: the "welcome" journey's "hello" step queues an email to c-1, c-2 and c-4 (c-4: no email consent).
  c-1's is delivered, opened twice, clicked, then c-1 unsubscribes; c-2's hard-bounces.
- t0+2h: c-1 buys for 50, t0+1d for 25 → both credited to c-1's email (latest message within 7 days).
- c-3 buys for 20 at t0+2h (no message was sent to c-3) and c-2 buys for 30 at t0+8d (its last
  message is older than the 7-day window): two unattributed conversions worth 50.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from dispatch_providers import Script, TestProviders, signed
from omnisdk import SMS, Email, Message, Omni, ValidationError, VirtualClock
from omnisdk.analytics import KPIRow
from omnisdk.delivery import enqueue_delivery

T0 = VirtualClock().timestamp()


def _queue(omni: Omni, journey: str, step: str, customers: list[str], channel: str) -> dict[str, str]:
    ids = {}
    with omni.store.transaction() as tx:
        for cid in customers:
            ids[cid] = enqueue_delivery(tx, key=f"run-{journey}-{cid}:{step}", customer_id=cid, template=journey,
                                        channels=[channel], now=omni.clock.timestamp(), run_id=f"run-{journey}-{cid}",
                                        journey=journey, step=step)
    omni.run_until_idle()
    return ids


def _webhook(omni: Omni, delivery_id: str, channel: str, *events: tuple[str, dict[str, Any]]) -> None:
    body = [{"event": name, "channel": channel, "id": f"{delivery_id}-{i}", "message_id": f"scripted-{delivery_id}",
             "properties": props} for i, (name, props) in enumerate(events)]
    headers, raw = signed(body)
    assert omni.handle_webhook("scripted", "POST", "https://shop/wh", headers, raw).status == 204


@pytest.fixture
def shop(store_url: str, clock: VirtualClock) -> Iterator[Omni]:
    channels = {"sms": {"provider": "scripted", "script": Script()},
                "email": {"provider": "scripted", "script": Script()}}
    with Omni(store_url, config={"channels": channels}, clock=clock, plugins=[TestProviders()],
              load_entry_points=False) as omni:
        omni.templates.add(Message("cart", sms=SMS(text="Your cart is waiting")))
        omni.templates.add(Message("welcome", email=Email(subject="Welcome", text="Hi")))
        for cid, consents in (("c-1", ("sms", "email")), ("c-2", ("sms", "email")), ("c-3", ()), ("c-4", ("sms",))):
            omni.identify(cid, phone=f"+1415555010{cid[-1]}", email=f"{cid}@example.com", timezone="UTC")
            for channel in consents:
                omni.consent(cid, channel=channel, granted=True)
        sms = _queue(omni, "cart", "nudge", ["c-1", "c-2", "c-3"], "sms")
        _webhook(omni, sms["c-1"], "sms", ("Message Delivered", {}), ("Link Clicked", {"url": "https://shop/cart"}))
        _webhook(omni, sms["c-2"], "sms", ("Message Delivered", {}))
        clock.advance(minutes=30)
        omni.track("c-2", "Order Completed", {"order_id": "o-1", "revenue": 40.0}, channel="web")
        clock.advance(minutes=30)
        email = _queue(omni, "welcome", "hello", ["c-1", "c-2", "c-4"], "email")
        _webhook(omni, email["c-1"], "email", ("Message Delivered", {}), ("Message Opened", {}),
                 ("Message Opened", {}), ("Link Clicked", {"url": "https://shop/"}), ("Unsubscribed", {}))
        _webhook(omni, email["c-2"], "email",
                 ("Message Bounced", {"bounce_type": "hard", "reason": "mailbox does not exist"}))
        clock.advance(hours=1)
        omni.track("c-1", "Order Completed", {"order_id": "o-2", "revenue": 50.0}, channel="pos")
        omni.track("c-3", "Order Completed", {"order_id": "o-3", "revenue": 20.0}, channel="pos")
        clock.advance(hours=22)
        omni.track("c-1", "Order Completed", {"order_id": "o-4", "revenue": 25}, channel="web")
        clock.advance(days=7)
        omni.track("c-2", "Order Completed", {"order_id": "o-5", "revenue": 30.0}, channel="web")
        yield omni


def _by(table: Any) -> dict[tuple[Any, ...], KPIRow]:
    return {tuple(row.group.values()): row for row in table.rows}


def test_kpis_by_channel(shop: Omni) -> None:
    table = shop.kpis(by="channel")

    rows = _by(table)
    assert set(rows) == {("sms",), ("email",)}
    sms, email = rows[("sms",)], rows[("email",)]
    assert (sms.messages, sms.sent, sms.delivered, sms.opened, sms.clicked, sms.skipped, sms.failed) == (3, 2, 2, 0, 1,
                                                                                                         1, 0)
    assert (sms.converted, sms.revenue, sms.segments) == (1, 40.0, 2)
    assert sms.cost == pytest.approx(0.015)
    assert [(reason, n) for reason, n in sms.skip_reasons.items() if "consent" in reason] == list(
        sms.skip_reasons.items())
    assert sum(sms.skip_reasons.values()) == 1
    assert (email.messages, email.sent, email.delivered, email.opened, email.clicked) == (3, 2, 1, 1, 1)
    assert (email.unsubscribed, email.bounced, email.failed, email.skipped) == (1, 1, 1, 1)
    assert (email.converted, email.revenue) == (2, 75.0)
    assert dict(email.failure_reasons) == {"mailbox does not exist": 1}
    assert (email.delivery_rate, email.open_rate, email.click_rate, email.conversion_rate) == (0.5, 1.0, 1.0, 1.0)
    assert email.bounce_rate == 0.5
    assert sms.conversion_rate == 0.5


def test_total_adds_up_and_unattributed_conversions_are_reported(shop: Omni) -> None:
    table = shop.kpis(by="channel")

    total = table.total
    assert (total.messages, total.sent, total.delivered, total.clicked, total.converted) == (6, 4, 3, 2, 3)
    assert total.revenue == 115.0
    assert total.cost == pytest.approx(0.03)
    assert sum(total.skip_reasons.values()) == 2
    assert (table.unattributed_conversions, table.unattributed_revenue) == (2, 50.0)
    for field in ("messages", "sent", "delivered", "opened", "clicked", "converted", "skipped", "failed"):
        assert getattr(total, field) == sum(getattr(row, field) for row in table.rows), field


def test_kpis_by_journey_and_step_and_provider(shop: Omni) -> None:
    rows = _by(shop.kpis(by=("journey", "step")))
    assert set(rows) == {("cart", "nudge"), ("welcome", "hello")}
    assert (rows[("cart", "nudge")].converted, rows[("welcome", "hello")].converted) == (1, 2)

    by_provider = _by(shop.kpis(by="provider"))
    assert by_provider[("scripted",)].sent == 4
    assert by_provider[(None,)].skipped == 2  # skipped before any provider was chosen


def test_a_shorter_window_and_a_period(shop: Omni, clock: VirtualClock) -> None:
    # with a 1-hour window only c-2's order 30 minutes after its SMS and c-1's 1 hour after its email count
    short = _by(shop.kpis(window=timedelta(hours=1)))
    assert (short[("sms",)].converted, short[("email",)].converted) == (1, 1)

    later = shop.kpis(since=T0 + 1800)  # messages queued from t0+30min: the emails only
    assert [row.group["channel"] for row in later.rows] == ["email"]
    assert later.rows[0].converted == 2

    assert shop.kpis(until=T0 + 1800).total.messages == 3


def test_bad_arguments_say_what_and_where(shop: Omni) -> None:
    with pytest.raises(ValidationError, match="by: unknown dimension 'country'"):
        shop.kpis(by="country")
    with pytest.raises(ValidationError, match="window"):
        shop.kpis(window=timedelta(0))
    with pytest.raises(ValidationError, match="until: must be after since"):
        shop.kpis(since=T0, until=T0)
    with pytest.raises(ValidationError, match="conversion"):
        shop.kpis(conversion=[])


def test_an_empty_store_has_zero_kpis(omni: Omni) -> None:
    table = omni.kpis(by=("channel", "journey"))
    assert table.rows == ()
    assert table.total.messages == 0
    assert table.total.open_rate is None
