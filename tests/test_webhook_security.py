"""Webhooks verified over what each provider signs: forged, replayed, re-encoded, method-swapped and stale
requests refused with nothing recorded; the carriers' keyword rules; consent evidence. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

import webhook_requests as wr
from omnisdk import SMS, Message, Omni, VirtualClock
from omnisdk.delivery import enqueue_delivery

SID_STOP, SID_START, SID_YES = "SM" + "1" * 32, "SM" + "2" * 32, "SM" + "3" * 32
PHONE = "+14155550100"


@pytest.fixture
def omni(store_url: str, clock: VirtualClock) -> Iterator[Omni]:
    settings = wr.config(double_opt_in_templates=["sms-opt-in"], double_opt_in_window_seconds=3600)
    with Omni(store_url, config=settings, clock=clock) as client:
        client.templates.add(Message("sms-opt-in", sms=SMS(text="Reply YES for offers")))
        yield client


def recorded(omni: Omni) -> tuple[int, int, int]:
    with omni.store.transaction(immediate=False) as tx:
        return (tx.scalar("SELECT COUNT(*) FROM touchpoints"), tx.scalar("SELECT COUNT(*) FROM consents"),
                tx.scalar("SELECT COUNT(*) FROM webhook_events"))


def handle(omni: Omni, provider: str, request: wr.Request) -> int:
    method, url, headers, body = request
    return omni.handle_webhook(provider, method, url, headers, body).status


def consents(omni: Omni, customer_id: str = "c-1") -> dict[str, tuple[bool, str, str | None]]:
    customer = omni.customer(customer_id)
    return {purpose: (entry.granted, entry.source, entry.evidence)
            for purpose in ("marketing", "transactional") if (entry := customer.consent_for("sms", purpose))}


# -- forged and re-encoded requests

def test_a_get_whose_body_carries_the_fields_is_refused_403(omni: Omni) -> None:
    """The reported forgery: a GET is signed over its URL only, so a form body is covered by nothing."""
    method, url, headers, _ = wr.twilio({}, method="GET")
    before = recorded(omni)
    status = omni.handle_webhook("twilio", method, url, headers, f"From={PHONE}&Body=START&MessageSid=SMx".encode())
    assert status.status == 403
    assert recorded(omni) == before


def test_a_get_with_its_fields_in_the_signed_query_is_accepted(omni: Omni) -> None:
    omni.identify("c-1", phone=PHONE)
    assert handle(omni, "twilio", wr.inbound_sms("STOP", SID_STOP, method="GET")) == 200
    assert consents(omni)["marketing"][:2] == (False, "webhook:twilio:STOP")


@pytest.mark.parametrize("duplicate", [b"&From=%2B14155550199", b"&Body=STOP"])
def test_a_field_given_twice_with_different_values_is_refused_403(omni: Omni, duplicate: bytes) -> None:
    """Twilio signs sorted values, so `From=a&From=b` and `From=b&From=a` carry the same signature."""
    params = [("MessageSid", SID_START), ("From", PHONE), ("To", "+15017122661"), ("Body", "START")]
    extra = duplicate.decode().lstrip("&").split("=")
    signed = {k: [v] for k, v in params}
    signed.setdefault(extra[0], []).append(extra[1].replace("%2B", "+"))
    method, url, headers, body = wr.twilio(dict(params))
    headers["X-Twilio-Signature"] = RequestValidator(wr.TWILIO_TOKEN).compute_signature(url, _multi(signed))
    before = recorded(omni)
    assert omni.handle_webhook("twilio", method, url, headers, body + duplicate).status == 403
    assert recorded(omni) == before


class _multi(dict[str, list[str]]):
    """A multi-valued form as twilio-python reads Django's QueryDict."""

    def getlist(self, name: str) -> list[str]:
        return self[name]


