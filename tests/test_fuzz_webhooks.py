"""Hypothesis fuzzing of `handle_webhook` for every provider, with a fixed budget (derandomized).

Three properties per provider:
- unsigned: any method, URL, headers and body; the answer is a 4xx (never a 5xx, never an untyped
  exception) and nothing at all is stored;
- validly signed, with random field values: never a 5xx, never an untyped exception;
- validly signed, then mutated (method, URL, a header, a body byte): refused, nothing stored.

Square refund and fulfillment notifications are left out: they look the order up at Square and
answer 503 (retry later) when the lookup fails, by design.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import webhook_requests as wr
from omnisdk import Omni, OmniError, VirtualClock

BUDGET = settings(max_examples=120, derandomize=True, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.function_scoped_fixture])
TABLES = ("touchpoints", "consents", "webhook_events", "webhook_requests", "customers", "identities",
          "catalog_variants", "catalog_inventory")
CLOCK = VirtualClock()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
texts = st.text(max_size=24)
phones = st.sampled_from(["+14155550100", "+442071838750", "14155550100", "", "whatsapp:+14155550100"]) | texts


@pytest.fixture(scope="module")
def omni(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Omni]:
    path = tmp_path_factory.mktemp("fuzz") / "omni.db"
    with Omni(f"sqlite:///{path}", config=wr.config(double_opt_in_templates=["sms-opt-in"]), clock=CLOCK) as client:
        client.identify("c-1", phone="+14155550100", email="ada@example.com")
        yield client


def stored(omni: Omni) -> tuple[int, ...]:
    with omni.store.transaction(immediate=False) as tx:
        return tuple(int(tx.scalar(f"SELECT COUNT(*) FROM {table}")) for table in TABLES)


def call(omni: Omni, provider: str, request: wr.Request) -> int | None:
    """The answer's status; None when the arguments themselves were refused with a typed error."""
    method, url, headers, body = request
    try:
        return omni.handle_webhook(provider, method, url, headers, body).status
    except OmniError:
        return None


# -- validly signed requests with random contents, one strategy per provider

def _now() -> float:
    return CLOCK.timestamp()


@st.composite
def twilio_requests(draw: st.DrawFn) -> wr.Request:
    params = draw(st.dictionaries(
        st.sampled_from(["MessageSid", "From", "To", "Body", "MessageStatus", "ErrorCode", "SmsSid", "NumMedia"]),
        st.sampled_from(["STOP", "START", "YES", "HELP", "delivered", "undelivered", "30006", "+14155550100", "²",
                         "١٢٣"]) | texts,
        max_size=6))
    return wr.twilio(params, method=draw(st.sampled_from(["GET", "POST"])),
                     algorithm=draw(st.sampled_from([None, "HMAC_SHA256"])))


@st.composite
def vonage_requests(draw: st.DrawFn) -> wr.Request:
    params = draw(st.dictionaries(
        st.sampled_from(["msisdn", "to", "messageId", "text", "status", "err-code", "message-timestamp"]),
        st.sampled_from(["STOP", "delivered", "failed", "14155550100"]) | texts, max_size=6))
    return wr.vonage(params, now=_now(), method=draw(st.sampled_from(["GET", "POST"])), nonce=draw(texts))


def _events(kinds: list[str], keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"event": st.sampled_from(kinds) | texts},
        optional={key: st.sampled_from(["ada@example.com", "hard", "permanent"]) | json_values for key in keys})


sendgrid_requests = st.lists(
    _events(["delivered", "bounce", "dropped", "click", "open", "spamreport", "unsubscribe", "group_resubscribe"],
            ["email", "sg_event_id", "sg_message_id", "timestamp", "type", "reason", "url", "omnisdk_delivery_id"]),
    max_size=4).map(lambda events: wr.sendgrid(events, now=_now()))
mailgun_requests = st.tuples(
    _events(["delivered", "failed", "opened", "clicked", "complained", "unsubscribed"],
            ["recipient", "id", "severity", "timestamp", "message", "user-variables", "reason"]),
    texts,
).map(lambda pair: wr.mailgun(pair[0], now=_now(), token=pair[1]))


