"""APNs over HTTP/2 against a local HTTP/2 server that checks requests as Apple documents them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from apns_h2_imitation import APNsImitation
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from omnisdk_push import APNsPush

from omnisdk import Accepted, ConfigError, Outgoing, PermanentError, Push, RetryableError, VirtualClock

pytestmark = pytest.mark.anyio
TEAM, KEY_ID, TOPIC = "TEAM123456", "KEY1234567", "com.shop.app"
TOKEN = "a" * 64


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def apns(signing_key: ec.EllipticCurvePrivateKey, clock: VirtualClock) -> Iterator[APNsImitation]:
    with APNsImitation(signing_key.public_key(), team_id=TEAM, key_id=KEY_ID, topic=TOPIC,
                       now=clock.timestamp) as server:
        yield server


def _pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def make_provider(key: ec.EllipticCurvePrivateKey, base_url: str, clock: VirtualClock, **extra: object) -> APNsPush:
    config = APNsPush.Config(team_id=TEAM, key_id=KEY_ID, signing_key=_pem(key), topic=TOPIC, base_url=base_url,
                             **extra)  # type: ignore[arg-type]
    return APNsPush(config, http=httpx.AsyncClient(), clock=clock)


def outgoing(to: str = TOKEN, n: int = 1, **push: object) -> Outgoing:
    content = Push(**{"title": "Your cart", "body": "is waiting", **push})  # type: ignore[arg-type]
    return Outgoing(delivery_id=f"d{n}", idempotency_key=f"run:step{n}:push", customer_id="c-1", to=to,
                    content=content)


async def test_sends_over_http2_with_a_valid_provider_token(apns: APNsImitation, signing_key, clock) -> None:
    provider = make_provider(signing_key, apns.base_url, clock)
    outcomes = await provider.send([outgoing(url="https://shop.example/cart"), outgoing(n=2)])
    await provider.aclose()
    assert [type(o) for o in outcomes] == [Accepted, Accepted]
    apns.assert_no_violations()
    first = apns.requests[0]
    assert first.path == f"/3/device/{TOKEN}"
    assert first.headers["apns-push-type"] == "alert" and first.headers["apns-priority"] == "10"
    assert first.claims["iss"] == TEAM
    body = json.loads(first.body)
    assert body["aps"]["alert"] == {"title": "Your cart", "body": "is waiting"}
    assert body["url"] == "https://shop.example/cart" and body["delivery_id"] == "d1"
    assert outcomes[0].provider_message_id == first.headers["apns-id"]  # type: ignore[union-attr]


async def test_apns_id_is_stable_per_delivery_so_a_resend_is_recognisable(apns, signing_key, clock) -> None:
    provider = make_provider(signing_key, apns.base_url, clock)
    await provider.send([outgoing()])
    await provider.send([outgoing()])
    await provider.aclose()
    assert apns.requests[0].headers["apns-id"] == apns.requests[1].headers["apns-id"]


async def test_provider_token_is_reused_then_renewed_within_apples_window(apns, signing_key, clock) -> None:
    provider = make_provider(signing_key, apns.base_url, clock)
    await provider.send([outgoing()])
    clock.advance(minutes=30)
    await provider.send([outgoing()])
    assert len(apns.provider_tokens) == 1  # not renewed more often than every 20 minutes
    clock.advance(minutes=25)  # 55 minutes old: renewed before Apple's hour runs out
    outcomes = await provider.send([outgoing()])
    await provider.aclose()
    assert isinstance(outcomes[0], Accepted)
    assert len(apns.provider_tokens) == 2
    apns.assert_no_violations()


async def test_unregistered_token_is_forgotten(apns, signing_key, clock) -> None:
    apns.unregistered.add("b" * 64)
    provider = make_provider(signing_key, apns.base_url, clock)
    [outcome] = await provider.send([outgoing(to="b" * 64)])
    await provider.aclose()
    assert isinstance(outcome, PermanentError)
    assert (outcome.status, outcome.code, outcome.forget_address) == (410, "Unregistered", True)


async def test_payload_over_4kb_is_refused_before_sending(apns, signing_key, clock) -> None:
    provider = make_provider(signing_key, apns.base_url, clock)
    [outcome] = await provider.send([outgoing(body="x" * 4100)])
    await provider.aclose()
    assert isinstance(outcome, PermanentError) and outcome.code == "PayloadTooLarge"
    assert not outcome.forget_address
    assert apns.requests == []
    assert APNsPush.capabilities.content_limits["payload_bytes"] == 4096


async def test_throttling_and_outages_are_retryable(apns, signing_key, clock) -> None:
    apns.queued += [(429, "TooManyRequests", {"retry-after": "30"}), (503, "ServiceUnavailable", {})]
    provider = make_provider(signing_key, apns.base_url, clock)
    first = (await provider.send([outgoing()]))[0]
    second = (await provider.send([outgoing()]))[0]
    await provider.aclose()
    assert isinstance(first, RetryableError) and first.retry_after == 30.0 and first.status == 429
    assert isinstance(second, RetryableError) and second.status == 503


async def test_expired_provider_token_is_renewed_on_the_retry(apns, signing_key, clock) -> None:
    apns.queued.append((403, "ExpiredProviderToken", {}))
    provider = make_provider(signing_key, apns.base_url, clock)
    first = (await provider.send([outgoing()]))[0]
    clock.advance(seconds=1)
    second = (await provider.send([outgoing()]))[0]
    await provider.aclose()
    assert isinstance(first, RetryableError) and first.status == 403
    assert isinstance(second, Accepted)
    assert len(apns.provider_tokens) == 2


async def test_bad_device_token_is_refused_without_a_request(apns, signing_key, clock) -> None:
    provider = make_provider(signing_key, apns.base_url, clock)
    [outcome] = await provider.send([outgoing(to="not/a token")])
    await provider.aclose()
    assert isinstance(outcome, PermanentError) and outcome.forget_address
    assert apns.requests == []


async def test_unreachable_service_is_retryable(signing_key, clock) -> None:
    provider = make_provider(signing_key, "http://127.0.0.1:9", clock)
    [outcome] = await provider.send([outgoing()])
    await provider.aclose()
    assert isinstance(outcome, RetryableError)


@pytest.mark.parametrize(
    ("change", "field"),
    [({"team_id": "short"}, "team_id"), ({"topic": ""}, "topic"), ({"jwt_refresh_seconds": 3600},
     "jwt_refresh_seconds"), ({"jwt_refresh_seconds": 600}, "jwt_refresh_seconds")],
)
def test_config_errors_name_the_field(signing_key, change: dict[str, object], field: str) -> None:
    settings = {"team_id": TEAM, "key_id": KEY_ID, "signing_key": _pem(signing_key), "topic": TOPIC, **change}
    with pytest.raises(ConfigError) as info:
        APNsPush.Config(**settings)  # type: ignore[arg-type]
    assert info.value.field == field


def test_signing_key_must_be_a_p256_key() -> None:
    with pytest.raises(ConfigError) as info:
        APNsPush.Config(team_id=TEAM, key_id=KEY_ID, signing_key="not a key", topic=TOPIC)
    assert info.value.field == "signing_key"


def test_signing_key_stays_out_of_repr(signing_key) -> None:
    provider = APNsPush(APNsPush.Config(team_id=TEAM, key_id=KEY_ID, signing_key=_pem(signing_key), topic=TOPIC),
                        http=httpx.AsyncClient())
    assert "PRIVATE KEY" not in repr(provider) and "PRIVATE KEY" not in repr(provider.config)
