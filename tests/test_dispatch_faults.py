"""Faults against a local Twilio imitation, through the real Twilio plugin: 429 with Retry-After, 5xx and
dropped connections on 20% of calls. Every allowed message arrives exactly once; none reaches an
opted-out customer; none arrives inside the customer's quiet hours."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from omnisdk import SMS, Message, Omni, VirtualClock
from omnisdk.delivery import enqueue_delivery
from omnisdk.testing.imitations import Faults, TwilioImitation

pytest.importorskip("omnisdk_sms")

CUSTOMERS = 120
SID = "AC" + "a" * 32


@pytest.mark.slow
def test_every_allowed_message_arrives_once_despite_faults(store_url: str, clock: VirtualClock) -> None:
    faults = Faults(rate_limit=0.07, retry_after=30, server_error=0.07, drop=0.06, seed=11)
    with TwilioImitation(account_sid=SID, auth_token="secret-token", faults=faults) as twilio:
        config = {
            "channels": {"sms": {"provider": "twilio", "account_sid": SID, "auth_token": "secret-token",
                                 "from": "+14155559999", "base_url": twilio.base_url}},
            "policies": {"quiet_hours": {"start": "21:00", "end": "08:00"}},
            "delivery": {"breaker_threshold": 50, "http_timeout": 5},
        }
        with Omni(store_url, config=config, clock=clock) as omni:
            omni.templates.add(Message("promo", sms=SMS(text="Hi {{ customer.first_name }}, 20% off today")))
            zones, opted_out = {}, set()
            for i in range(CUSTOMERS):
                cid, phone = f"c-{i}", f"+1415555{i:04d}"
                zone = "Asia/Tokyo" if i % 4 == 0 else "America/New_York"  # 21:00 in Tokyo: quiet
                omni.identify(cid, phone=phone, traits={"first_name": f"N{i}"}, timezone=zone)
                omni.consent(cid, channel="sms", granted=i % 5 != 0)
                zones[phone] = zone
                if i % 5 == 0:
                    opted_out.add(phone)
            with omni.store.transaction() as tx:
                for i in range(CUSTOMERS):
                    enqueue_delivery(tx, key=f"broadcast:c-{i}", customer_id=f"c-{i}", template="promo",
                                     channels=["sms"], now=clock.timestamp())

            received_at: dict[str, datetime] = {}
            for _ in range(200):
                seen = len(twilio.messages)
                omni.run_until_idle()
                for message in twilio.messages[seen:]:
                    received_at[message["sid"]] = clock.now()
                if not omni.deliveries(status=["queued", "deferred", "sending"]):
                    break
                clock.advance(minutes=5)

            deliveries = omni.deliveries()

        twilio.assert_no_violations()
    assert {d.status for d in deliveries} == {"sent", "skipped"}
    counts = Counter(m["to"] for m in twilio.messages)
    allowed = {f"+1415555{i:04d}" for i in range(CUSTOMERS)} - opted_out
    assert set(counts) == allowed
    assert set(counts.values()) == {1}
    for message in twilio.messages:
        local = received_at[message["sid"]].astimezone(ZoneInfo(zones[message["to"]]))
        assert 8 <= local.hour < 21, (message["to"], local)
    injected = Counter(faults.injected)
    assert injected["rate_limit"] and injected["drop"] and (injected["server_error"] or injected["unavailable"])
    retried = [d for d in deliveries if d.attempts > 1]
    assert retried and all(any(e.action == "retry" for e in d.decisions) for d in retried)
