"""Twilio: requests the contract accepts, the official signature vectors, STOP/START/HELP, status callbacks."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from omnisdk_sms import TwilioSMS
from omnisdk_sms.twilio import twilio_signature

import omnisdk
from omnisdk.testing import provider_config
from omnisdk.testing.conformance import ProviderSuite
from omnisdk.testing.imitations import Faults, TwilioImitation

SID = "AC" + "a" * 32
TOKEN = "authtoken"
HOOK = "https://shop.example/omnisdk/webhooks/twilio"


def twilio(base_url: str = "https://api.twilio.com", **settings: Any) -> TwilioSMS:
    config = provider_config(TwilioSMS, {"account_sid": SID, "auth_token": TOKEN, "from": "+15017122661",
                                         "base_url": base_url, **settings}, "channels.sms")
    return TwilioSMS(config, http=httpx.AsyncClient())


def sms(text: str, to: str = "+14155550100") -> omnisdk.Outgoing:
    return ProviderSuite.make_outgoing(to=to, content=omnisdk.SMS(text=text))


async def send(provider: TwilioSMS, *messages: omnisdk.Outgoing) -> list[omnisdk.providers.Outcome]:
    async with provider.http:
        return list(await provider.send(messages))


def inbound(body: str, provider_token: str = TOKEN, **extra: str) -> omnisdk.WebhookRequest:
    params = {"MessageSid": "SM" + "c" * 32, "From": "+14155550100", "To": "+15017122661", "Body": body,
              "SmsStatus": "received", **extra}
    signature = twilio_signature(provider_token, HOOK, {k: [v] for k, v in params.items()})
    return omnisdk.WebhookRequest(method="POST", url=HOOK, body=urlencode(params).encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})


def handle(provider: TwilioSMS, request: omnisdk.WebhookRequest) -> omnisdk.WebhookResult:
    provider.verify_webhook(request)
    return provider.parse_webhook(request)


# -- sending, against the imitation that checks each request against Twilio's OpenAPI contract

def test_send_records_segments_and_encoding() -> None:
    with TwilioImitation(account_sid=SID, auth_token=TOKEN) as api:
        outcomes = asyncio.run(send(twilio(api.base_url, status_callback=HOOK),
                                    sms("a" * 161), sms("Olá 😀", to="+14155550101")))
    api.assert_no_violations()
    assert [o.details for o in outcomes if isinstance(o, omnisdk.Accepted)] == [
        {"segments": 2, "encoding": "GSM-7"}, {"segments": 1, "encoding": "UCS-2"}]
    assert [m["to"] for m in api.messages] == ["+14155550100", "+14155550101"]
    assert api.messages[0]["sid"] == outcomes[0].provider_message_id  # type: ignore[union-attr]
    assert api.requests[0].body["StatusCallback"] == HOOK


def test_rcs_goes_through_the_messaging_service_with_sms_fallback() -> None:
    with TwilioImitation(account_sid=SID, auth_token=TOKEN) as api:
        [outcome] = asyncio.run(send(twilio(api.base_url, rcs=True, messaging_service_sid="MG" + "b" * 32), sms("hi")))
    api.assert_no_violations()
    sent = api.requests[0].body
    assert sent["MessagingServiceSid"] == "MG" + "b" * 32 and sent["FallbackFrom"] == "+15017122661"
    assert "From" not in sent
    assert isinstance(outcome, omnisdk.Accepted) and outcome.details["rcs"] is True


def test_rcs_without_a_messaging_service_is_a_config_error() -> None:
    with pytest.raises(omnisdk.ConfigError, match="messaging_service_sid"):
        twilio(rcs=True)


def test_wrong_credentials_are_permanent_and_never_logged() -> None:
    with TwilioImitation(account_sid=SID, auth_token="other") as api:
        [outcome] = asyncio.run(send(twilio(api.base_url), sms("hi")))
    assert isinstance(outcome, omnisdk.PermanentError) and outcome.status == 401 and outcome.code == "20003"
    assert TOKEN not in repr(outcome)


def test_rate_limit_from_the_imitation_is_retryable_after_its_delay() -> None:
    faults = Faults(retry_after=3)
    faults.fail_next(1, "rate_limit")
    with TwilioImitation(account_sid=SID, auth_token=TOKEN, faults=faults) as api:
        first, second = asyncio.run(send(twilio(api.base_url), sms("one"), sms("two")))
    assert isinstance(first, omnisdk.RetryableError) and first.retry_after == 3
    assert isinstance(second, omnisdk.Accepted)


def test_invalid_number_is_refused_without_a_request() -> None:
    with TwilioImitation(account_sid=SID, auth_token=TOKEN) as api:
        [outcome] = asyncio.run(send(twilio(api.base_url), sms("hi", to="+1555")))
    assert isinstance(outcome, omnisdk.PermanentError) and outcome.forget_address and api.requests == []


# -- X-Twilio-Signature: the official vectors (webhook_vectors.md §1)

VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309", "To": "+18005551212",
                 "Caller": "+14158675309"}


@pytest.mark.parametrize(("url", "signature"), [
    (VECTOR_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    ("https://mycompany.com:443/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),
    ("http://mycompany.com:80/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
    ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
])
def test_official_signature_vectors(url: str, signature: str) -> None:
    assert twilio_signature("12345", url, {k: [v] for k, v in VECTOR_PARAMS.items()}) == signature


def vector_request(url: str, signature: str, body: bytes, content_type: str) -> omnisdk.WebhookRequest:
    return omnisdk.WebhookRequest(method="POST", url=url, body=body,
                                  headers={"Content-Type": content_type, "X-Twilio-Signature": signature})


@pytest.mark.parametrize("signature", ["RSOYDt4T1cUTdK1PDd93/VVr8B8=", "kvajT1Ptam85bY51eRf/AJRuM3w="])
def test_verifies_the_vectors_with_or_without_the_default_port(signature: str) -> None:
    provider = twilio(auth_token="12345")
    form = urlencode(VECTOR_PARAMS).encode()
    provider.verify_webhook(vector_request(VECTOR_URL, signature, form, "application/x-www-form-urlencoded"))


def test_repeated_values_vector() -> None:
    params = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]
    provider = twilio(auth_token="12345")
    provider.verify_webhook(vector_request(VECTOR_URL, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", urlencode(params).encode(),
                                           "application/x-www-form-urlencoded"))


def test_json_body_vector_and_tampering() -> None:
    body = b'{"property": "value", "boolean": true}'
    url = VECTOR_URL + "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    provider = twilio(auth_token="12345")
    provider.verify_webhook(vector_request(url, "a9nBmqA0ju/hNViExpshrM61xv4=", body, "application/json"))
    with pytest.raises(omnisdk.WebhookError) as caught:
        provider.verify_webhook(vector_request(url, "a9nBmqA0ju/hNViExpshrM61xv4=", body.replace(b"true", b"false"),
                                               "application/json"))
    assert caught.value.status == 401


@pytest.mark.parametrize("change", ["body", "url", "token", "missing"])
def test_tampered_or_missing_signatures_are_refused(change: str) -> None:
    request = inbound("STOP")
    provider = twilio(auth_token="other-token") if change == "token" else twilio()
    if change == "body":
        request = omnisdk.WebhookRequest(method="POST", url=HOOK, headers=request.headers,
                                         body=request.body.replace(b"STOP", b"START"))
    elif change == "url":
        request = omnisdk.WebhookRequest(method="POST", url=HOOK + "/x", headers=request.headers, body=request.body)
    elif change == "missing":
        request = omnisdk.WebhookRequest(method="POST", url=HOOK, headers={"Content-Type": "x"}, body=request.body)
    with pytest.raises(omnisdk.WebhookError) as caught:
        provider.verify_webhook(request)
    assert caught.value.status == 401


def test_status_callbacks_signed_by_the_imitation_verify_and_map() -> None:
    with TwilioImitation(account_sid=SID, auth_token=TOKEN) as api:
        provider = twilio(api.base_url, status_callback=HOOK)
        [accepted] = asyncio.run(send(provider, sms("hi")))
        delivered = api.status_callbacks("delivered")
        bounced = api.status_callbacks("undelivered", error_code=30006)
    events = []
    for request in (*delivered, *bounced):
        webhook = omnisdk.WebhookRequest(method="POST", url=str(request.url), headers=dict(request.headers),
                                         body=request.read())
        events += handle(twilio(), webhook).events
    assert [(e.name, e.provider_message_id, e.properties.get("bounce_type")) for e in events] == [
        ("Message Delivered", accepted.provider_message_id, None),  # type: ignore[union-attr]
        ("Message Bounced", accepted.provider_message_id, "hard"),  # type: ignore[union-attr]
    ]


# -- STOP / START / HELP

@pytest.mark.parametrize(("body", "event"), [
    ("STOP", "Unsubscribed"), (" stop. ", "Unsubscribed"), ("Unsubscribe", "Unsubscribed"), ("QUIT", "Unsubscribed"),
    ("stop all", "Unsubscribed"), ("START", "Subscribed"), ("unstop", "Subscribed"), ("yes", "Message Replied"),
    ("Y", "Message Replied"), ("opt out", "Unsubscribed"),
    ("please stop texting me", "Message Replied"), ("HELP", "Message Replied"),
])
def test_keywords_become_consent_changes(body: str, event: str) -> None:
    [result] = handle(twilio(), inbound(body)).events
    assert (result.name, result.channel, dict(result.who)) == (event, "sms", {"phone": "+14155550100"})
    assert result.properties["message_id"] == "SM" + "c" * 32  # the evidence the consent change keeps


def test_yes_is_only_a_keyword_the_core_weighs_against_a_prompt() -> None:
    [result] = handle(twilio(), inbound("Yes")).events
    assert (result.name, result.properties["keyword"]) == ("Message Replied", "YES")


@pytest.mark.parametrize(("body", "advanced", "answer"), [
    ("HELP", False, "Reply STOP to unsubscribe"), ("HELP", True, "Reply STOP to unsubscribe"),
    ("STOP", False, "You are unsubscribed"), ("STOP", True, None),
    ("START", False, "You are subscribed again"), ("START", True, None),
    ("thanks!", False, None),
])
def test_answers_as_carriers_require(body: str, advanced: bool, answer: str | None) -> None:
    response = handle(twilio(advanced_opt_out=advanced), inbound(body)).response
    assert response.status == 200 and response.headers["Content-Type"] == "application/xml"
    text = response.body.decode()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?><Response>')
    if answer is None:
        assert "<Message>" not in text
    else:
        assert f"<Message>{answer}" in text


def test_help_text_is_xml_escaped() -> None:
    response = handle(twilio(help_text="Terms & <conditions>"), inbound("help")).response
    assert b"<Message>Terms &amp; &lt;conditions&gt;</Message>" in response.body


def test_rcs_inbound_sender_is_the_phone_number() -> None:
    [event] = handle(twilio(), inbound("STOP", From="rcs:+14155550100")).events
    assert event.who == {"phone": "+14155550100"}


def test_malformed_body_is_a_400() -> None:
    request = omnisdk.WebhookRequest(method="POST", url=HOOK, body=b"\xff\xfe", headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"})
    with pytest.raises(omnisdk.WebhookError) as caught:
        twilio().verify_webhook(request)
    assert caught.value.status == 400



def test_a_get_reads_its_fields_from_the_signed_url_only() -> None:
    """The forged GET: signed over the URL, with From and Body in a form body nothing signs."""
    request = omnisdk.WebhookRequest(method="GET", url=HOOK, body=b"From=%2B14155550100&Body=START", headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": twilio_signature(TOKEN, HOOK)})
    with pytest.raises(omnisdk.WebhookError) as caught:
        handle(twilio(), request)
    assert caught.value.status == 403
    url = f"{HOOK}?{urlencode({'MessageSid': 'SM1', 'From': '+14155550100', 'Body': 'STOP'})}"
    signed_get = omnisdk.WebhookRequest(method="GET", url=url,
                                        headers={"X-Twilio-Signature": twilio_signature(TOKEN, url)})
    [event] = handle(twilio(), signed_get).events
    assert event.name == "Unsubscribed"


@pytest.mark.parametrize("code", ["²", "١٢٣", "x"])
def test_an_error_code_that_is_not_ascii_digits_is_no_error_code(code: str) -> None:
    params = {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": code}
    request = omnisdk.WebhookRequest(method="POST", url=HOOK, body=urlencode(params).encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(TOKEN, HOOK, {k: [v] for k, v in params.items()})})
    [event] = handle(twilio(), request).events
    assert event.name == "Message Failed" and "error_code" not in event.properties
