"""One event path: every touchpoint the delivery side writes is announced (`touchpoint_recorded`), and
every status change of a delivery too (`delivery_updated`), whoever wrote it — the dispatcher, the
reconciler settling a send in doubt, or a provider's webhook (status, inbound reply, POS)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import omnisdk
from dispatch_providers import DropAfterAccept, LookupScript, LookupTestProviders, Script, TestProviders, signed
from omnisdk import SMS, Events, Message, Omni, VirtualClock
from omnisdk.delivery import enqueue_delivery

URL = "https://shop.example/omnisdk/webhooks/scripted"
SQUARE_KEY = "sq-signature-key"
SQUARE_URL = "https://shop.example/webhooks/square"


class Listener:
    """A plugin that hears of every touchpoint and every delivery change."""

    def __init__(self) -> None:
        self.touchpoints: list[omnisdk.Touchpoint] = []
        self.changes: list[tuple[str, str]] = []

    @omnisdk.hookimpl
    def touchpoint_recorded(self, touchpoint: Any, omni: Any) -> None:
        self.touchpoints.append(touchpoint)

    @omnisdk.hookimpl
    def delivery_updated(self, delivery: Any, omni: Any) -> None:
        self.changes.append((delivery.id, delivery.status))

    def heard(self, name: str) -> list[omnisdk.Touchpoint]:
        return [t for t in self.touchpoints if t.name == name]


OmniFactory = Callable[..., tuple[Omni, Listener]]


@pytest.fixture
def make_omni(store_url: str, clock: VirtualClock) -> Iterator[OmniFactory]:
    opened: list[Omni] = []

    def make(channels: dict[str, Any], *, entry_points: bool = False) -> tuple[Omni, Listener]:
        listener = Listener()
        omni = Omni(store_url, config={"channels": channels}, clock=clock,
                    plugins=[TestProviders(), LookupTestProviders(), listener], load_entry_points=entry_points)
        omni.templates.add(Message("hello", sms=SMS(text="Hi {{ customer.first_name }}")))
        opened.append(omni)
        return omni, listener

    yield make
    for omni in opened:
        omni.close()


def queue(omni: Omni, cid: str = "c-1", phone: str = "+14155550100") -> str:
    omni.identify(cid, traits={"first_name": "Ada"}, timezone="UTC", phone=phone)
    omni.consent(cid, channel="sms", granted=True)
    with omni.store.transaction() as tx:
        return enqueue_delivery(tx, key=f"run-{cid}:hello", customer_id=cid, template="hello", channels=["sms"],
                                now=omni.clock.timestamp(), purpose="transactional")


def statuses(omni: Omni, did: str) -> str:
    return next(d.status for d in omni.deliveries() if d.id == did)


def test_the_dispatchers_sent_touchpoint_and_status_are_announced(make_omni: OmniFactory) -> None:
    omni, heard = make_omni({"sms": {"provider": "scripted", "script": Script()}})
    did = queue(omni)

    omni.run_until_idle()

    [sent] = heard.heard(Events.MESSAGE_SENT)
    assert (sent.id, sent.customer_id, sent.channel, sent.properties["delivery_id"]) == (f"sent_{did}", "c-1", "sms",
                                                                                       did)
    assert [t.id for t in omni.timeline("c-1") if t.name == Events.MESSAGE_SENT] == [sent.id]
    assert heard.changes == [(did, "sent")]


def test_a_skip_at_the_claim_is_announced(make_omni: OmniFactory) -> None:
    omni, heard = make_omni({"sms": {"provider": "scripted", "script": Script()}})
    omni.identify("c-1", phone="+14155550100")  # no consent: skipped
    with omni.store.transaction() as tx:
        did = enqueue_delivery(tx, key="k", customer_id="c-1", template="hello", channels=["sms"],
                               now=omni.clock.timestamp())

    omni.run_until_idle()

    assert heard.changes == [(did, "skipped")]
    assert heard.heard(Events.MESSAGE_SENT) == []


def test_a_send_settled_by_a_lookup_is_announced_like_one_answered(make_omni: OmniFactory) -> None:
    """The call went out, the answer was lost: the reconciler's lookup finds it sent."""
    omni, heard = make_omni({"sms": {"provider": "lookup", "script": LookupScript(queue=[DropAfterAccept])}})
    did = queue(omni)

    omni.run_until_idle()

    assert statuses(omni, did) == "sent"
    [sent] = heard.heard(Events.MESSAGE_SENT)
    assert (sent.properties["delivery_id"], sent.properties["provider_message_id"]) == (did, "SM0001")
    assert heard.changes[-1] == (did, "sent")


