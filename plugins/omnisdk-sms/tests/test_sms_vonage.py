"""Vonage: errors inside HTTP 200, status 1 throttled → retry, contract-checked requests, signed receipts."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from omnisdk_sms import VonageSMS
from omnisdk_sms.vonage import vonage_signature

import omnisdk
from omnisdk.testing import provider_config
from omnisdk.testing.conformance import ProviderSuite, Reply, ScriptedHTTPEndpoint
from omnisdk.testing.imitations import VonageImitation

SECRET = "sig-secret-123"


def vonage(base_url: str = "https://rest.nexmo.com", **settings: Any) -> VonageSMS:
    config = provider_config(VonageSMS, {"api_key": "abcd1234", "api_secret": "abcdef0123456789", "from": "AcmeShop",
                                         "signature_secret": SECRET, "base_url": base_url, **settings}, "channels.sms")
    return VonageSMS(config, http=httpx.AsyncClient())


def sms(text: str) -> omnisdk.Outgoing:
    return ProviderSuite.make_outgoing(to="+447911123456", content=omnisdk.SMS(text=text))


async def send(provider: VonageSMS, *messages: omnisdk.Outgoing) -> list[omnisdk.providers.Outcome]:
    async with provider.http:
        return list(await provider.send(messages))


def test_long_unicode_text_is_sent_as_unicode_with_its_parts_priced() -> None:
    with VonageImitation() as api:
        [outcome] = asyncio.run(send(vonage(api.base_url, status_callback="https://shop.example/dlr"),
                                     sms("Olá! " + "ç" * 80)))
    api.assert_no_violations()
    assert isinstance(outcome, omnisdk.Accepted)
    assert outcome.details == {"segments": 2, "encoding": "UCS-2"}
    assert outcome.cost == pytest.approx(2 * 0.0333)
    form = api.requests[0].body
    assert (form["type"], form["to"], form["client-ref"]) == ("unicode", "447911123456", sms("").delivery_id)


def status_reply(status: str, text: str) -> Reply:
    return Reply(200, body={"message-count": "1", "messages": [{"status": status, "error-text": text}]})


@pytest.mark.parametrize(("status", "kind", "forget"), [
    ("1", omnisdk.RetryableError, False), ("5", omnisdk.RetryableError, False),
    ("3", omnisdk.PermanentError, False), ("6", omnisdk.PermanentError, False),
    ("33", omnisdk.PermanentError, True),
])
def test_errors_inside_http_200(status: str, kind: type, forget: bool) -> None:
    async def run() -> omnisdk.providers.Outcome:
        async with ScriptedHTTPEndpoint({"ok": status_reply(status, "Throttled")}) as endpoint:
            return (await send(vonage(endpoint.base_url), sms("hi")))[0]

    outcome = asyncio.run(run())
    assert isinstance(outcome, kind)
    if isinstance(outcome, omnisdk.PermanentError):
        assert outcome.code == status and outcome.forget_address is forget
    if status == "1":
        assert outcome.retry_after == 1.0  # type: ignore[union-attr]


def test_bad_credentials_from_the_imitation_are_permanent() -> None:
    with VonageImitation(api_secret="other-secret-0") as api:
        [outcome] = asyncio.run(send(vonage(api.base_url), sms("hi")))
    assert isinstance(outcome, omnisdk.PermanentError)


def signed(params: dict[str, str], method: str = "md5hash", secret: str = SECRET) -> omnisdk.WebhookRequest:
    query = urlencode({**params, "sig": vonage_signature(secret, params, method)})
    return omnisdk.WebhookRequest(method="GET", url=f"https://shop.example/omnisdk/webhooks/vonage?{query}", headers={})


def receipt(status: str = "delivered", **extra: str) -> dict[str, str]:
    return {"msisdn": "447911123456", "to": "AcmeShop", "messageId": "0A0000001234567B", "status": status,
            "err-code": "0", "client-ref": "dlv_1", "timestamp": str(int(time.time())), "nonce": "n1", **extra}


@pytest.mark.parametrize("method", ["md5hash", "md5", "sha1", "sha256", "sha512"])
def test_signed_receipts_verify_with_every_method(method: str) -> None:
    provider = vonage(signature_method=method)
    request = signed(receipt(), method)
    provider.verify_webhook(request)
    [event] = provider.parse_webhook(request).events
    assert (event.name, event.provider_message_id, event.delivery_id) == ("Message Delivered", "0A0000001234567B",
                                                                          "dlv_1")


def test_values_with_ampersands_are_signed_as_vonage_does() -> None:
    provider = vonage()
    provider.verify_webhook(signed(receipt(**{"client-ref": "a&b=c"})))


@pytest.mark.parametrize("problem", ["tampered", "wrong secret", "missing sig", "stale", "no secret configured"])
def test_bad_webhooks_are_refused(problem: str) -> None:
    provider = vonage(signature_secret=None) if problem == "no secret configured" else vonage()
    request = signed(receipt(), secret="other" if problem == "wrong secret" else SECRET)
    if problem == "tampered":
        request = omnisdk.WebhookRequest(method="GET", url=request.url.replace("delivered", "failed"), headers={})
    elif problem == "missing sig":
        request = omnisdk.WebhookRequest(method="GET", url=request.url.split("&sig=")[0], headers={})
    elif problem == "stale":
        request = signed(receipt(timestamp=str(int(time.time()) - 3600)))
    with pytest.raises(omnisdk.WebhookError) as caught:
        provider.verify_webhook(request)
    assert caught.value.status == 401


def test_inbound_stop_unsubscribes_the_sender() -> None:
    params = {"msisdn": "447911123456", "to": "447700900000", "messageId": "0B00000012345678", "text": "Stop",
              "type": "text", "timestamp": str(int(time.time()))}
    provider = vonage()
    request = signed(params)
    provider.verify_webhook(request)
    [event] = provider.parse_webhook(request).events
    assert (event.name, event.channel, dict(event.who)) == ("Unsubscribed", "sms", {"phone": "+447911123456"})


# -- Vonage's own SDK as the oracle -----------------------------------------------------------------


@pytest.mark.parametrize("length", [99, 100, 101, 180])
def test_a_callback_vonage_would_refuse_is_a_config_error(length: int) -> None:
    from pydantic import ValidationError
    from vonage_sms import SmsMessage

    url = "https://shop.example/dlr?k=" + "x" * (length - len("https://shop.example/dlr?k="))
    try:
        SmsMessage(to="447911123456", from_="AcmeShop", text="hi", callback=url)
    except ValidationError:
        with pytest.raises(omnisdk.ConfigError) as info:
            vonage(status_callback=url)
        assert info.value.field == "status_callback" and "100" in str(info.value)
    else:
        assert vonage(status_callback=url).config.status_callback == url


@pytest.mark.parametrize("text", ["Hi Ada, your order shipped", "Olá! " + "ç" * 80, "Price: 5€ {today}"])
def test_the_form_we_send_is_a_valid_sdk_message(text: str) -> None:
    from vonage_sms import SmsMessage

    callback = "https://shop.example/" + "d" * (100 - len("https://shop.example/"))
    with VonageImitation() as api:
        [outcome] = asyncio.run(send(vonage(api.base_url, status_callback=callback), sms(text)))
    assert isinstance(outcome, omnisdk.Accepted)
    form = api.requests[0].body
    message = SmsMessage.model_validate({"from_": form["from"], "client_ref": form["client-ref"], **{
        name: form[name] for name in ("to", "text", "type", "callback")}})
    assert message.model_dump(by_alias=True, exclude_none=True) == {
        name: form[name] for name in ("to", "from", "text", "type", "callback", "client-ref")}