def test_a_json_body_repeating_a_key_is_refused_403(omni: Omni) -> None:
    raw = b'{"id": 1, "email": "ada@example.com", "financial_status": "paid", "email": "eve@example.com"}'
    before = recorded(omni)
    assert handle(omni, "shopify", wr.shopify(raw=raw)) == 403
    assert recorded(omni) == before


def test_an_unsigned_shopify_topic_cannot_turn_a_payment_into_a_cancellation(omni: Omni) -> None:
    order = {"id": 7, "email": "ada@example.com", "financial_status": "paid", "total_price": "10.00"}
    assert handle(omni, "shopify", wr.shopify(order, topic="orders/cancelled")) == 403


@pytest.mark.parametrize(("provider", "method", "allowed"), [
    ("twilio", "PUT", "GET, POST"), ("twilio", "DELETE", "GET, POST"), ("vonage", "PATCH", "GET, POST"),
    ("sendgrid", "GET", "POST"), ("mailgun", "GET", "POST"), ("lob", "GET", "POST"), ("square", "PUT", "POST"),
    ("shopify", "GET", "POST"), ("whatsapp", "PUT", "GET, POST"), ("messenger", "DELETE", "GET, POST"),
])
def test_a_method_the_provider_never_uses_is_405(omni: Omni, provider: str, method: str, allowed: str) -> None:
    before = recorded(omni)
    answer = omni.handle_webhook(provider, method, f"{wr.BASE}/{provider}", {}, b"")
    assert (answer.status, answer.headers["allow"]) == (405, allowed)
    assert recorded(omni) == before


# -- replays and stale timestamps

def test_a_mailgun_token_reused_on_another_body_is_refused_409_in_every_process(
    omni: Omni, store_url: str, clock: VirtualClock
) -> None:
    omni.identify("c-1", email="ada@example.com")
    now = clock.timestamp()
    delivered = {"event": "delivered", "id": "mg-ev-1", "recipient": "ada@example.com", "timestamp": now}
    assert handle(omni, "mailgun", wr.mailgun(delivered, now=now)) == 200
    assert handle(omni, "mailgun", wr.mailgun(delivered, now=now)) == 200  # a retry: acknowledged, nothing new
    after_first = recorded(omni)
    complaint = {**delivered, "event": "complained", "id": "mg-ev-2"}
    with Omni(store_url, config=wr.config(), clock=clock) as other_worker:
        assert handle(other_worker, "mailgun", wr.mailgun(complaint, now=now)) == 409
    assert recorded(omni) == after_first
    assert handle(omni, "mailgun", wr.mailgun(complaint, now=now, token="tok-2")) == 200


def test_an_identical_request_without_event_ids_is_recorded_once(omni: Omni, clock: VirtualClock) -> None:
    """Lob events without an id: the request digest is the nonce, so a replay records nothing."""
    payload = {"event_type": {"id": "postcard.delivered"}, "body": {"id": "psc_1", "object": "postcard"}}
    request = wr.lob(payload, now=clock.timestamp())
    assert handle(omni, "lob", request) == handle(omni, "lob", request) == 200
    with omni.store.transaction(immediate=False) as tx:
        assert tx.scalar("SELECT COUNT(*) FROM webhook_requests WHERE provider = 'lob'") == 1


def test_a_replayed_stop_or_start_changes_nothing(omni: Omni) -> None:
    omni.identify("c-1", phone=PHONE)
    omni.consent("c-1", channel="sms", granted=True)
    stop, start = wr.inbound_sms("STOP", SID_STOP), wr.inbound_sms("START", SID_START)
    for request in (stop, start, stop):
        assert handle(omni, "twilio", request) == 200
    assert consents(omni)["marketing"][:2] == (True, "webhook:twilio:START")


def test_nonces_are_forgotten_after_the_retention(omni: Omni, clock: VirtualClock) -> None:
    handle(omni, "lob", wr.lob({"event_type": {"id": "x"}}, now=clock.timestamp()))
    clock.advance(days=31)
    handle(omni, "lob", wr.lob({"event_type": {"id": "y"}}, now=clock.timestamp()))
    with omni.store.transaction(immediate=False) as tx:
        assert tx.scalar("SELECT COUNT(*) FROM webhook_requests") == 1