def test_a_status_webhook_announces_its_touchpoint_and_the_status_change(make_omni: OmniFactory) -> None:
    omni, heard = make_omni({"sms": {"provider": "scripted", "script": Script()}})
    did = queue(omni)
    omni.run_until_idle()

    headers, body = signed([{"event": Events.MESSAGE_DELIVERED, "id": "ev-1", "message_id": f"scripted-{did}"}])
    assert omni.handle_webhook("scripted", "POST", URL, headers, body).status == 204

    [delivered] = heard.heard(Events.MESSAGE_DELIVERED)
    assert (delivered.id, delivered.customer_id, delivered.properties["delivery_id"]) == ("wh_scripted_ev-1", "c-1",
                                                                                           did)
    assert heard.changes == [(did, "sent"), (did, "delivered")]
    assert statuses(omni, did) == "delivered"


def test_an_inbound_reply_is_announced(make_omni: OmniFactory) -> None:
    omni, heard = make_omni({"sms": {"provider": "scripted", "script": Script()}})
    omni.identify("c-1", phone="+14155550100")

    headers, body = signed([{"event": Events.MESSAGE_REPLIED, "id": "in-1", "who": {"phone": "+14155550100"},
                             "properties": {"text": "thanks!"}}])
    assert omni.handle_webhook("scripted", "POST", URL, headers, body).status == 204

    [reply] = heard.heard(Events.MESSAGE_REPLIED)
    assert (reply.customer_id, reply.channel, reply.properties["text"]) == ("c-1", "sms", "thanks!")
    assert [t.id for t in omni.timeline("c-1") if t.name == Events.MESSAGE_REPLIED] == [reply.id]
    assert heard.changes == []  # about no delivery


def test_a_pos_webhook_through_its_plugin_is_announced(make_omni: OmniFactory) -> None:
    pytest.importorskip("omnisdk_pos")
    omni, heard = make_omni({"pos": {"provider": "square", "access_token": "EAAAl-test", "signature_key": SQUARE_KEY,
                                     "notification_url": SQUARE_URL, "locations": {"LDOWNTOWN": "Downtown"}}},
                            entry_points=True)
    omni.identify("c-42", phone="+14155550100")
    payment = {"payment": {"id": "pay-1", "status": "COMPLETED", "order_id": "ord-1", "customer_id": "SQ9",
                           "location_id": "LDOWNTOWN", "amount_money": {"amount": 2000, "currency": "USD"},
                           "updated_at": "2026-01-05T12:31:00Z"}}
    loyalty = {"loyalty_account": {"id": "loy-1", "customer_id": "SQ9", "mapping": {"phone_number": "+14155550100"},
                                   "balance": 10}}
    events = (("loyalty.account.updated", loyalty, "evt-loy"), ("payment.updated", payment, "evt-pay"))
    for kind, obj, event_id in events:
        body = json.dumps({"merchant_id": "M1", "type": kind, "event_id": event_id,
                           "created_at": "2026-01-05T12:30:00Z",
                           "data": {"type": kind.split(".")[0], "id": "x", "object": obj}}).encode()
        digest = hmac.new(SQUARE_KEY.encode(), SQUARE_URL.encode() + body, hashlib.sha256).digest()
        headers = {"content-type": "application/json",
                   "x-square-hmacsha256-signature": base64.b64encode(digest).decode()}
        assert omni.handle_webhook("square", "POST", SQUARE_URL, headers, body).status == 200

    announced = [(t.customer_id, t.channel, t.name) for t in heard.touchpoints]
    assert announced == [("c-42", "pos", Events.LOYALTY_ACCOUNT_UPDATED), ("c-42", "pos", Events.ORDER_COMPLETED)]
    assert [t.id for t in heard.touchpoints] == [t.id for t in omni.timeline("c-42")]


def test_every_status_change_of_a_retried_then_failed_over_send_is_announced(make_omni: OmniFactory,
                                                                             clock: VirtualClock) -> None:
    """Retry (queued again), then a permanent failure (failed): each change is heard, in order."""
    script = Script(queue=[omnisdk.RetryableError(reason="503"), omnisdk.PermanentError(reason="dead number")])
    omni, heard = make_omni({"sms": {"provider": "scripted", "script": script}})
    did = queue(omni)

    omni.run_until_idle()
    clock.advance(minutes=10)
    omni.run_until_idle()

    assert heard.changes == [(did, "queued"), (did, "failed")]
    assert statuses(omni, did) == "failed"
