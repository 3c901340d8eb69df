"""`omni.send`: one-off messages outside a journey go through the outbox journey sends use, so the
same policies decide (consent, quiet hours) and the dispatcher sends each exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import omnisdk
from dispatch_providers import Script, TestProviders
from omnisdk import SMS, AsyncOmni, Email, Message, Omni, Push, VirtualClock
from omnisdk.errors import NotFoundError, UnknownChannelError, ValidationError
from omnisdk.testing.imitations import SendGridImitation, TwilioImitation

SID = "AC" + "c" * 32
CONFIRMATION = Message(
    "order-confirmation",
    sms=SMS(text="Hi {{ customer.first_name }}, order {{ data.order_id }} is confirmed."),
    email=Email(subject="Order {{ data.order_id }} confirmed", text="Thank you, {{ customer.first_name }}."),
    push=Push(title="Order confirmed", body="Order {{ data.order_id }}"),
)
NEWS = Message("news", sms=SMS(text="New in store this week."))


@pytest.fixture
def twilio(clock: VirtualClock) -> Iterator[TwilioImitation]:
    with TwilioImitation(account_sid=SID, auth_token="token", clock=clock) as api:
        yield api
    api.assert_no_violations()


def open_omni(store_url: str, clock: VirtualClock, twilio: TwilioImitation, **config: Any) -> Omni:
    sms = {"provider": "twilio", "account_sid": SID, "auth_token": "token", "from": "+14155559999",
           "base_url": twilio.base_url}
    omni = Omni(store_url, config={"channels": {"sms": sms}, **config}, clock=clock)
    omni.templates.add(CONFIRMATION)
    omni.templates.add(NEWS)
    return omni


def ada(omni: Omni, **profile: Any) -> str:
    omni.identify("c-42", traits={"first_name": "Ada"}, timezone="UTC", phone="+14155550100", **profile)
    return "c-42"


def only(omni: Omni, delivery_id: str) -> omnisdk.Delivery:
    return next(d for d in omni.deliveries() if d.id == delivery_id)


def test_a_one_off_message_is_queued_then_delivered_through_the_provider(
    store_url: str, clock: VirtualClock, twilio: TwilioImitation
) -> None:
    with open_omni(store_url, clock, twilio) as omni:
        cid = ada(omni)
        queued = omni.send(cid, "order-confirmation", channel="sms", data={"order_id": "o-1"},
                           purpose="transactional")
        assert (queued.status, queued.customer_id, queued.template, tuple(queued.channels), queued.purpose) == (
            "queued", cid, "order-confirmation", ("sms",), "transactional")
        assert (queued.run_id, queued.journey, queued.data) == (None, None, {"order_id": "o-1"})
        assert twilio.messages == []  # queued in the outbox; the worker sends it

        omni.run_until_idle()

        sent = only(omni, queued.id)
        [message] = twilio.messages
        assert message["to"] == "+14155550100"
        assert message["body"] == "Hi Ada, order o-1 is confirmed."
        assert (sent.status, sent.channel, sent.provider, sent.provider_message_id) == (
            "sent", "sms", "twilio", message["sid"])
        assert [t.name for t in omni.timeline(cid) if t.channel == "sms"] == ["Message Sent"]


def test_a_waterfall_takes_the_first_reachable_consented_channel(store_url: str, clock: VirtualClock) -> None:
    """No push token, so the email gets it; a dict of identifiers finds the customer."""
    with SendGridImitation(clock=clock) as sendgrid:
        email = {"provider": "sendgrid", "api_key": sendgrid.api_key, "from": "shop@acme.example",
                 "base_url": sendgrid.base_url}
        with Omni(store_url, config={"channels": {"email": email, "push": {"provider": "memory"}}},
                  clock=clock) as omni:
            omni.templates.add(CONFIRMATION)
            omni.identify("c-7", traits={"first_name": "Grace"}, email="grace@example.com")
            queued = omni.send({"email": "Grace@Example.com"}, "order-confirmation", channels=["push", "email"],
                               data={"order_id": "o-2"}, purpose="transactional")
            assert queued.customer_id == "c-7"
            omni.run_until_idle()
            sent = only(omni, queued.id)
    sendgrid.assert_no_violations()
    [mail] = sendgrid.mails
    assert [to["email"] for p in mail["request"]["personalizations"] for to in p["to"]] == ["grace@example.com"]
    assert (sent.status, sent.channel) == ("sent", "email")
    assert (sent.decisions[-1].action, sent.decisions[-1].channel) == ("sent", "email")


def test_a_revoked_consent_skips_it_with_the_reason(
    store_url: str, clock: VirtualClock, twilio: TwilioImitation
) -> None:
    with open_omni(store_url, clock, twilio) as omni:
        cid = ada(omni)
        omni.consent(cid, channel="sms", granted=False, purpose="transactional", source="sms-settings")
        revoked = omni.send(cid, "order-confirmation", channel="sms", data={"order_id": "o-3"},
                            purpose="transactional")
        never_granted = omni.send(cid, "news", channel="sms")  # marketing by default: needs a grant
        omni.run_until_idle()
        skipped = only(omni, revoked.id)
        unasked = only(omni, never_granted.id)
    assert twilio.messages == []
    assert skipped.status == "skipped" and "no transactional consent on sms" in skipped.decisions[-1].reason
    assert unasked.status == "skipped" and "no marketing consent on sms" in unasked.decisions[-1].reason


def test_quiet_hours_defer_a_marketing_send_but_not_a_transactional_one(
    store_url: str, clock: VirtualClock, twilio: TwilioImitation
) -> None:
    with open_omni(store_url, clock, twilio, policies={"quiet_hours": {"start": "21:00", "end": "08:00"}}) as omni:
        cid = ada(omni)
        omni.identify(cid, timezone="Asia/Tokyo")  # 12:00 UTC is 21:00 in Tokyo
        omni.consent(cid, channel="sms", granted=True)
        news = omni.send(cid, "news", channel="sms", purpose="marketing")
        receipt = omni.send(cid, "order-confirmation", channel="sms", data={"order_id": "o-4"},
                            purpose="transactional")
        omni.run_until_idle()
        deferred = only(omni, news.id)
        assert deferred.status == "deferred" and "quiet hours" in deferred.decisions[-1].reason
        assert only(omni, receipt.id).status == "sent"
        assert len(twilio.messages) == 1

        clock.advance(hours=10, minutes=59)
        omni.run_until_idle()
        assert only(omni, news.id).status == "deferred"
        clock.advance(minutes=2)
        omni.run_until_idle()
        assert only(omni, news.id).status == "sent"
    assert [m["body"] for m in twilio.messages] == ["Hi Ada, order o-4 is confirmed.", "New in store this week."]


def test_an_idempotency_key_makes_a_repeated_call_a_no_op(
    store_url: str, clock: VirtualClock, twilio: TwilioImitation
) -> None:
    with open_omni(store_url, clock, twilio) as omni:
        cid = ada(omni)
        first = omni.send(cid, "order-confirmation", channel="sms", data={"order_id": "o-5"},
                          purpose="transactional", idempotency_key="order-o-5")
        again = omni.send(cid, "order-confirmation", channel="sms", data={"order_id": "o-5"},
                          purpose="transactional", idempotency_key="order-o-5")
        assert again == first
        omni.run_until_idle()
        after = omni.send(cid, "order-confirmation", channel="sms", data={"order_id": "o-5"},
                          purpose="transactional", idempotency_key="order-o-5")
        assert (after.id, after.status) == (first.id, "sent")
        omni.run_until_idle()
        with pytest.raises(ValidationError) as reused:
            omni.send(cid, "news", channel="sms", idempotency_key="order-o-5")
        assert reused.value.field == "idempotency_key"
        other = omni.send(cid, "order-confirmation", channel="sms", data={"order_id": "o-6"},
                          purpose="transactional", idempotency_key="order-o-6")
        omni.run_until_idle()
        assert [d.id for d in omni.deliveries(customer_id=cid)] == [first.id, other.id]
    assert [m["body"] for m in twilio.messages] == ["Hi Ada, order o-5 is confirmed.",
                                                     "Hi Ada, order o-6 is confirmed."]


def test_a_send_claimed_by_a_worker_that_died_is_sent_exactly_once_after_its_lease(
    store_url: str, clock: VirtualClock
) -> None:
    """The worker died with the call in flight. Its lease keeps the next worker off the row until it
    runs out; then the message goes out once, with the delivery's idempotency key."""
    script = Script(gate=asyncio.Event())
    config = {"channels": {"email": {"provider": "keyed", "script": script}}, "delivery": {"lease_seconds": 60}}

    def open_scripted() -> Omni:
        omni = Omni(store_url, config=config, clock=clock, plugins=[TestProviders()], load_entry_points=False)
        omni.templates.add(CONFIRMATION)
        return omni

    first = open_scripted()
    first.identify("c-42", traits={"first_name": "Ada"}, email="ada@example.com")
    queued = first.send("c-42", "order-confirmation", channel="email", data={"order_id": "o-7"},
                        purpose="transactional", idempotency_key="o-7")

    async def die_mid_call() -> None:
        task = asyncio.ensure_future(first._core.run_until_idle())
        for _ in range(100):
            await asyncio.sleep(0)
        task.cancel()  # the loop stops with it: nothing of the worker runs after this point

    first._run(die_mid_call())
    assert only(first, queued.id).status == "sending"
    first.close()
    script.gate = None

    with open_scripted() as second:
        second.run_until_idle()
        assert only(second, queued.id).status == "sending"  # the dead worker's lease still holds
        assert script.sent == []
        clock.advance(seconds=61)
        second.run_until_idle()
        assert only(second, queued.id).status == "sent"
        # the app retrying its call after the crash changes nothing
        assert second.send("c-42", "order-confirmation", channel="email", data={"order_id": "o-7"},
                           purpose="transactional", idempotency_key="o-7").id == queued.id
        second.run_until_idle()
    [message] = script.sent
    assert (message.delivery_id, message.to) == (queued.id, "ada@example.com")
    assert message.idempotency_key == f"{queued.idempotency_key}:email"


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"template": "no-such-template", "channel": "sms"}, NotFoundError, None),
        ({"channel": "fax"}, UnknownChannelError, "channel"),
        ({"channels": ["sms", "pigeon"]}, UnknownChannelError, "channels[1]"),
        ({"channels": "sms"}, ValidationError, "channels"),
        ({"channel": "sms", "channels": ["email"]}, ValidationError, "channels"),
        ({"channel": "sms", "purpose": "promotional"}, ValidationError, "purpose"),
        ({"channel": "sms", "template": ""}, ValidationError, "template"),
        ({"channel": "sms", "data": {"when": object()}}, ValidationError, "data.when"),
        ({"channel": "sms", "idempotency_key": ""}, ValidationError, "idempotency_key"),
        ({"channel": "sms", "who": {}}, ValidationError, "who"),
    ],
)
def test_bad_input_is_a_typed_error_and_queues_nothing(
    omni: Omni, kwargs: dict[str, Any], error: type[Exception], field: str | None
) -> None:
    omni.templates.add(CONFIRMATION)
    ada(omni)
    args = {"who": "c-42", "template": "order-confirmation", **kwargs}
    with pytest.raises(error) as caught:
        omni.send(args.pop("who"), args.pop("template"), **args)
    if field is not None:
        assert getattr(caught.value, "field", None) == field
    assert omni.deliveries() == []


def test_the_async_client_sends_too(store_url: str) -> None:
    async def scenario() -> tuple[str, str, int]:
        async with AsyncOmni(store_url, config={"channels": {"email": {"provider": "memory"}}},
                             clock=VirtualClock()) as omni:
            omni.templates.add(CONFIRMATION)
            await omni.identify("c-1", traits={"first_name": "Lin"}, email="lin@example.com")
            queued = await omni.send("c-1", "order-confirmation", channel="email", data={"order_id": "o-9"},
                                     purpose="transactional", idempotency_key="o-9")
            again = await omni.send("c-1", "order-confirmation", channel="email", data={"order_id": "o-9"},
                                    purpose="transactional", idempotency_key="o-9")
            await omni.run_until_idle()
            [delivery] = await omni.deliveries(customer_id="c-1")
            sent = omni.provider("email").sent  # type: ignore[attr-defined]
            return queued.id, again.id, len(sent) if delivery.status == "sent" else -1

    first, again, sent = asyncio.run(scenario())
    assert first == again and sent == 1
