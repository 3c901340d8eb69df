"""Lob tracking webhooks: the shared vector (webhook_vectors.md §5), tampering, replays, and the touchpoints."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

import httpx
import pytest
from omnisdk_directmail import LobDirectMail

from omnisdk import Events, VirtualClock, WebhookError, WebhookRequest

SECRET = "lob_whsec_test"
VECTOR_TS = "1700000000000"
VECTOR_BODY = (b'{"id":"evt_d95ff8ffd2b5cfb4","event_type":{"id":"postcard.delivered","resource":"postcards"},'
               b'"body":{"id":"psc_7c613b003bb6b4d1","object":"postcard"}}')
VECTOR_SIG = "eba04b094d1215784cfff0230fc833e96c433fa6d25be53fe9b9b4edee159df3"


VECTOR_NOW = datetime.fromtimestamp(1_700_000_030, UTC)


def mailer(now: datetime = VECTOR_NOW, secret: str = SECRET) -> LobDirectMail:
    config = LobDirectMail.Config(
        api_key="test_key", webhook_secret=secret,
        from_address={"name": "Acme", "line1": "210 King St", "city": "SF", "state": "CA", "postal_code": "94107"},
    )
    return LobDirectMail(config, http=httpx.AsyncClient(), clock=VirtualClock(now))


def request(body: bytes = VECTOR_BODY, signature: str = VECTOR_SIG, timestamp: str = VECTOR_TS) -> WebhookRequest:
    return WebhookRequest(method="POST", url="https://shop.example/webhooks/lob", body=body,
                          headers={"Content-Type": "application/json", "Lob-Signature": signature,
                                   "Lob-Signature-Timestamp": timestamp})


def sign(body: bytes, timestamp: str, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def test_vector_verifies_and_becomes_mail_delivered() -> None:
    provider = mailer()
    provider.verify_webhook(request())
    [event] = provider.parse_webhook(request()).events

    assert event.name == Events.MAIL_DELIVERED == "Mail Delivered"
    assert event.channel == "direct_mail"
    assert event.provider_message_id == "psc_7c613b003bb6b4d1"
    assert event.id == "lob:evt_d95ff8ffd2b5cfb4"
    assert event.properties == {"lob_event": "postcard.delivered", "piece": "postcard", "status": "delivered"}


@pytest.mark.parametrize("tampered", [
    request(body=VECTOR_BODY.replace(b"delivered", b"returned_to_sender")),
    request(signature="0" * 64),
    request(timestamp="1700000000001"),
    request(signature=""),
    request(timestamp="17e11"),
])
def test_tampered_requests_are_rejected(tampered: WebhookRequest) -> None:
    with pytest.raises(WebhookError) as caught:
        mailer().verify_webhook(tampered)
    assert caught.value.status == 401


def test_stale_timestamp_is_a_replay_even_when_signed() -> None:
    late = mailer(now=datetime.fromtimestamp(1_700_000_000 + 301, UTC))
    with pytest.raises(WebhookError, match="replay"):
        late.verify_webhook(request())


def test_timestamp_in_seconds_is_accepted_too() -> None:
    seconds = "1700000020"
    mailer().verify_webhook(request(signature=sign(VECTOR_BODY, seconds), timestamp=seconds))


def test_without_a_configured_secret_every_webhook_is_rejected() -> None:
    with pytest.raises(WebhookError, match="webhook_secret"):
        mailer(secret="").verify_webhook(request())


@pytest.mark.parametrize(("lob_event", "name"), [
    ("letter.mailed", Events.MAIL_MAILED),
    ("postcard.in_transit", Events.MAIL_IN_TRANSIT),
    ("postcard.processed_for_delivery", Events.MAIL_IN_TRANSIT),
    ("letter.returned_to_sender", Events.MAIL_RETURNED),
])
def test_tracking_events_map_to_mail_touchpoints_tied_to_the_delivery(lob_event: str, name: str) -> None:
    body = json.dumps({
        "id": "evt_1", "event_type": {"id": lob_event, "resource": "letters"}, "date_created": "2026-03-05T10:00:00Z",
        "body": {"id": "ltr_1", "metadata": {"omnisdk_delivery_id": "d-9"}, "expected_delivery_date": "2026-03-09"},
    }).encode()
    [event] = mailer().parse_webhook(request(body=body)).events

    assert (event.name, event.delivery_id, event.provider_message_id) == (name, "d-9", "ltr_1")
    assert event.occurred_at == datetime(2026, 3, 5, 10, tzinfo=UTC)
    assert event.properties["expected_delivery_date"] == "2026-03-09"


def test_other_lob_events_are_acknowledged_without_touchpoints() -> None:
    body = b'{"id":"evt_2","event_type":{"id":"postcard.rendered_pdf","resource":"postcards"},"body":{"id":"psc_1"}}'
    result = mailer().parse_webhook(request(body=body))

    assert result.events == () and result.response.status == 200


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"id":"evt_3"}'])
def test_malformed_bodies_are_rejected(body: bytes) -> None:
    with pytest.raises(WebhookError) as caught:
        mailer().parse_webhook(request(body=body))
    assert caught.value.status == 400