def _stale(provider: str, now: float) -> wr.Request:
    old = now - 3600
    return {
        "vonage": lambda: wr.vonage({"msisdn": "14155550100", "to": "15017122661", "messageId": "v1", "text": "STOP"},
                                    now=old),
        "sendgrid": lambda: wr.sendgrid([{"event": "unsubscribe", "email": "ada@example.com", "sg_event_id": "e1"}],
                                        now=old),
        "mailgun": lambda: wr.mailgun({"event": "unsubscribed", "recipient": "ada@example.com"}, now=old),
        "lob": lambda: wr.lob({"event_type": {"id": "postcard.delivered"}}, now=old),
    }[provider]()


@pytest.mark.parametrize("provider", ["vonage", "sendgrid", "mailgun", "lob"])
def test_a_signature_older_than_the_tolerance_is_refused(omni: Omni, clock: VirtualClock, provider: str) -> None:
    omni.identify("c-1", phone=PHONE, email="ada@example.com")
    before = recorded(omni)
    assert handle(omni, provider, _stale(provider, clock.timestamp())) == 401
    assert recorded(omni) == before


def test_a_nan_timestamp_does_not_pass_the_tolerance(omni: Omni, clock: VirtualClock) -> None:
    method, url, headers, body = wr.vonage({"msisdn": "14155550100", "text": "STOP", "messageId": "v1"},
                                           now=clock.timestamp())
    forged = body.replace(f"timestamp={int(clock.timestamp())}".encode(), b"timestamp=nan")
    assert omni.handle_webhook("vonage", method, url, headers, forged).status == 401


# -- Twilio fidelity: twilio-python's RequestValidator is the oracle

@pytest.mark.parametrize(("signed", "received"), [
    ("https://shop.example/hook", "https://shop.example:8443/hook"),
    ("https://shop.example:8443/hook", "https://shop.example/hook"),
    ("https://shop.example:443/hook", "https://shop.example/hook"),
    ("https://shop.example/hook?a=1", "https://shop.example:443/hook?a=1"),
    ("http://shop.example/hook", "http://shop.example:80/hook"),
    ("http://shop.example:8080/hook", "http://shop.example:8080/hook"),
    ("http://shop.example:8080/hook", "http://shop.example:9090/hook"),
])
@pytest.mark.parametrize("algorithm", [None, "HMAC_SHA256"])
def test_ports_and_algorithms_accepted_exactly_where_request_validator_accepts(
    omni: Omni, signed: str, received: str, algorithm: str | None
) -> None:
    params = {"MessageSid": "SM" + "9" * 32, "MessageStatus": "sent"}
    method, _, headers, body = wr.twilio(params, url=received, signed_url=signed, algorithm=algorithm)
    token = wr.TWILIO_SHARED["webhooks_sharedkey_1"] if algorithm else wr.TWILIO_TOKEN
    oracle = RequestValidator(token).validate(received, params, headers["X-Twilio-Signature"], algorithm)
    answer = omni.handle_webhook("twilio", method, received, headers, body)
    assert answer.status == (200 if oracle else 401)


def test_a_sharedkey_signature_needs_that_key(omni: Omni) -> None:
    method, url, headers, body = wr.twilio({"MessageSid": "SM1", "MessageStatus": "sent"}, algorithm="HMAC_SHA256")
    headers["X-Twilio-Webhooks-Signature-Settings"] = "key=webhooks_sharedkey_unknown,algorithm=HMAC_SHA256"
    assert omni.handle_webhook("twilio", method, url, headers, body).status == 401
    headers["X-Twilio-Webhooks-Signature-Settings"] = "key=webhooks_sharedkey_1,algorithm=HMAC_MD5"
    assert omni.handle_webhook("twilio", method, url, headers, body).status == 401


# -- keyword rules and evidence