def _meta_payloads(kind: str) -> st.SearchStrategy[Any]:
    message = st.fixed_dictionaries({}, optional={
        "from": phones, "id": texts, "timestamp": st.integers(0, 2**40).map(str) | json_values, "type": texts,
        "text": st.fixed_dictionaries({"body": texts}) | json_values, "sender": json_values, "recipient": json_values,
        "message": json_values, "postback": json_values, "delivery": json_values, "read": json_values,
        "status": texts, "recipient_id": phones})
    value = st.fixed_dictionaries({}, optional={"messages": st.lists(message, max_size=2),
                                                "statuses": st.lists(message, max_size=2), "contacts": json_values})
    entry = st.fixed_dictionaries({}, optional={"id": texts, "changes": st.lists(
        st.fixed_dictionaries({"field": st.just("messages") | texts, "value": value | json_values}), max_size=2),
        "messaging": st.lists(message, max_size=2)})
    return st.fixed_dictionaries({"object": st.sampled_from([kind, "page"]) | texts,
                                  "entry": st.lists(entry, max_size=2)})


lob_requests = st.fixed_dictionaries({"event_type": st.fixed_dictionaries({"id": st.sampled_from(
    ["postcard.delivered", "letter.mailed", "postcard.returned_to_sender"]) | texts})}, optional={
    "id": texts, "body": json_values, "date_created": texts, "reference_id": texts,
}).map(lambda payload: wr.lob(payload, now=_now()))
square_requests = st.fixed_dictionaries({
    "type": st.sampled_from(["payment.created", "payment.updated", "loyalty.account.updated"]) | texts,
    "data": st.fixed_dictionaries({"object": st.fixed_dictionaries({}, optional={
        "payment": st.fixed_dictionaries({"status": st.just("COMPLETED") | texts}, optional={
            "id": texts, "customer_id": texts, "buyer_email_address": texts, "amount_money": json_values,
            "location_id": json_values, "order_id": json_values, "updated_at": json_values}),
        "loyalty_account": json_values})}),
}, optional={"event_id": texts, "created_at": json_values}).map(lambda payload: wr.square(payload))
shopify_requests = st.tuples(
    st.fixed_dictionaries({"id": st.integers(0, 2**64) | texts}, optional={
        "email": texts, "phone": phones, "financial_status": st.just("paid") | texts, "total_price": json_values,
        "refunds": json_values, "cancelled_at": json_values, "shipment_status": texts, "destination": json_values,
        "customer": json_values, "source_name": texts, "location_id": json_values, "processed_at": json_values,
        "title": texts, "handle": texts, "vendor": json_values, "product_type": json_values, "images": json_values,
        "variants": st.lists(st.fixed_dictionaries({}, optional={
            "sku": texts, "price": st.sampled_from(["12.50", "0", "-1", "NaN"]) | json_values, "title": texts,
            "inventory_item_id": json_values, "image_id": json_values}), max_size=3) | json_values,
        "inventory_item_id": json_values, "available": st.integers(-5, 10**13) | json_values}),
    st.sampled_from(["orders/paid", "orders/create", "orders/updated", "orders/cancelled", "fulfillments/update",
                     "products/update", "inventory_levels/update"])
    | texts,
).map(lambda pair: wr.shopify(pair[0], topic=pair[1]))

SIGNED: dict[str, st.SearchStrategy[wr.Request]] = {
    "twilio": twilio_requests(),
    "vonage": vonage_requests(),
    "sendgrid": sendgrid_requests,
    "mailgun": mailgun_requests,
    "whatsapp": _meta_payloads("whatsapp_business_account").map(lambda p: wr.meta("whatsapp", p)),
    "messenger": _meta_payloads("page").map(lambda p: wr.meta("messenger", p)),
    "lob": lob_requests,
    "square": square_requests,
    "shopify": shopify_requests,
}
assert set(SIGNED) == set(wr.PROVIDERS)

