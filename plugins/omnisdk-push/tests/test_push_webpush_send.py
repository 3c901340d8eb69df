"""Web Push sends against the local push service imitation; payloads decrypted independently with http_ece,
and sized against pywebpush, the reference sender."""

from __future__ import annotations

import json
from collections.abc import Iterator

import http_ece
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from omnisdk_push import WebPush
from omnisdk_push._ece import MAX_PLAINTEXT_BYTES
from omnisdk_push._jose import b64url
from omnisdk_push.webpush import push_body, push_payload
from py_vapid import Vapid02
from pywebpush import WebPusher

from omnisdk import Accepted, ConfigError, Outgoing, PermanentError, Push, RetryableError, VirtualClock
from omnisdk.testing.imitations import Faults, WebPushImitation

pytestmark = pytest.mark.anyio
VAPID_KEY = ec.generate_private_key(ec.SECP256R1())
VAPID_RAW = b64url(VAPID_KEY.private_numbers().private_value.to_bytes(32, "big"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def service() -> Iterator[WebPushImitation]:
    with WebPushImitation(faults=Faults()) as server:
        yield server


def make_provider(**extra: object) -> WebPush:
    settings = {"vapid_private_key": VAPID_RAW, "vapid_subject": "mailto:ops@shop.example",
                "allow_http_endpoints": True, **extra}
    return WebPush(WebPush.Config(**settings), http=httpx.AsyncClient(), clock=VirtualClock())  # type: ignore[arg-type]


def outgoing(to: str, **push: object) -> Outgoing:
    content = Push(**{"title": "Back in stock", "body": "Your size is here", **push})  # type: ignore[arg-type]
    return Outgoing(delivery_id="d1", idempotency_key="run:s:push", customer_id="c-1", to=to, content=content)


async def test_the_browser_decrypts_what_we_send(service: WebPushImitation) -> None:
    subscription = service.subscribe()
    provider = make_provider()
    [outcome] = await provider.send([outgoing(json.dumps(subscription.info()), url="https://shop.example/p/1")])
    service.assert_no_violations()
    assert isinstance(outcome, Accepted) and outcome.provider_message_id.startswith(service.base_url)
    [push] = service.received
    plaintext = http_ece.decrypt(push.body, private_key=subscription.private_key,
                                 auth_secret=subscription.auth_secret, version="aes128gcm")
    assert json.loads(plaintext) == {"title": "Back in stock", "body": "Your size is here", "delivery_id": "d1",
                                     "url": "https://shop.example/p/1"}
    assert push.headers["Content-Encoding"] == "aes128gcm" and push.headers["TTL"] == str(28 * 24 * 3600)
    assert Vapid02.verify(push.headers["Authorization"])
    assert push.claims["aud"] == service.base_url and push.claims["sub"] == "mailto:ops@shop.example"


async def test_expired_subscription_is_forgotten(service: WebPushImitation) -> None:
    subscription = service.subscribe()
    service.unsubscribe(subscription)
    [outcome] = await make_provider().send([outgoing(json.dumps(subscription.info()))])
    assert isinstance(outcome, PermanentError) and outcome.status == 410 and outcome.forget_address


async def test_throttling_is_retryable_with_retry_after(service: WebPushImitation) -> None:
    subscription = service.subscribe()
    service.faults.fail_next(1, "rate_limit")
    [outcome] = await make_provider().send([outgoing(json.dumps(subscription.info()))])
    assert isinstance(outcome, RetryableError) and outcome.status == 429 and outcome.retry_after == 1.0


async def test_oversize_payload_is_refused_before_sending(service: WebPushImitation) -> None:
    subscription = service.subscribe()
    [outcome] = await make_provider().send([outgoing(json.dumps(subscription.info()), body="x" * 4000)])
    assert isinstance(outcome, PermanentError) and outcome.code == "payload_too_large"
    assert service.requests == []


@pytest.mark.parametrize(
    "to",
    ["not json", '{"endpoint": "https://push.example/x"}',
     '{"endpoint": "https://push.example/x", "keys": {"p256dh": "AAAA", "auth": "BTBZMqHH6r4Tts7J_aSIgg"}}'],
)
async def test_malformed_subscriptions_are_refused_and_forgotten(to: str) -> None:
    [outcome] = await make_provider().send([outgoing(to)])
    assert isinstance(outcome, PermanentError) and outcome.code == "invalid_subscription" and outcome.forget_address


async def test_plain_http_endpoints_are_refused_by_default(service: WebPushImitation) -> None:
    subscription = service.subscribe()
    [outcome] = await make_provider(allow_http_endpoints=False).send([outgoing(json.dumps(subscription.info()))])
    assert isinstance(outcome, PermanentError) and "https" in outcome.reason
    assert service.requests == []


@pytest.mark.parametrize(("change", "field"), [({"vapid_subject": "ops@shop.example"}, "vapid_subject"),
                                               ({"ttl": -1}, "ttl")])
def test_config_errors_name_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_provider(**change)
    assert info.value.field == field


def test_vapid_key_stays_out_of_repr() -> None:
    assert VAPID_RAW not in repr(make_provider())


# -- the 4 KB budget is spent on UTF-8, not on \u escapes; pywebpush and http_ece as oracles --------

CART = "Zoë, ваша корзина ждёт 🛒 — 20 % de réduction sur « Été » "  # accents, Cyrillic, an emoji


async def test_non_ascii_text_goes_out_as_compact_utf8(service: WebPushImitation) -> None:
    subscription = service.subscribe()
    [outcome] = await make_provider().send([outgoing(json.dumps(subscription.info()), title="Zoë 🛒", body=CART)])
    assert isinstance(outcome, Accepted)
    [push] = service.received
    plaintext = http_ece.decrypt(push.body, private_key=subscription.private_key,
                                 auth_secret=subscription.auth_secret, version="aes128gcm")
    assert b"\\u" not in plaintext
    assert plaintext.decode("utf-8") == json.dumps(
        {"title": "Zoë 🛒", "body": CART, "delivery_id": "d1"}, ensure_ascii=False, separators=(",", ":"))


async def test_a_payload_that_fits_in_utf8_is_sent_whole_and_one_byte_more_is_refused(
        service: WebPushImitation) -> None:
    """3,9xx bytes of UTF-8 that would be ~3x larger with \\u escapes: it fits, and pywebpush (the
    reference sender) encrypts the same plaintext into one record of the same size, within 4096."""
    subscription = service.subscribe()
    room = MAX_PLAINTEXT_BYTES - len(push_body(outgoing("", body="")))
    exact = outgoing(json.dumps(subscription.info()), body="é" * (room // 2) + "x" * (room % 2))
    assert len(push_body(exact)) == MAX_PLAINTEXT_BYTES
    assert len(json.dumps(push_payload(exact), separators=(",", ":")).encode()) > 2 * MAX_PLAINTEXT_BYTES

    [outcome] = await make_provider().send([exact])
    [too_big] = await make_provider().send([outgoing(exact.to, body=exact.content.body + "x")])  # type: ignore[union-attr]

    assert isinstance(outcome, Accepted)
    assert isinstance(too_big, PermanentError) and too_big.code == "payload_too_large"
    [push] = service.received
    assert len(push.body) == 4096
    reference = WebPusher(subscription.info()).encode(push_body(exact), content_encoding="aes128gcm")["body"]
    assert len(reference) == len(push.body)
    assert http_ece.decrypt(reference, private_key=subscription.private_key, auth_secret=subscription.auth_secret,
                            version="aes128gcm") == push.decrypt()


async def test_text_that_is_not_unicode_is_a_typed_error(service: WebPushImitation) -> None:
    subscription = service.subscribe()
    [outcome] = await make_provider().send([outgoing(json.dumps(subscription.info()), body="broken \ud83d text")])
    assert isinstance(outcome, PermanentError) and outcome.code == "invalid_payload"
    assert service.requests == []
