"""FCM HTTP v1 against the local FCM imitation (requests validated against fcm_v1_discovery.json)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from omnisdk_push import FCMPush

from omnisdk import Accepted, ConfigError, Outgoing, PermanentError, Push, RetryableError, VirtualClock
from omnisdk.testing.imitations import Faults, FCMImitation

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fcm() -> Iterator[FCMImitation]:
    with FCMImitation(faults=Faults()) as server:
        yield server


def make_provider(fcm: FCMImitation, clock: VirtualClock | None = None, **extra: object) -> FCMPush:
    config = FCMPush.Config(credentials=json.dumps(fcm.service_account_info), base_url=fcm.base_url,
                            **extra)  # type: ignore[arg-type]
    return FCMPush(config, http=httpx.AsyncClient(), clock=clock or VirtualClock())


def outgoing(to: str = "fcm-token-1", n: int = 1, **push: object) -> Outgoing:
    content = Push(**{"title": "Hi", "body": "There", **push})  # type: ignore[arg-type]
    return Outgoing(delivery_id=f"d{n}", idempotency_key=f"run:s{n}:push", customer_id="c-1", to=to, content=content)


async def test_sends_a_valid_message_with_platform_options(fcm: FCMImitation) -> None:
    provider = make_provider(fcm, android={"priority": "HIGH", "ttl": "3600s"},
                             apns={"headers": {"apns-priority": "10"}, "payload": {"aps": {"badge": 1}}})
    outcomes = await provider.send([outgoing(url="https://shop.example/cart", data={"k": "v"}), outgoing(n=2)])
    fcm.assert_no_violations()
    assert [type(o) for o in outcomes] == [Accepted, Accepted]
    first = fcm.messages[0]
    assert outcomes[0].provider_message_id == first["name"]  # type: ignore[union-attr]
    assert first["token"] == "fcm-token-1"
    assert first["notification"] == {"title": "Hi", "body": "There"}
    assert first["data"] == {"k": "v", "delivery_id": "d1", "url": "https://shop.example/cart"}
    assert first["android"] == {"priority": "HIGH", "ttl": "3600s"}
    assert first["apns"]["payload"] == {"aps": {"badge": 1}}
    assert first["webpush"]["fcmOptions"] == {"link": "https://shop.example/cart"}


async def test_access_token_is_cached_until_it_nears_expiry(fcm: FCMImitation) -> None:
    clock = VirtualClock()
    provider = make_provider(fcm, clock)
    await provider.send([outgoing()])
    clock.advance(minutes=30)
    await provider.send([outgoing()])
    assert len(fcm.access_tokens) == 1
    assert sum(r.path == "/token" for r in fcm.requests) == 1
    clock.advance(minutes=30)  # past expires_in minus the margin: a new exchange
    outcomes = await provider.send([outgoing()])
    assert isinstance(outcomes[0], Accepted)
    assert sum(r.path == "/token" for r in fcm.requests) == 2
    fcm.assert_no_violations()


async def test_concurrent_sends_exchange_the_token_once(fcm: FCMImitation) -> None:
    provider = make_provider(fcm)
    outcomes = await provider.send([outgoing(n=i) for i in range(10)])
    assert all(isinstance(o, Accepted) for o in outcomes)
    assert sum(r.path == "/token" for r in fcm.requests) == 1


async def test_revoked_access_token_is_retryable_and_replaced(fcm: FCMImitation) -> None:
    provider = make_provider(fcm)
    await provider.send([outgoing()])
    fcm.revoke_access_tokens()
    [first] = await provider.send([outgoing()])
    [second] = await provider.send([outgoing()])
    assert isinstance(first, RetryableError) and first.status == 401
    assert isinstance(second, Accepted)


async def test_unregistered_token_is_forgotten(fcm: FCMImitation) -> None:
    fcm.unregister("dead-token")
    provider = make_provider(fcm)
    [outcome] = await provider.send([outgoing(to="dead-token")])
    assert isinstance(outcome, PermanentError)
    assert (outcome.status, outcome.code, outcome.forget_address) == (404, "UNREGISTERED", True)


async def test_quota_and_outages_are_retryable_with_retry_after(fcm: FCMImitation) -> None:
    provider = make_provider(fcm)
    await provider.access_token()
    fcm.faults.fail_next(1, "rate_limit")
    fcm.faults.fail_next(1, "unavailable")
    [throttled] = await provider.send([outgoing()])
    [down] = await provider.send([outgoing()])
    assert isinstance(throttled, RetryableError) and throttled.status == 429 and throttled.retry_after is not None
    assert isinstance(down, RetryableError) and down.status == 503


async def test_validate_only_sends_nothing(fcm: FCMImitation) -> None:
    provider = make_provider(fcm, validate_only=True)
    [outcome] = await provider.send([outgoing()])
    assert isinstance(outcome, Accepted) and fcm.messages == []
    fcm.assert_no_violations()


async def test_wrong_project_is_permanent_not_forgotten(fcm: FCMImitation) -> None:
    provider = make_provider(fcm, project_id="someone-else")
    [outcome] = await provider.send([outgoing()])
    assert isinstance(outcome, PermanentError) and outcome.status == 403 and not outcome.forget_address


async def test_unreachable_token_endpoint_is_retryable(fcm: FCMImitation) -> None:
    provider = make_provider(fcm, token_url="http://127.0.0.1:9/token")
    outcomes = await provider.send([outgoing(), outgoing(n=2)])
    assert [type(o) for o in outcomes] == [RetryableError, RetryableError]


@pytest.mark.parametrize(
    ("credentials", "field"),
    [("not json", "credentials"), ('{"type": "authorized_user"}', "credentials"),
     ('{"type": "service_account", "project_id": "p", "client_email": "e", "private_key": "nope"}',
      "credentials.private_key")],
)
def test_bad_credentials_are_config_errors_naming_the_field(credentials: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        FCMPush.Config(credentials=credentials)
    assert info.value.field == field


def test_credentials_stay_out_of_repr(fcm: FCMImitation) -> None:
    provider = make_provider(fcm)
    assert "PRIVATE KEY" not in repr(provider) and "PRIVATE KEY" not in repr(provider.account)
