"""Through a whole Omni: a STOP reply or a hard bounce stops SMS marketing before the next send."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import pytest
from omnisdk_sms.twilio import twilio_signature

import omnisdk
from omnisdk import SMS, Message, Omni
from omnisdk.delivery import enqueue_delivery
from omnisdk.testing.imitations import TwilioImitation

SID, TOKEN = "AC" + "a" * 32, "authtoken"
HOOK = "https://shop.example/omnisdk/webhooks/twilio"


@pytest.fixture
def twilio() -> Iterator[TwilioImitation]:
    with TwilioImitation(account_sid=SID, auth_token=TOKEN) as api:
        yield api
    api.assert_no_violations()


@pytest.fixture
def omni(omni_factory: Callable[..., Omni], twilio: TwilioImitation) -> Omni:
    config = {"channels": {"sms": {"provider": "twilio", "account_sid": SID, "auth_token": TOKEN,
                                   "from": "+15017122661", "base_url": twilio.base_url, "status_callback": HOOK}},
              "templates": {"links": {"base_url": "https://shop.example/omnisdk"}}}
    omni = omni_factory(config)
    omni.templates.add(Message("promo", sms=SMS(text="Soldes d'été: -20% 🌞")))
    omni.identify("c-1", phone="+14155550100")
    omni.consent("c-1", channel="sms", granted=True)
    return omni


def send_promo(omni: Omni, key: str) -> omnisdk.Delivery:
    omni.clock.advance(days=2)  # type: ignore[attr-defined]  # past the same-template dedupe window
    with omni.store.transaction() as tx:
        did = enqueue_delivery(tx, key=key, customer_id="c-1", template="promo", channels=["sms"],
                               now=omni.clock.timestamp())
    omni.run_until_idle()
    return next(d for d in omni.deliveries() if d.id == did)


def post_form(omni: Omni, params: dict[str, str]) -> omnisdk.WebhookResponse:
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": twilio_signature(TOKEN, HOOK, {k: [v] for k, v in params.items()})}
    return omni.handle_webhook("twilio", "POST", HOOK, headers, urlencode(params).encode())


def reply(omni: Omni, body: str, sid: str = "SM" + "c" * 32) -> omnisdk.WebhookResponse:
    return post_form(omni, {"MessageSid": sid, "From": "+14155550100", "To": "+15017122661", "Body": body})


def test_stop_reply_stops_sms_before_the_next_send(omni: Omni, twilio: TwilioImitation) -> None:
    first = send_promo(omni, "k1")
    assert (first.status, first.provider, first.segments) == ("sent", "twilio", 1)
    answer = reply(omni, "STOP")
    assert answer.status == 200 and b"<Message>You are unsubscribed" in answer.body
    assert reply(omni, "STOP").status == 200  # Twilio retries: recorded once
    assert omni.customer("c-1").has_consent("sms") is False
    second = send_promo(omni, "k2")
    assert second.status == "skipped" and "consent" in (second.decisions[-1].reason or "")
    assert len(twilio.messages) == 1
    stops = [t for t in omni.timeline("c-1", channels=["sms"]) if t.name == "Unsubscribed"]
    assert len(stops) == 1


def test_start_reply_subscribes_again(omni: Omni, twilio: TwilioImitation) -> None:
    reply(omni, "STOP", sid="SM" + "1" * 32)
    reply(omni, "START", sid="SM" + "2" * 32)
    assert omni.customer("c-1").has_consent("sms") is True
    assert send_promo(omni, "k1").status == "sent"


def test_forged_stop_is_refused_and_changes_nothing(omni: Omni) -> None:
    params = {"MessageSid": "SM" + "d" * 32, "From": "+14155550100", "Body": "STOP"}
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": twilio_signature("guessed", HOOK, {k: [v] for k, v in params.items()})}
    assert omni.handle_webhook("twilio", "POST", HOOK, headers, urlencode(params).encode()).status == 401
    assert omni.customer("c-1").has_consent("sms") is True


def test_delivery_status_and_hard_bounce_from_status_callbacks(omni: Omni, twilio: TwilioImitation) -> None:
    first = send_promo(omni, "k1")
    [callback] = twilio.status_callbacks("undelivered", error_code=30006)  # a landline
    response = omni.handle_webhook("twilio", "POST", str(callback.url), dict(callback.headers), callback.read())
    assert response.status == 200
    bounced = next(d for d in omni.deliveries() if d.id == first.id)
    assert bounced.status == "failed"
    assert omni.customer("c-1").has_consent("sms") is False
    assert send_promo(omni, "k2").status == "skipped"
    assert len(twilio.messages) == 1
