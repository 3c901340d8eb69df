"""The Twilio plugin checks a number from the profile by its shape only (the core validated it when it
was recorded), and any other number against its country's numbering plan, before making a request."""

from __future__ import annotations

import asyncio

import omnisdk_sms

import omnisdk
from omnisdk.delivery import enqueue_delivery, new_http_client
from omnisdk.testing import provider_config
from omnisdk.testing.conformance import ProviderSuite
from omnisdk.testing.imitations import TwilioImitation

SID = "AC" + "a" * 32
NOT_IN_THE_PLAN = "+15555550100"  # E.164-shaped, but no such US area code


def send(base_url: str, message: omnisdk.Outgoing) -> omnisdk.providers.Outcome:
    config = provider_config(omnisdk_sms.TwilioSMS, {"account_sid": SID, "auth_token": "token", "from": "+15017122661",
                                                     "base_url": base_url}, "channels.sms")

    async def main() -> omnisdk.providers.Outcome:
        async with new_http_client() as http:
            [outcome] = await omnisdk_sms.TwilioSMS(config, http=http).send([message])
            return outcome

    return asyncio.run(main())


def outgoing(to: str, *, from_profile: bool) -> omnisdk.Outgoing:
    return ProviderSuite.make_outgoing(to=to, content=omnisdk.SMS(text="hi"), from_profile=from_profile)


def test_a_number_from_elsewhere_is_checked_against_the_numbering_plan() -> None:
    with TwilioImitation(account_sid=SID, auth_token="token") as api:
        outcome = send(api.base_url, outgoing(NOT_IN_THE_PLAN, from_profile=False))
    assert isinstance(outcome, omnisdk.PermanentError) and outcome.forget_address
    assert api.requests == []


def test_a_number_from_the_profile_is_trusted_by_shape() -> None:
    with TwilioImitation(account_sid=SID, auth_token="token") as api:
        outcome = send(api.base_url, outgoing(NOT_IN_THE_PLAN, from_profile=True))
    assert isinstance(outcome, omnisdk.Accepted)
    assert [m["to"] for m in api.messages] == [NOT_IN_THE_PLAN]


def test_a_malformed_number_is_refused_wherever_it_came_from() -> None:
    with TwilioImitation(account_sid=SID, auth_token="token") as api:
        outcome = send(api.base_url, outgoing("+1415", from_profile=True))
    assert isinstance(outcome, omnisdk.PermanentError) and outcome.forget_address
    assert api.requests == []


def test_the_core_sends_the_profiles_normalised_number() -> None:
    with TwilioImitation(account_sid=SID, auth_token="token") as api, omnisdk.Omni(
        "sqlite://:memory:",
        config={"channels": {"sms": {"provider": "twilio", "account_sid": SID, "auth_token": "token",
                                     "from": "+15017122661", "base_url": api.base_url}}},
    ) as omni:
        omni.templates.add(omnisdk.Message("hi", sms=omnisdk.SMS(text="Hi")))
        omni.identify("c-1", phone="+1 415 555 0100")
        with omni.store.transaction() as tx:
            enqueue_delivery(tx, key="k", customer_id="c-1", template="hi", channels=["sms"],
                             now=omni.clock.timestamp(), purpose="transactional")
        omni.run_until_idle()
        assert [d.status for d in omni.deliveries(customer_id="c-1")] == ["sent"]
    assert [m["to"] for m in api.messages] == ["+14155550100"]
