"""Through Omni: a signed inbound WhatsApp message joins the customer by phone and opens the window."""

from __future__ import annotations

import hashlib
import hmac
import json

from omnisdk import Message, Omni, Social, VirtualClock, journey
from omnisdk.testing.imitations import MetaGraphImitation


def inbound(clock: VirtualClock) -> bytes:
    message = {"from": "16315551181", "id": "wamid.in", "timestamp": str(int(clock.timestamp())), "type": "text",
               "text": {"body": "Is it in stock?"}}
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "0", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp", "messages": [message]}}]}]}).encode()


def test_inbound_reply_opens_the_window_for_a_free_form_answer(tmp_path) -> None:
    clock = VirtualClock()
    with MetaGraphImitation(access_token="EAAG-test") as graph:
        whatsapp = {"provider": "whatsapp", "phone_number_id": "1055", "access_token": "EAAG-test",
                    "app_secret": "s3", "verify_token": "v", "base_url": graph.base_url}
        config = {"channels": {"social": whatsapp}}
        with Omni(f"sqlite:///{tmp_path}/omni.db", config=config, clock=clock) as omni:
            omni.identify("c-1", phone="+16315551181")
            omni.consent("c-1", channel="social", granted=True)
            omni.templates.add(Message("answer", social=Social(text="Yes, size M is in stock")))

            @journey("answer", version="1", trigger="Message Replied")
            async def answer(ctx):  # type: ignore[no-untyped-def]
                await ctx.send("answer", "answer", channel="social")

            omni.register(answer)
            body = inbound(clock)
            forged = omni.handle_webhook("whatsapp", "POST", "https://shop.example/hooks/whatsapp",
                                         {"X-Hub-Signature-256": "sha256=" + "0" * 64}, body)
            assert forged.status == 401
            assert omni.timeline("c-1") == []  # a forged webhook records nothing
            signature = "sha256=" + hmac.new(b"s3", body, hashlib.sha256).hexdigest()
            response = omni.handle_webhook("whatsapp", "POST", "https://shop.example/hooks/whatsapp",
                                           {"X-Hub-Signature-256": signature}, body)
            assert response.status == 200
            omni.run_until_idle()
            first = omni.timeline("c-1")[0]
            assert (first.name, first.channel) == ("Message Replied", "social")
            assert first.properties["text"] == "Is it in stock?"
            assert [d.status for d in omni.deliveries(customer_id="c-1")] == ["sent"]
    graph.assert_no_violations()
    [sent] = graph.whatsapp_messages
    assert sent["type"] == "text" and sent["to"] == "16315551181"
