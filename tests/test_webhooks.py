"""Inbound webhooks: verified before anything is recorded, deduplicated, and honoured before the next send."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import omnisdk
from dispatch_providers import Script, TestProviders, signed
from omnisdk import SMS, Email, Message, Omni, VirtualClock
from omnisdk.asgi import create_app
from omnisdk.delivery import enqueue_delivery

URL = "https://shop.example/omnisdk/webhooks/scripted"


@pytest.fixture
def sms() -> Script:
    return Script()


@pytest.fixture
def email() -> Script:
    return Script()


@pytest.fixture
def omni(store_url: str, clock: VirtualClock, sms: Script, email: Script) -> Iterator[Omni]:
    config = {
        "channels": {"sms": {"provider": "scripted", "script": sms},
                     "email": {"provider": "scripted", "script": email}},
        "webhooks": {"max_body_bytes": 4096},
        "templates": {"links": {"base_url": "https://shop.example/omnisdk"}},
    }
    with Omni(store_url, config=config, clock=clock, plugins=[TestProviders()], load_entry_points=False) as client:
        client.templates.add(Message("promo", sms=SMS(text="Sale!"),
                                     email=Email(subject="Sale", html='<a href="https://shop.example/sale">Go</a>')))
        client.identify("c-1", phone="+14155550100", email="ada@example.com")
        for channel in ("sms", "email"):
            client.consent("c-1", channel=channel, granted=True)
        yield client


def send_promo(omni: Omni, key: str, channels: list[str]) -> omnisdk.Delivery:
    with omni.store.transaction() as tx:
        did = enqueue_delivery(tx, key=key, customer_id="c-1", template="promo", channels=channels,
                               now=omni.clock.timestamp())
    omni.run_until_idle()
    return next(d for d in omni.deliveries() if d.id == did)


def post(omni: Omni, events: Any, **kwargs: Any) -> omnisdk.WebhookResponse:
    headers, body = signed(events, **kwargs)
    return omni.handle_webhook("scripted", "POST", URL, headers, body)


def recorded(omni: Omni) -> tuple[int, int]:
    with omni.store.transaction(immediate=False) as tx:
        return tx.scalar("SELECT COUNT(*) FROM touchpoints"), tx.scalar("SELECT COUNT(*) FROM webhook_events")


def test_unverified_oversize_and_unknown_requests_record_nothing(omni: Omni) -> None:
    before = recorded(omni)
    event = [{"event": "Unsubscribed", "channel": "sms", "id": "e1", "who": {"phone": "+14155550100"}}]
    headers, body = signed(event)
    assert omni.handle_webhook("scripted", "POST", URL, {}, body).status == 401
    assert omni.handle_webhook("scripted", "POST", URL, headers, body + b" ").status == 401
    assert post(omni, event, secret="someone-else").status == 401
    assert omni.handle_webhook("scripted", "POST", URL, headers, b"x" * 5000).status == 413
    assert omni.handle_webhook("nobody", "POST", URL, headers, body).status == 404
    assert recorded(omni) == before
    assert omni.customer("c-1").has_consent("sms")


def test_a_plugin_failing_to_parse_answers_500_and_records_nothing(omni: Omni) -> None:
    before = recorded(omni)
    assert post(omni, "explode").status == 500
    assert recorded(omni) == before


def test_delivery_status_and_engagement_are_recorded_once(omni: Omni) -> None:
    delivery = send_promo(omni, "k1", ["sms"])
    event = {"event": "Message Delivered", "channel": "sms", "id": "ev-1", "message_id": delivery.provider_message_id}
    assert post(omni, [event]).status == 204
    assert post(omni, [event]).status == 204  # the provider retried: same event id
    delivered = [t for t in omni.timeline("c-1") if t.name == "Message Delivered"]
    assert len(delivered) == 1
    assert delivered[0].properties["delivery_id"] == delivery.id
    assert omni.deliveries(status="delivered")[0].id == delivery.id


def test_a_bounce_fails_the_delivery(omni: Omni) -> None:
    delivery = send_promo(omni, "k1", ["sms"])
    post(omni, [{"event": "Message Bounced", "channel": "sms", "id": "b1", "message_id": delivery.provider_message_id,
                 "properties": {"bounce_type": "soft", "reason": "carrier unreachable"}}])
    failed = omni.deliveries(status="failed")[0]
    assert (failed.id, failed.error) == (delivery.id, "carrier unreachable")
    assert omni.customer("c-1").phone == "+14155550100"  # soft: the number stays


def test_stop_revokes_sms_before_the_next_send(omni: Omni, sms: Script) -> None:
    post(omni, [{"event": "Unsubscribed", "channel": "sms", "id": "in-1", "who": {"phone": "+1 415 555 0100"},
                 "properties": {"keyword": "STOP"}}])
    assert not omni.customer("c-1").has_consent("sms")
    skipped = send_promo(omni, "k2", ["sms"])
    assert skipped.status == "skipped"
    assert sms.sent == []
    assert any(t.name == "Unsubscribed" and t.channel == "sms" for t in omni.timeline("c-1"))

    post(omni, [{"event": "Subscribed", "channel": "sms", "id": "in-2", "who": {"phone": "+14155550100"}}])
    assert send_promo(omni, "k3", ["sms"]).status == "sent"


def test_a_complaint_stops_all_marketing_email(omni: Omni, email: Script) -> None:
    delivery = send_promo(omni, "k1", ["email"])
    post(omni, [{"event": "Message Complained", "channel": "email", "id": "c1",
                 "message_id": delivery.provider_message_id}])
    assert not omni.customer("c-1").has_consent("email")
    assert send_promo(omni, "k2", ["email"]).status == "skipped"
    assert len(email.sent) == 1


def test_a_hard_bounce_revokes_the_channel_and_drops_the_address(omni: Omni) -> None:
    delivery = send_promo(omni, "k1", ["email"])
    post(omni, [{"event": "Message Bounced", "channel": "email", "id": "hb", "message_id": delivery.provider_message_id,
                 "properties": {"bounce_type": "hard"}}])
    customer = omni.customer("c-1")
    assert customer.email is None
    assert not customer.has_consent("email")
    assert customer.phone == "+14155550100"


def test_the_asgi_app_serves_webhooks_clicks_and_one_click_unsubscribe(omni: Omni, email: Script) -> None:
    send_promo(omni, "k1", ["email"])
    [message] = email.sent
    assert isinstance(message.content, Email) and message.content.html is not None
    click_url = message.content.html.split('href="')[1].split('"')[0]
    unsubscribe_url = message.metadata["unsubscribe_url"]
    app = create_app(omni)

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, root_path="/omnisdk")
        async with httpx.AsyncClient(transport=transport, base_url="https://shop.example") as client:
            headers, body = signed([{"event": "Message Opened", "channel": "email", "id": "o1",
                                     "message_id": f"scripted-{message.delivery_id}"}])
            return [
                await client.post("/omnisdk/webhooks/scripted", content=body, headers=headers),
                await client.post("/omnisdk/webhooks/scripted", content=b"{}", headers={"X-Signature": "0"}),
                await client.post("/omnisdk/webhooks/scripted", content=b"x" * 5000),
                await client.get(click_url.removeprefix("https://shop.example")),
                await client.get("/omnisdk/c/forged.token"),
                await client.get(unsubscribe_url.removeprefix("https://shop.example")),
                await client.post(unsubscribe_url.removeprefix("https://shop.example"),
                                  content=b"List-Unsubscribe=One-Click"),
                await client.get("/omnisdk/nothing"),
            ]

    opened, forged, huge, click, bad_click, confirm, unsubscribed, missing = asyncio.run(scenario())
    assert [opened.status_code, forged.status_code, huge.status_code] == [204, 401, 413]
    assert click.status_code == 302 and click.headers["location"].startswith("https://shop.example/sale")
    assert bad_click.status_code == 400
    assert confirm.status_code == 200 and "<form method=post" in confirm.text
    assert omni.customer("c-1").has_consent("email") is False
    assert unsubscribed.status_code == 200
    assert missing.status_code == 404
    names = [t.name for t in omni.timeline("c-1", channels=["email"])]
    assert {"Message Sent", "Message Opened", "Link Clicked", "Unsubscribed"} <= set(names)
