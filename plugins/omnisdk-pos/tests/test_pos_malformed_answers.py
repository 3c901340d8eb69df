"""Square's answers and Square/Shopify webhooks are data from outside: whatever shape they take, the
plugin skips what it cannot use (with a logged reason) or returns a typed outcome, and never raises
`ValueError`, `TypeError` or `KeyError`. Hypothesis draws the malformed answers (fixed budget)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omnisdk_pos import ShopifyPOS, SquarePOS, StoreStock
from omnisdk_pos._square_webhooks import SquareEvents
from structlog.testing import capture_logs

from omnisdk import (
    Accepted,
    Outgoing,
    PermanentError,
    PosOffer,
    ProviderError,
    RetryableError,
    VirtualClock,
    WebhookError,
    WebhookRequest,
    WebhookResult,
)
from omnisdk.testing.imitations import Call, Imitation, route

TOKEN = "EAAAl-test"
STORES = {"LDOWNTOWN": "Downtown", "LMALL": "Mall"}
BUDGET = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class ScriptedSquare(Imitation):
    """Square's paths, each answering 200 with whatever JSON body the test put in `answers`."""

    answers: dict[str, Any]

    def reply(self, name: str) -> web.StreamResponse:
        return web.Response(text=json.dumps(self.answers.get(name, {})), content_type="application/json")

    @route("POST", "/v2/inventory/counts/batch-retrieve")
    def counts(self, call: Call) -> web.StreamResponse:
        return self.reply("counts")

    @route("POST", "/v2/loyalty/accounts/search")
    def search(self, call: Call) -> web.StreamResponse:
        return self.reply("search")

    @route("POST", "/v2/loyalty/accounts/{account_id}/adjust")
    def adjust(self, call: Call) -> web.StreamResponse:
        return self.reply("adjust")

    @route("GET", "/v2/loyalty/programs/main")
    def program(self, call: Call) -> web.StreamResponse:
        return self.reply("program")

    @route("POST", "/v2/loyalty/rewards")
    def reward(self, call: Call) -> web.StreamResponse:
        return self.reply("reward")


@pytest.fixture(scope="module")
def square() -> Iterator[ScriptedSquare]:
    server = ScriptedSquare()
    server.answers = {}
    with server:
        yield server


def provider(square: ScriptedSquare, **settings: Any) -> SquarePOS:
    config = SquarePOS.Config(access_token=TOKEN, base_url=square.base_url, locations=STORES, **settings)
    return SquarePOS(config, http=httpx.AsyncClient(), clock=VirtualClock())


# Leaves that real answers carry, and the wrong ones that break a naive parser.
LEAVES = (st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=True)
          | st.text(max_size=8) | st.sampled_from(["3", "2.5", "-1", "NaN", "Infinity", "1e400", "", "lots",
                                                    "LDOWNTOWN", "LMALL", "COMPLETED", "PICKUP", "PREPARED"]))
JSON = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                         max_size=3), max_leaves=12)