def test_yes_from_a_number_that_never_opted_in_grants_nothing(omni: Omni) -> None:
    """The reported case: "Yes" without a double opt-in prompt is an ordinary reply."""
    assert handle(omni, "twilio", wr.inbound_sms("Yes", SID_YES, phone="+14155550177")) == 200
    [customer_id] = {t.customer_id for t in _all_touchpoints(omni)}
    customer = omni.customer(customer_id)
    assert not customer.has_consent("sms") and customer.consents == ()
    omni.identify("c-1", phone=PHONE)
    handle(omni, "twilio", wr.inbound_sms("Y", "SM" + "4" * 32))
    assert not omni.customer("c-1").has_consent("sms")


def _all_touchpoints(omni: Omni) -> list[Any]:
    with omni.store.transaction(immediate=False) as tx:
        ids = [row[0] for row in tx.query("SELECT DISTINCT customer_id FROM touchpoints")]
    return [t for cid in ids for t in omni.timeline(cid)]


def send_prompt(omni: Omni, key: str = "p1") -> str:
    with omni.store.transaction() as tx:
        did = enqueue_delivery(tx, key=key, customer_id="c-1", template="sms-opt-in", channels=["sms"],
                               now=omni.clock.timestamp(), purpose="transactional")
    with omni.store.transaction() as tx:  # as the dispatcher leaves it once Twilio accepted it
        tx.execute("UPDATE deliveries SET status = 'sent', channel = 'sms', provider = 'twilio', address = ?, "
                   "sent_at = ? WHERE id = ?", (PHONE, omni.clock.timestamp(), did))
    return did


def test_yes_answering_a_recent_prompt_grants_marketing_with_its_evidence(omni: Omni, clock: VirtualClock) -> None:
    omni.identify("c-1", phone=PHONE)
    prompt = send_prompt(omni)
    clock.advance(minutes=10)
    handle(omni, "twilio", wr.inbound_sms("yes!", SID_YES))
    assert consents(omni)["marketing"] == (True, "webhook:twilio:YES", f"{SID_YES} answering {prompt}")


def test_yes_after_the_window_or_after_a_stop_grants_nothing(omni: Omni, clock: VirtualClock) -> None:
    omni.identify("c-1", phone=PHONE)
    send_prompt(omni)
    clock.advance(hours=2)
    handle(omni, "twilio", wr.inbound_sms("YES", SID_YES))
    assert "marketing" not in consents(omni)
    send_prompt(omni, "p2")
    clock.advance(minutes=1)
    handle(omni, "twilio", wr.inbound_sms("STOP", SID_STOP))
    clock.advance(minutes=1)
    handle(omni, "twilio", wr.inbound_sms("YES", "SM" + "5" * 32))
    assert consents(omni)["marketing"][0] is False


def test_start_restores_only_what_stop_revoked(omni: Omni, clock: VirtualClock) -> None:
    omni.identify("c-1", phone=PHONE)  # never granted marketing
    handle(omni, "twilio", wr.inbound_sms("STOP", SID_STOP))
    assert consents(omni) == {"marketing": (False, "webhook:twilio:STOP", SID_STOP),
                              "transactional": (False, "webhook:twilio:STOP", SID_STOP)}
    clock.advance(minutes=1)
    handle(omni, "twilio", wr.inbound_sms("unstop", SID_START))
    after = consents(omni)
    assert after["transactional"] == (True, "webhook:twilio:START", SID_START)
    assert after["marketing"][0] is False  # START does not grant marketing never given
    assert not omni.customer("c-1").has_consent("sms")


def test_start_after_stop_restores_a_marketing_grant(omni: Omni, clock: VirtualClock) -> None:
    omni.identify("c-1", phone=PHONE)
    omni.consent("c-1", channel="sms", granted=True, source="checkout-form")
    for sid in (SID_STOP, "SM" + "6" * 32):
        clock.advance(minutes=1)
        handle(omni, "twilio", wr.inbound_sms("STOP", sid))
    clock.advance(minutes=1)
    handle(omni, "twilio", wr.inbound_sms("START", SID_START))
    assert omni.customer("c-1").has_consent("sms")


