"""Faults against a local Twilio imitation, through the real Twilio plugin: 429 with Retry-After, 5xx,
dropped connections and slow answers that time out, on about a quarter of the calls.

A 429 or a 5xx says the message was not taken: it is retried until it arrives, once. A timeout or a
connection dropped after the request was written is ambiguous, like a crash mid-call, so without a
lookup it follows the provider's crash policy: Twilio with its lookup turned off (at most once) never
sends it again and records "outcome unknown"; an at-least-once provider sends it again, and may
duplicate only those. (Twilio as shipped looks such a message up: tests/test_exactly_once.py.) Nobody opted out
gets a message, and none arrives inside the customer's quiet hours.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import omnisdk_sms
import pytest

import omnisdk
from omnisdk import SMS, Message, Omni, VirtualClock
from omnisdk.delivery import enqueue_delivery
from omnisdk.testing.imitations import Faults, TwilioImitation

CUSTOMERS = 120
SID = "AC" + "a" * 32
AMBIGUOUS = ("drop", "slow")


class UnreconciledTwilio(omnisdk_sms.TwilioSMS):
    """Twilio without its Message list lookup: what is in doubt is settled by the crash policy alone."""

    name = "twilio-no-lookup"
    capabilities = attrs.evolve(omnisdk_sms.TwilioSMS.capabilities, reconcile=False)


class ResendingTwilio(omnisdk_sms.TwilioSMS):
    """Twilio as a provider that declares at-least-once: a duplicate is better than a loss."""

    name = "twilio-resend"
    capabilities = attrs.evolve(omnisdk_sms.TwilioSMS.capabilities, crash_policy="at_least_once", reconcile=False)


class Resending:
    @omnisdk.hookimpl
    def register_providers(self, register: Any) -> None:
        register(UnreconciledTwilio)
        register(ResendingTwilio)


@attrs.define
class Run:
    deliveries: list[omnisdk.Delivery]
    #: (phone, when it arrived) for each message the imitation took.
    arrivals: list[tuple[str, datetime]]
    faults_by_phone: dict[str, list[str | None]]
    zones: dict[str, str]
    opted_out: set[str]
    injected: Counter[str]

    @property
    def received(self) -> Counter[str]:
        return Counter(phone for phone, _ in self.arrivals)

    @property
    def allowed(self) -> set[str]:
        return {f"+1415555{i:04d}" for i in range(CUSTOMERS)} - self.opted_out

    def check_consent_and_quiet_hours(self) -> None:
        assert self.arrivals
        assert not set(self.received) & self.opted_out
        assert not any(self.faults_by_phone.get(phone) for phone in self.opted_out)  # never even requested
        for phone, at in self.arrivals:
            local = at.astimezone(ZoneInfo(self.zones[phone]))
            assert 8 <= local.hour < 21, (phone, local)


@pytest.fixture
def send_through_faults(store_url: str, clock: VirtualClock) -> Iterator[Any]:
    def run(provider: str) -> Run:
        faults = Faults(rate_limit=0.07, retry_after=30, server_error=0.07, drop=0.05, slow=0.05, delay=2.5, seed=11)
        with TwilioImitation(account_sid=SID, auth_token="secret-token", faults=faults) as twilio:
            config = {
                "channels": {"sms": {"provider": provider, "account_sid": SID, "auth_token": "secret-token",
                                     "from": "+14155559999", "base_url": twilio.base_url}},
                "policies": {"quiet_hours": {"start": "21:00", "end": "08:00"}},
                "delivery": {"breaker_threshold": 50, "http_timeout": 1.0},  # a "slow" answer comes after 2.5 s
            }
            with Omni(store_url, config=config, clock=clock, plugins=[Resending()]) as omni:
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

                arrivals: list[tuple[str, datetime]] = []
                for _ in range(200):
                    seen = len(twilio.messages)
                    omni.run_until_idle()
                    arrivals += [(message["to"], clock.now()) for message in twilio.messages[seen:]]
                    if not omni.deliveries(status=["queued", "deferred", "sending"]):
                        break
                    clock.advance(minutes=5)
                deliveries = omni.deliveries()
            twilio.assert_no_violations()
            faults_by_phone: dict[str, list[str | None]] = defaultdict(list)
            for request in twilio.requests:
                faults_by_phone[request.body["To"]].append(request.fault)
            return Run(deliveries, arrivals, faults_by_phone, zones, opted_out, Counter(faults.injected))

    yield run


@pytest.mark.slow
def test_at_most_once_provider_retries_clear_failures_and_never_resends_ambiguous_ones(
    send_through_faults: Any,
) -> None:
    run = send_through_faults("twilio-no-lookup")

    assert {d.status for d in run.deliveries} == {"sent", "skipped", "failed"}
    assert set(run.received.values()) == {1}  # nothing arrived twice
    by_customer = {d.customer_id: d for d in run.deliveries}
    for i in range(CUSTOMERS):
        phone, delivery = f"+1415555{i:04d}", by_customer[f"c-{i}"]
        if phone in run.opted_out:
            assert delivery.status == "skipped"
            continue
        faults = run.faults_by_phone[phone]
        if delivery.status == "failed":
            assert "outcome unknown" in (delivery.error or "") and "at_most_once" in (delivery.error or "")
            assert faults[-1] in AMBIGUOUS  # only an ambiguous failure stops the retries,
            assert [f for f in faults if f in AMBIGUOUS] == [faults[-1]]  # and no call followed it
        else:
            assert delivery.status == "sent" and run.received[phone] == 1
            assert not set(faults) & set(AMBIGUOUS)
    failed = [d for d in run.deliveries if d.status == "failed"]
    assert 0 < len(failed) < CUSTOMERS // 4
    assert run.injected["rate_limit"] and run.injected["drop"] and run.injected["slow"]
    retried = [d for d in run.deliveries if d.attempts > 1]
    assert retried and all(any(e.action == "retry" for e in d.decisions) for d in retried)
    run.check_consent_and_quiet_hours()


@pytest.mark.slow
def test_at_least_once_provider_resends_ambiguous_failures_and_duplicates_only_those(
    send_through_faults: Any,
) -> None:
    run = send_through_faults("twilio-resend")

    assert {d.status for d in run.deliveries} == {"sent", "skipped"}
    assert set(run.received) == run.allowed  # every allowed message arrived
    for phone, count in run.received.items():
        # a slow answer the provider took after our timeout is the only way to a second copy
        assert 1 <= count <= 1 + run.faults_by_phone[phone].count("slow")
    resent = [d for d in run.deliveries if any("may have accepted it" in e.reason for e in d.decisions)]
    assert resent and all(d.status == "sent" for d in resent)
    assert run.injected["drop"] and run.injected["slow"]
    run.check_consent_and_quiet_hours()