def shaped(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly an object with the fields the provider sends, each mostly well typed; else any JSON value.
    Leaning to the real shape is what takes a draw deep enough to reach the fields that break."""
    obj = st.fixed_dictionaries({k: st.one_of(v, v, v, JSON) for k, v in fields.items()})
    return st.one_of(obj, obj, obj, JSON)


COUNT = shaped(location_id=st.sampled_from(list(STORES)), quantity=st.sampled_from(["0", "3", "2.50000"]),
               state=st.just("IN_STOCK"))
COUNTS = shaped(counts=st.lists(COUNT, max_size=4))
_product_ids = itertools.count()


@BUDGET
@given(answer=COUNTS)
def test_inventory_answers_never_crash_a_template(square: ScriptedSquare, answer: Any) -> None:
    square.answers = {"counts": answer}
    pos = provider(square)
    try:
        stock = pos.inventory.in_stock_near(f"VAR-{next(_product_ids)}", {"home_store": "LMALL"})
    finally:
        asyncio.run(pos.aclose())
    assert stock is None or (stock.location_id in STORES and stock.quantity >= 1)


def test_a_non_numeric_quantity_is_skipped_with_a_logged_reason(square: ScriptedSquare) -> None:
    square.answers = {"counts": {"counts": [
        {"catalog_object_id": "VAR-1", "location_id": "LMALL", "state": "IN_STOCK", "quantity": "lots"},
        {"catalog_object_id": "VAR-1", "location_id": "LDOWNTOWN", "state": "IN_STOCK", "quantity": "4"},
    ]}}
    pos = provider(square)
    with capture_logs() as logs:
        stock = pos.inventory.in_stock_near("VAR-1", {"home_store": "LMALL"})
    asyncio.run(pos.aclose())

    assert stock == StoreStock("LDOWNTOWN", "Downtown", 4.0)
    [skipped] = [entry for entry in logs if entry["event"] == "square_inventory_count_skipped"]
    assert skipped["location_id"] == "LMALL" and skipped["reason"] == "quantity is not usable (str)"


def test_an_answer_that_is_not_a_json_object_is_a_provider_error(square: ScriptedSquare) -> None:
    square.answers = {"counts": ["not", "an", "object"]}
    pos = provider(square)
    with pytest.raises(ProviderError, match="not a JSON object"):
        pos.api.in_stock("VAR-1", list(STORES))
    asyncio.run(pos.aclose())


OFFER_ANSWERS = st.fixed_dictionaries({
    "search": shaped(loyalty_accounts=st.lists(shaped(id=st.just("acct-1")), max_size=2)),
    "adjust": shaped(event=shaped(id=st.just("evt-1"))),
    "program": shaped(program=shaped(reward_tiers=st.lists(shaped(id=st.just("tier-10"), points=st.just(100)),
                                                          max_size=2))),
    "reward": shaped(reward=shaped(id=st.just("rwd-1"))),
})


def send_offer(pos: SquarePOS, offer: PosOffer) -> Any:
    message = Outgoing(delivery_id="d-1", idempotency_key="run:offer:pos", customer_id="c-1", to="SQ-CUST-1",
                       content=offer)

    async def run() -> list[Any]:
        async with pos.http:
            outcomes = list(await pos.send([message]))
        await pos.aclose()
        return outcomes

    [outcome] = asyncio.run(run())
    return outcome


@BUDGET
@given(answers=OFFER_ANSWERS, offer=st.sampled_from([PosOffer(title="10% off", discount_percent=10),
                                                      PosOffer(title="Points", reward_points=50)]))
def test_offer_answers_give_a_typed_outcome(square: ScriptedSquare, answers: dict[str, Any], offer: PosOffer) -> None:
    square.answers = answers
    pos = provider(square, reward_tiers={"10%": "tier-10"})
    outcome = send_offer(pos, offer)
    assert isinstance(outcome, Accepted | RetryableError | PermanentError)
    if isinstance(outcome, Accepted):
        assert outcome.provider_message_id in ("evt-1", "rwd-1")


def test_an_unreadable_reward_id_is_retryable_and_names_the_field(square: ScriptedSquare) -> None:
    square.answers = {"search": {"loyalty_accounts": [{"id": "acct-1"}]}, "adjust": {"event": {"id": "evt-1"}},
                      "program": {"program": {"reward_tiers": [{"id": "tier-10", "points": "100"},
                                                               {"id": "tier-10", "points": 100}]}},
                      "reward": {"reward": {"id": ["rwd-1"]}}}
    pos = provider(square, reward_tiers={"10%": "tier-10"})
    with capture_logs() as logs:
        outcome = send_offer(pos, PosOffer(title="10% off", discount_percent=10))
    assert isinstance(outcome, RetryableError) and outcome.reason == "Square's answer has no usable reward.id"
    assert [entry["event"] for entry in logs] == ["square_reward_tier_skipped"]


# -- webhooks -------------------------------------------------------------------------------------

SQUARE_OBJECTS = {
    "payment.updated": shaped(payment=shaped(id=st.just("pay-1"), status=st.just("COMPLETED"),
                                             customer_id=st.just("SQ-1"), order_id=st.just("ord-1"),
                                             location_id=st.just("LMALL"),
                                             amount_money=shaped(amount=st.just(1999), currency=st.just("USD")))),
    "refund.updated": shaped(refund=shaped(id=st.just("ref-1"), status=st.just("COMPLETED"),
                                           order_id=st.just("ord-1"))),
    "order.fulfillment.updated": shaped(order_fulfillment_updated=shaped(
        order_id=st.just("ord-1"), fulfillment_update=st.lists(shaped(
            fulfillment_uid=st.just("f-1"), new_state=st.just("PREPARED"), old_state=st.just("PROPOSED")),
            max_size=2))),
    "loyalty.account.updated": shaped(loyalty_account=shaped(id=st.just("acct-1"), customer_id=st.just("SQ-1"),
                                                             balance=st.just(120),
                                                             mapping=shaped(phone_number=st.just("+14155550100")))),
}
ORDERS = shaped(customer_id=st.just("SQ-1"), fulfillments=st.lists(shaped(
    uid=st.just("f-1"), type=st.just("PICKUP"), pickup_details=shaped(recipient=shaped(
        email_address=st.just("ada@example.com")))), max_size=2))


@BUDGET
@given(kind=st.sampled_from(sorted(SQUARE_OBJECTS)), data=st.data(), order=ORDERS)
def test_square_webhooks_never_crash(kind: str, data: st.DataObject, order: Any) -> None:
    payload = {"type": kind, "event_id": "evt-1", "data": {"object": data.draw(SQUARE_OBJECTS[kind])}}
    try:
        events = SquareEvents(lambda _order_id: order, STORES).parse(json.dumps(payload).encode())
    except WebhookError as exc:  # refused, typed (e.g. NaN, which is not JSON)
        assert 400 <= exc.status < 500
    else:
        assert all(isinstance(e.id, str) and all(isinstance(v, str) for v in e.who.values()) for e in events)


SHOPIFY = {
    "orders/paid": shaped(id=st.just(820982911946154508), financial_status=st.just("paid"),
                          email=st.just("ada@example.com"), total_price=st.just("199.00"), source_name=st.just("pos"),
                          customer=shaped(id=st.just(115310627314723954))),
    "orders/updated": shaped(id=st.just(820982911946154508), email=st.just("ada@example.com"),
                             refunds=st.lists(shaped(id=st.just(509562969), transactions=st.lists(shaped(
                                 kind=st.just("refund"), amount=st.just("10.00")), max_size=2)), max_size=2)),
    "orders/cancelled": shaped(id=st.just(820982911946154508), email=st.just("ada@example.com")),
    "fulfillments/update": shaped(id=st.just(255858046), shipment_status=st.just("ready_for_pickup"),
                                  email=st.just("ada@example.com"), order_id=st.just(820982911946154508)),
}


@BUDGET
@given(topic=st.sampled_from(sorted(SHOPIFY)), data=st.data())
def test_shopify_webhooks_never_crash(topic: str, data: st.DataObject) -> None:
    body = json.dumps(data.draw(SHOPIFY[topic])).encode()
    request = WebhookRequest(method="POST", url="https://shop.example/omnisdk/webhooks/shopify",
                             headers={"X-Shopify-Topic": topic}, body=body)
    shopify = ShopifyPOS(ShopifyPOS.Config(webhook_secret="s"), http=httpx.AsyncClient())
    try:
        result = shopify.parse_webhook(request)
    except WebhookError as exc:  # refused, typed: not a JSON object, or a topic the body contradicts
        assert 400 <= exc.status < 500
    else:
        assert isinstance(result, WebhookResult)
        assert all(all(isinstance(v, str) for v in e.who.values()) for e in result.events)