def test_start_without_a_stop_changes_nothing(omni: Omni) -> None:
    omni.identify("c-1", phone=PHONE)
    omni.consent("c-1", channel="sms", granted=False, source="preference-center")
    handle(omni, "twilio", wr.inbound_sms("START", SID_START))
    assert consents(omni)["marketing"] == (False, "preference-center", None)


def test_help_is_answered_and_recorded_without_a_consent_change(omni: Omni) -> None:
    omni.identify("c-1", phone=PHONE)
    method, url, headers, body = wr.inbound_sms("HELP", "SM" + "7" * 32)
    answer = omni.handle_webhook("twilio", method, url, headers, body)
    assert b"Reply STOP to unsubscribe" in answer.body
    assert [(t.name, t.properties["keyword"]) for t in omni.timeline("c-1")] == [("Message Replied", "HELP")]
    assert consents(omni) == {}


def test_sendgrid_unsubscribe_keeps_the_event_id_as_evidence(omni: Omni, clock: VirtualClock) -> None:
    omni.identify("c-1", email="ada@example.com")
    omni.consent("c-1", channel="email", granted=True)
    events = [{"event": "unsubscribe", "email": "ada@example.com", "sg_event_id": "sg-1", "timestamp": 1}]
    assert handle(omni, "sendgrid", wr.sendgrid(events, now=clock.timestamp())) == 200
    entry = omni.customer("c-1").consent_for("email")
    assert entry is not None and (entry.granted, entry.source) == (False, "webhook:sendgrid")
    assert entry.evidence is not None and json.dumps(entry.evidence)


def test_a_grant_older_than_the_latest_revocation_is_ignored(omni: Omni, clock: VirtualClock) -> None:
    """Re-ordered delivery: a resubscribe that happened before the unsubscribe, arriving after it."""
    omni.identify("c-1", email="ada@example.com")
    now = clock.timestamp()
    unsubscribe = [{"event": "unsubscribe", "email": "ada@example.com", "sg_event_id": "u1", "timestamp": int(now)}]
    late_resubscribe = [{"event": "group_resubscribe", "email": "ada@example.com", "sg_event_id": "r1",
                         "timestamp": int(now) - 60}]
    assert handle(omni, "sendgrid", wr.sendgrid(unsubscribe, now=now)) == 200
    assert handle(omni, "sendgrid", wr.sendgrid(late_resubscribe, now=now)) == 200
    assert not omni.customer("c-1").has_consent("email")
    clock.advance(minutes=5)
    later = [{"event": "group_resubscribe", "email": "ada@example.com", "sg_event_id": "r2",
              "timestamp": int(clock.timestamp())}]
    assert handle(omni, "sendgrid", wr.sendgrid(later, now=clock.timestamp())) == 200
    assert omni.customer("c-1").has_consent("email")


def test_long_nonces_sharing_a_prefix_are_told_apart(omni: Omni, clock: VirtualClock) -> None:
    now = clock.timestamp()
    first, second = "t" * 600 + "1", "t" * 600 + "2"
    assert handle(omni, "mailgun", wr.mailgun({"event": "opened", "id": "a"}, now=now, token=first)) == 200
    assert handle(omni, "mailgun", wr.mailgun({"event": "clicked", "id": "b"}, now=now, token=second)) == 200
    assert handle(omni, "mailgun", wr.mailgun({"event": "complained", "id": "c"}, now=now, token=first)) == 409


def test_sharedkey_secrets_are_masked_like_every_declared_secret(omni: Omni) -> None:
    secret = wr.TWILIO_SHARED["webhooks_sharedkey_1"]
    assert secret not in repr(omni.config) and secret not in repr(omni.provider("sms"))
    assert "webhooks_sharedkey_1" in repr(omni.config)  # the key id is not secret
