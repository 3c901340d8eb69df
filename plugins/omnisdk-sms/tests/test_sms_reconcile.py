"""Reconciling an SMS whose send outcome is unknown: Twilio's Message list, Vonage's Reports API.

Each lookup runs against the imitation, which checks the request against the provider's contract,
drops connections before or after acting on a send, and stamps with the same virtual clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import attrs
import httpx
import pytest
from omnisdk_sms import TwilioSMS, VonageSMS

import omnisdk
from omnisdk.providers import InDoubt, NotSent, Reconciliation, RetryableError, StillUnknown
from omnisdk.testing import provider_config
from omnisdk.testing.conformance import ProviderSuite
from omnisdk.testing.imitations import Faults, TwilioImitation, VonageImitation

SID = "AC" + "a" * 32
TOKEN = "authtoken"
T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def closing() -> T:
        return await main()

    return asyncio.run(closing())


def sms(text: str = "Your order o-1 has shipped", to: str = "+14155550100") -> omnisdk.Outgoing:
    return ProviderSuite.make_outgoing(to=to, content=omnisdk.SMS(text=text))


def twilio(api: TwilioImitation, clock: omnisdk.VirtualClock, **settings: Any) -> TwilioSMS:
    config = provider_config(TwilioSMS, {"account_sid": SID, "auth_token": TOKEN, "from": "+15017122661",
                                         "base_url": api.base_url, **settings}, "channels.sms")
    return TwilioSMS(config, http=httpx.AsyncClient(), clock=clock)


def vonage(api: VonageImitation, clock: omnisdk.VirtualClock, **settings: Any) -> VonageSMS:
    config = provider_config(VonageSMS, {"api_key": api.api_key, "api_secret": api.api_secret, "from": "+15017122661",
                                         "base_url": api.base_url, "reports_url": api.base_url, **settings},
                             "channels.sms")
    return VonageSMS(config, http=httpx.AsyncClient(), clock=clock)


async def lost(provider: omnisdk.Provider, message: omnisdk.Outgoing, clock: omnisdk.VirtualClock) -> InDoubt:
    """Send through a dropped connection: the outcome is unknown, as the core would see it."""
    attempted_at = clock.now()
    [outcome] = await provider.send([message])
    assert isinstance(outcome, RetryableError) and outcome.ambiguous
    return InDoubt(outgoing=message, attempted_at=attempted_at)


async def settle(provider: omnisdk.Provider, *items: InDoubt) -> list[Reconciliation]:
    return list(await provider.reconcile(items))


@pytest.fixture
def clock() -> omnisdk.VirtualClock:
    return omnisdk.VirtualClock()


# -- Twilio ---------------------------------------------------------------------------------------

def test_twilio_finds_a_message_accepted_before_the_connection_dropped(clock: omnisdk.VirtualClock) -> None:
    with TwilioImitation(account_sid=SID, auth_token=TOKEN, clock=clock, faults=Faults(drop_after_accept=1)) as api:
        provider = twilio(api, clock)

        async def main() -> list[Reconciliation]:
            item = await lost(provider, sms(), clock)
            clock.advance(seconds=5)
            return await settle(provider, item)

        [answer] = run(main)
    api.assert_no_violations()
    assert answer == omnisdk.Accepted(provider_message_id=api.messages[0]["sid"],
                                      details={"segments": 1, "encoding": "GSM-7"})


def test_twilio_says_not_sent_only_once_the_lag_has_passed(clock: omnisdk.VirtualClock) -> None:
    with TwilioImitation(account_sid=SID, auth_token=TOKEN, clock=clock, faults=Faults(drop_before_send=1)) as api:
        provider = twilio(api, clock, reconcile_lag=60)

        async def main() -> list[Reconciliation]:
            item = await lost(provider, sms(), clock)
            clock.advance(seconds=20)
            early = await settle(provider, item)
            clock.advance(seconds=40)
            return early + await settle(provider, item)

        early, late = run(main)
    api.assert_no_violations()
    assert api.messages == []
    assert isinstance(early, StillUnknown) and early.retry_after == pytest.approx(40)
    assert isinstance(late, NotSent)


def test_twilio_waits_for_its_index_and_for_a_failed_lookup(clock: omnisdk.VirtualClock) -> None:
    with TwilioImitation(account_sid=SID, auth_token=TOKEN, clock=clock, index_lag=30,
                         faults=Faults(drop_after_accept=1)) as api:
        provider = twilio(api, clock)

        async def main() -> list[Reconciliation]:
            item = await lost(provider, sms(), clock)
            not_indexed = await settle(provider, item)
            clock.advance(seconds=30)
            api.faults.fail_next(1, "unavailable")
            failed = await settle(provider, item)
            return not_indexed + failed + await settle(provider, item)

        not_indexed, failed, found = run(main)
    api.assert_no_violations()
    assert isinstance(not_indexed, StillUnknown) and isinstance(failed, StillUnknown)
    assert "503" in failed.reason
    assert isinstance(found, omnisdk.Accepted) and found.provider_message_id == api.messages[0]["sid"]


def test_twilio_pages_through_newer_messages_to_the_same_number(clock: omnisdk.VirtualClock) -> None:
    with TwilioImitation(account_sid=SID, auth_token=TOKEN, clock=clock) as api:
        provider = twilio(api, clock)

        async def main() -> list[Reconciliation]:
            api.faults.fail_next(1, "drop_after_accept")
            item = await lost(provider, sms(), clock)
            for n in range(230):
                clock.advance(seconds=1)
                await provider.send([sms(f"Update {n} on your order")])
            return await settle(provider, item)

        [answer] = run(main)
    api.assert_no_violations()
    assert len([r for r in api.requests if r.method == "GET"]) == 3  # 231 messages, 100 a page
    assert isinstance(answer, omnisdk.Accepted) and answer.provider_message_id == api.messages[0]["sid"]


def test_twilio_ignores_the_same_text_sent_before_the_window(clock: omnisdk.VirtualClock) -> None:
    with TwilioImitation(account_sid=SID, auth_token=TOKEN, clock=clock) as api:
        provider = twilio(api, clock)

        async def main() -> list[Reconciliation]:
            await provider.send([sms()])  # yesterday's identical text to the same number
            clock.advance(days=1)
            api.faults.fail_next(1, "drop_before_send")
            item = await lost(provider, sms(), clock)
            clock.advance(minutes=5)
            return await settle(provider, item)

        [answer] = run(main)
    api.assert_no_violations()
    assert isinstance(answer, NotSent)


def test_twilio_tolerates_a_provider_clock_behind_ours(clock: omnisdk.VirtualClock) -> None:
    behind = omnisdk.VirtualClock(clock.now() - timedelta(seconds=90))
    with TwilioImitation(account_sid=SID, auth_token=TOKEN, clock=behind, faults=Faults(drop_after_accept=1)) as api:
        provider = twilio(api, clock)

        async def main() -> list[Reconciliation]:
            item = await lost(provider, sms(), clock)
            return await settle(provider, item)

        [answer] = run(main)
    assert isinstance(answer, omnisdk.Accepted) and answer.provider_message_id == api.messages[0]["sid"]


# -- Vonage ---------------------------------------------------------------------------------------

def test_vonage_finds_the_record_carrying_the_delivery_id(clock: omnisdk.VirtualClock) -> None:
    with VonageImitation(clock=clock, faults=Faults(drop_after_accept=1)) as api:
        provider = vonage(api, clock)

        async def main() -> list[Reconciliation]:
            item = await lost(provider, sms(), clock)
            never = attrs.evolve(sms(), delivery_id="dlv_another")  # same text, another delivery, never sent
            other = InDoubt(outgoing=never, attempted_at=clock.now())
            clock.advance(seconds=400)
            return await settle(provider, item, other)

        found, other = run(main)
    api.assert_no_violations()
    assert isinstance(found, omnisdk.Accepted) and found.provider_message_id == api.messages[0]["message-id"]
    assert isinstance(other, NotSent)
    [lookup, _] = [r for r in api.requests if r.method == "GET"]
    assert lookup.query["product"] == "SMS" and lookup.query["direction"] == "outbound"


def test_vonage_says_not_sent_only_once_the_lag_has_passed(clock: omnisdk.VirtualClock) -> None:
    with VonageImitation(clock=clock, index_lag=60, faults=Faults(drop_before_send=1)) as api:
        provider = vonage(api, clock, reconcile_lag=300)

        async def main() -> list[Reconciliation]:
            item = await lost(provider, sms(), clock)
            clock.advance(seconds=100)
            early = await settle(provider, item)
            clock.advance(seconds=200)
            return early + await settle(provider, item)

        early, late = run(main)
    api.assert_no_violations()
    assert isinstance(early, StillUnknown) and early.retry_after == pytest.approx(200)
    assert isinstance(late, NotSent)


def test_vonage_keeps_a_failed_lookup_unknown_and_its_window_within_a_day(clock: omnisdk.VirtualClock) -> None:
    with VonageImitation(clock=clock, faults=Faults(drop_after_accept=1)) as api:
        provider = vonage(api, clock)

        async def main() -> list[Reconciliation]:
            item = await lost(provider, sms(), clock)
            api.faults.fail_next(1, "server_error")
            failed = await settle(provider, item)
            clock.advance(days=3)  # the window starts at the attempt and spans at most 24 hours
            return failed + await settle(provider, item)

        failed, found = run(main)
    api.assert_no_violations()
    assert isinstance(failed, StillUnknown)
    assert isinstance(found, omnisdk.Accepted) and found.provider_message_id == api.messages[0]["message-id"]


def test_vonage_takes_a_truncated_answer_for_unknown(clock: omnisdk.VirtualClock) -> None:
    with VonageImitation(clock=clock, truncate_after=0, faults=Faults(drop_after_accept=1)) as api:
        provider = vonage(api, clock)

        async def main() -> list[Reconciliation]:
            item = await lost(provider, sms(), clock)
            clock.advance(hours=1)
            return await settle(provider, item)

        [answer] = run(main)
    api.assert_no_violations()
    assert isinstance(answer, StillUnknown) and "TRUNCATED" in answer.reason


def test_vonage_looks_up_where_it_sends_unless_told_otherwise() -> None:
    def reports(**settings: Any) -> str:
        config = provider_config(VonageSMS, {"api_key": "abcd1234", "api_secret": "s", "from": "AcmeShop", **settings},
                                 "channels.sms")
        return VonageSMS(config, http=httpx.AsyncClient())._reports_url

    assert reports() == "https://api.nexmo.com"
    assert reports(base_url="https://vonage-gateway.internal.example/") == "https://vonage-gateway.internal.example"
    assert reports(base_url="https://gw.example", reports_url="https://reports.example") == "https://reports.example"
