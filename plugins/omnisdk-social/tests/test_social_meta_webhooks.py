"""Meta webhooks: X-Hub-Signature-256 vectors (webhook_vectors.md §6), the verify-token handshake, and parsing."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import httpx
import pytest
from omnisdk_social import Messenger, WhatsAppCloud
from omnisdk_social._graph import verify_meta_webhook

from omnisdk import Events, WebhookError, WebhookRequest

GITHUB_SECRET, GITHUB_BODY = "It's a Secret to Everybody", b"Hello, World!"
GITHUB_SIG = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
META_SECRET = "appsecret123"
META_BODY = (
    b'{"object":"whatsapp_business_account","entry":[{"id":"0","changes":[{"field":"messages","value":'
    b'{"messaging_product":"whatsapp","messages":[{"from":"16315551181","id":"wamid.ABGGFlA5Fpa",'
    b'"timestamp":"1504902988","type":"text","text":{"body":"caf\\u00e9"}}]}}]}]}'
)
META_SIG = "sha256=9771954ac5103eeb8794ef35303406fd872de60f64dca446bcf1af2b3e566b9a"
HOOK = "https://shop.example/omnisdk/webhooks/whatsapp"


def post(body: bytes, signature: str | None) -> WebhookRequest:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return WebhookRequest(method="POST", url=HOOK, headers=headers, body=body)


def sign(body: bytes, secret: str = META_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def whatsapp() -> WhatsAppCloud:
    config = WhatsAppCloud.Config(app_secret=META_SECRET, verify_token="my-verify-token", phone_number_id="1055",
                                  access_token="EAAG-test")
    return WhatsAppCloud(config, http=httpx.AsyncClient())


def test_confirmed_github_vector_passes() -> None:
    verify_meta_webhook(post(GITHUB_BODY, GITHUB_SIG), app_secret=GITHUB_SECRET, verify_token="")


def test_meta_shaped_vector_passes_on_the_raw_escaped_bytes() -> None:
    assert b"\\u00e9" in META_BODY  # the six escaped characters, never re-encoded
    whatsapp().verify_webhook(post(META_BODY, META_SIG))


@pytest.mark.parametrize(
    ("body", "signature"),
    [
        (META_BODY.replace(b"caf\\u00e9", "café".encode()), META_SIG),  # re-encoded body
        (META_BODY.replace(b"16315551181", b"16315551182"), META_SIG),  # tampered sender
        (META_BODY, META_SIG.replace("sha256=9", "sha256=8")),  # tampered signature
        (META_BODY, sign(META_BODY, "another-secret")),  # another app's secret
        (META_BODY, META_SIG.removeprefix("sha256=")),  # no scheme
        (META_BODY, None),  # unsigned
    ],
)
def test_tampered_or_unsigned_webhooks_are_refused_with_401(body: bytes, signature: str | None) -> None:
    with pytest.raises(WebhookError) as info:
        whatsapp().verify_webhook(post(body, signature))
    assert info.value.status == 401


def test_verify_token_handshake_echoes_the_challenge() -> None:
    provider = whatsapp()
    request = WebhookRequest(method="GET", headers={},
                             url=f"{HOOK}?hub.mode=subscribe&hub.verify_token=my-verify-token&hub.challenge=1158201444")
    provider.verify_webhook(request)
    result = provider.parse_webhook(request)
    assert result.response.status == 200 and result.response.body == b"1158201444" and result.events == ()


@pytest.mark.parametrize("query", ["hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
                                   "hub.mode=unsubscribe&hub.verify_token=my-verify-token&hub.challenge=1",
                                   "hub.challenge=1"])
def test_handshake_with_a_wrong_token_is_refused(query: str) -> None:
    with pytest.raises(WebhookError) as info:
        whatsapp().verify_webhook(WebhookRequest(method="GET", url=f"{HOOK}?{query}", headers={}))
    assert info.value.status == 403


def test_inbound_whatsapp_message_is_a_reply_from_that_phone() -> None:
    provider = whatsapp()
    request = post(META_BODY, META_SIG)
    provider.verify_webhook(request)
    [event] = provider.parse_webhook(request).events
    assert event.name == Events.MESSAGE_REPLIED and event.channel == "social"
    assert event.id == "wamid.ABGGFlA5Fpa"
    assert event.who == {"whatsapp_id": "16315551181", "phone": "+16315551181"}
    assert event.properties["text"] == "café"
    assert event.occurred_at == datetime.fromtimestamp(1504902988, UTC)


def test_whatsapp_statuses_become_delivery_events() -> None:
    statuses = [{"id": "wamid.1", "status": "delivered", "timestamp": "1700000000", "recipient_id": "16315551181"},
                {"id": "wamid.1", "status": "read", "timestamp": "1700000060", "recipient_id": "16315551181"},
                {"id": "wamid.2", "status": "failed", "timestamp": "1700000000", "recipient_id": "16315551181",
                 "errors": [{"code": 131047, "title": "Re-engagement message"}]},
                {"id": "wamid.3", "status": "sent", "timestamp": "1700000000", "recipient_id": "16315551181"}]
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp", "statuses": statuses}}]}]}).encode()
    events = whatsapp().parse_webhook(post(body, sign(body)))
    assert [(e.name, e.provider_message_id) for e in events.events] == [
        (Events.MESSAGE_DELIVERED, "wamid.1"), (Events.MESSAGE_OPENED, "wamid.1"), (Events.MESSAGE_FAILED, "wamid.2")]
    assert events.events[2].properties["error_code"] == 131047
    assert len({e.id for e in events.events}) == 3
    assert [e.delivery_id for e in events.events] == [None, None, None]


def test_a_whatsapp_status_names_its_delivery_by_the_callback_data() -> None:
    # what ties a status to its delivery when the send's answer (with the wamid) was lost
    statuses = [{"id": "wamid.9", "status": "delivered", "timestamp": "1700000000", "recipient_id": "16315551181",
                 "biz_opaque_callback_data": "dlv_0123"}]
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp", "statuses": statuses}}]}]}).encode()
    [event] = whatsapp().parse_webhook(post(body, sign(body))).events
    assert (event.name, event.provider_message_id) == (Events.MESSAGE_DELIVERED, "wamid.9")
    assert event.delivery_id == "dlv_0123"


def test_messenger_inbound_message_postback_and_delivery() -> None:
    provider = Messenger(Messenger.Config(app_secret=META_SECRET, page_access_token="EAAG-page"),
                         http=httpx.AsyncClient())
    messaging = [
        {"sender": {"id": "PSID-1"}, "recipient": {"id": "PAGE"}, "timestamp": 1700000000000,
         "message": {"mid": "m_1", "text": "Is it in stock?"}},
        {"sender": {"id": "PAGE"}, "recipient": {"id": "PSID-1"}, "timestamp": 1700000000500,
         "message": {"mid": "m_echo", "text": "yes", "is_echo": True}},
        {"sender": {"id": "PSID-1"}, "recipient": {"id": "PAGE"}, "timestamp": 1700000001000,
         "postback": {"mid": "m_2", "title": "Buy now", "payload": "BUY_SKU_1"}},
        {"sender": {"id": "PSID-1"}, "recipient": {"id": "PAGE"}, "timestamp": 1700000002000,
         "delivery": {"mids": ["m_out_1"], "watermark": 1700000002000}},
    ]
    body = json.dumps({"object": "page", "entry": [{"id": "PAGE", "time": 1, "messaging": messaging}]}).encode()
    request = post(body, sign(body))
    provider.verify_webhook(request)
    events = provider.parse_webhook(request).events
    assert [(e.name, e.id) for e in events] == [(Events.MESSAGE_REPLIED, "m_1"), (Events.MESSAGE_REPLIED, "m_2"),
                                                (Events.MESSAGE_DELIVERED, "m_out_1:delivered")]
    assert events[0].who == {"messenger_psid": "PSID-1"}
    assert events[1].properties["postback"] == "BUY_SKU_1"
    assert events[2].provider_message_id == "m_out_1"


def test_a_signed_body_that_is_not_json_is_a_400() -> None:
    with pytest.raises(WebhookError) as info:
        whatsapp().parse_webhook(post(b"not json", sign(b"not json")))
    assert info.value.status == 400