methods = st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE", "PATCH", "OPTIONS"]) | st.text(max_size=8)
header_names = st.sampled_from([
    "Content-Type", "X-Twilio-Signature", "X-Twilio-Webhooks-Signature-Settings", "X-Hub-Signature-256",
    "X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp", "Lob-Signature",
    "Lob-Signature-Timestamp", "x-square-hmacsha256-signature", "X-Shopify-Hmac-Sha256", "X-Shopify-Topic",
]) | st.text(min_size=1, max_size=12)


@st.composite
def unsigned_requests(draw: st.DrawFn, provider: str) -> wr.Request:
    """Anything at all, or a signed request's body under random headers (where the signature is a header)."""
    method, url, headers, body = draw(SIGNED[provider])
    in_headers = provider not in ("vonage", "mailgun")  # those two sign inside the body or the query
    headers = {name: draw(texts) for name in headers if name.lower() != "content-type" and draw(st.booleans())}
    headers.update(draw(st.dictionaries(header_names, texts, max_size=4)))
    if not in_headers or draw(st.booleans()):
        body = draw(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
    if not in_headers or draw(st.booleans()):
        url = f"{wr.BASE}/{provider}{draw(st.sampled_from(['', '?', '?hub.mode=subscribe&hub.challenge=1']))}"
        url += draw(texts)
    return draw(methods | st.just(method)), url, headers, body


def _flip(data: bytes, at: int) -> bytes:
    if not data:
        return b"x"
    at %= len(data)
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


SIGNATURE_HEADERS = frozenset(name.lower() for name in (
    "X-Twilio-Signature", "X-Hub-Signature-256", "X-Twilio-Email-Event-Webhook-Signature", "Lob-Signature",
    "x-square-hmacsha256-signature", "X-Shopify-Hmac-Sha256"))


@st.composite
def mutated_pairs(draw: st.DrawFn, provider: str) -> tuple[wr.Request, wr.Request]:
    """A validly signed request, and the same with one part changed: method, URL, a signature, a body byte."""
    genuine = method, url, headers, body = draw(SIGNED[provider])
    signature = next((name for name in headers if name.lower() in SIGNATURE_HEADERS), None)
    change = draw(st.sampled_from(["body", "url", "signature", "method"]))
    if change == "signature" and signature:
        flipped = _flip(headers[signature].encode(), draw(st.integers(0, 100))).decode("latin-1")
        headers = {**headers, signature: flipped}
    elif change == "url":
        url = url.replace("/webhooks/", "/webhooks-other/")
    elif (change == "method" and method == "GET") or not body:
        method, body = "POST", body or b"From=%2B14155550100&Body=START"
    else:
        body = _flip(body, draw(st.integers(0, 10**6)))
    return genuine, (method, url, headers, body)


def _fuzz(strategy: Callable[[str], st.SearchStrategy[Any]], check: Callable[[Omni, str, Any], None]
          ) -> Callable[..., None]:
    @pytest.mark.parametrize("provider", wr.PROVIDERS)
    @BUDGET
    @given(data=st.data())
    def test(omni: Omni, provider: str, data: st.DataObject) -> None:
        check(omni, provider, data.draw(strategy(provider)))
    return test


def _unsigned(omni: Omni, provider: str, request: wr.Request) -> None:
    before = stored(omni)
    status = call(omni, provider, request)
    assert status is None or 400 <= status < 500
    assert stored(omni) == before


def _signed(omni: Omni, provider: str, request: wr.Request) -> None:
    status = call(omni, provider, request)
    assert status is None or status < 500


def _mutated(omni: Omni, provider: str, pair: tuple[wr.Request, wr.Request]) -> None:
    """The genuine request may be recorded; its mutation then is refused: a signature fails, or its
    nonce (the body's digest, Mailgun's token, Vonage's nonce) is bound to the genuine one (409)."""
    genuine, mutated = pair
    _signed(omni, provider, genuine)
    _unsigned(omni, provider, mutated)


test_unsigned_requests_are_4xx_and_store_nothing = _fuzz(unsigned_requests, _unsigned)
test_signed_requests_with_random_contents_never_fail_the_server = _fuzz(lambda p: SIGNED[p], _signed)
test_signed_requests_mutated_after_signing_are_refused = _fuzz(mutated_pairs, _mutated)
