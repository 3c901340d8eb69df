"""Through a whole Omni: the one-click unsubscribe in the received headers works, a complaint stops email."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

import omnisdk
from omnisdk import Email, Message, Omni
from omnisdk.asgi import create_app
from omnisdk.delivery import enqueue_delivery
from omnisdk.testing.imitations import SendGridImitation

LINKS = {"links": {"base_url": "https://shop.example/omnisdk"}}
PROMO = Message("promo", email=Email(subject="Summer sale", text="-20% today", html="<p>-20% today</p>"))


def prepare(omni: Omni) -> Omni:
    omni.templates.add(PROMO)
    omni.identify("c-1", email="ada@example.com")
    omni.consent("c-1", channel="email", granted=True)
    return omni


def send_promo(omni: Omni, key: str) -> omnisdk.Delivery:
    omni.clock.advance(days=2)  # type: ignore[attr-defined]  # past the same-template dedupe window
    with omni.store.transaction() as tx:
        did = enqueue_delivery(tx, key=key, customer_id="c-1", template="promo", channels=["email"],
                               now=omni.clock.timestamp())
    omni.run_until_idle()
    return next(d for d in omni.deliveries() if d.id == did)


def test_one_click_post_from_the_received_headers_unsubscribes(
    omni_factory: Callable[..., Omni], smtp_server: Any
) -> None:
    config = {"channels": {"email": {"provider": "smtp", "from": "Acme <hello@acme.example>",
                                     **smtp_server.settings}}, "templates": LINKS}
    omni = prepare(omni_factory(config))
    assert send_promo(omni, "k1").status == "sent"
    [received] = smtp_server.messages
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(received["List-Unsubscribe"]).strip("<>")
    assert url.startswith("https://shop.example/omnisdk/u/")

    async def one_click() -> httpx.Response:  # what Gmail does: POST the body RFC 8058 prescribes
        transport = httpx.ASGITransport(app=create_app(omni), root_path="/omnisdk")
        async with httpx.AsyncClient(transport=transport, base_url="https://shop.example") as client:
            return await client.post(url, content=b"List-Unsubscribe=One-Click",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})

    assert asyncio.run(one_click()).status_code == 200
    assert omni.customer("c-1").has_consent("email") is False
    assert send_promo(omni, "k2").status == "skipped"
    assert len(smtp_server.messages) == 1


def sign(key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str) -> dict[str, str]:
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}


def test_sendgrid_complaint_stops_all_marketing_email(omni_factory: Callable[..., Omni]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    with SendGridImitation(api_key="SG.e2e") as api:
        config = {"channels": {"email": {"provider": "sendgrid", "api_key": "SG.e2e", "from": "hello@acme.example",
                                         "base_url": api.base_url, "webhook_public_key": public}},
                  "templates": LINKS}
        omni = prepare(omni_factory(config))
        first = send_promo(omni, "k1")
        assert first.status == "sent"
        [mail] = api.mails
        personalization = mail["request"]["personalizations"][0]
        assert personalization["custom_args"]["omnisdk_delivery_id"] == first.id
        assert personalization["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        events = [{"email": "ada@example.com", "event": "spamreport", "sg_event_id": "ev-1",
                   "sg_message_id": f"{first.provider_message_id}.filter0001", "omnisdk_delivery_id": first.id,
                   "timestamp": int(omni.clock.timestamp())}]
        body = json.dumps(events).encode() + b"\r\n"
        timestamp = str(int(omni.clock.timestamp()))
        hook = "https://shop.example/omnisdk/webhooks/sendgrid"
        assert omni.handle_webhook("sendgrid", "POST", hook, sign(key, body, timestamp), body).status < 300
        assert omni.handle_webhook("sendgrid", "POST", hook, sign(key, body, timestamp), body).status < 300
        tampered = body.replace(b"spamreport", b"delivered!")
        assert omni.handle_webhook("sendgrid", "POST", hook, sign(key, body, timestamp), tampered).status == 401
        assert omni.customer("c-1").has_consent("email") is False
        assert send_promo(omni, "k2").status == "skipped"
        assert len(api.mails) == 1
        api.assert_no_violations()
    complaints = [t for t in omni.timeline("c-1", channels=["email"]) if t.name == "Message Complained"]
    assert len(complaints) == 1


def test_without_a_public_url_marketing_email_fails_saying_what_to_configure(
    omni_factory: Callable[..., Omni], smtp_server: Any
) -> None:
    """No https public URL: the unsubscribe link would be the localhost default, so the promo is refused."""
    email = {"provider": "smtp", "from": "Acme <hello@acme.example>", **smtp_server.settings}
    omni = prepare(omni_factory({"channels": {"email": email}}))
    delivery = send_promo(omni, "k1")
    assert delivery.status == "failed"
    assert "webhooks.public_url" in str(delivery.error) and "unsubscribe_mailto" in str(delivery.error)
    assert smtp_server.messages == []


def test_without_a_public_url_a_mailto_unsubscribe_is_used(
    omni_factory: Callable[..., Omni], smtp_server: Any
) -> None:
    email = {"provider": "smtp", "from": "Acme <hello@acme.example>", "unsubscribe_mailto": "leave@acme.example",
             **smtp_server.settings}
    omni = prepare(omni_factory({"channels": {"email": email}}))
    assert send_promo(omni, "k1").status == "sent"
    [received] = smtp_server.messages
    assert received["List-Unsubscribe"] == "<mailto:leave@acme.example?subject=unsubscribe>"
    assert "List-Unsubscribe-Post" not in received
