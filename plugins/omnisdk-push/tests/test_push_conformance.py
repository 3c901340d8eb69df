"""The provider conformance kit, run against FCM, APNs and Web Push."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest
from apns_h2_imitation import APNsImitation
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from omnisdk_push import APNsPush, FCMPush, WebPush
from omnisdk_push._jose import b64url, public_point

from omnisdk import Outgoing, Push, VirtualClock
from omnisdk.testing.conformance import ProviderSuite, Reply, Requirements, ScriptedHTTPEndpoint, free_port
from omnisdk.testing.imitations import FCMImitation

PUSH = Push(title="Your cart", body="is waiting")
APNS_KEY = ec.generate_private_key(ec.SECP256R1())
APNS_PEM = APNS_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()


class TestFCMConformance(ProviderSuite):
    provider = FCMPush
    requirements = Requirements(webhooks=False)
    invalid_settings: ClassVar[Mapping[str, Any]] = {"credentials": "not a service-account key", "android": "high"}
    ok_reply = Reply(200, body={"name": "projects/demo-project/messages/0:1"})
    reject_reply = Reply(400, body={"error": {"code": 400, "message": "Request contains an invalid argument.",
                                              "status": "INVALID_ARGUMENT"}})

    @pytest.fixture(autouse=True)
    def oauth(self) -> Iterator[None]:
        """Google's token endpoint: the scripted endpoint stands in for fcm.googleapis.com only."""
        with FCMImitation() as server:
            self.token_server = server
            yield

    @property
    def config(self) -> Mapping[str, Any]:  # type: ignore[override]
        return {"credentials": json.dumps(self.token_server.service_account_info)}

    def outgoing(self, i: int) -> Outgoing:
        return self.make_outgoing(to=f"fcm-registration-token-{i}", content=PUSH)


class TestAPNsConformance(ProviderSuite):
    provider = APNsPush
    config: ClassVar[Mapping[str, Any]] = {
        "team_id": "TEAM123456", "key_id": "KEY1234567", "signing_key": APNS_PEM, "topic": "com.shop.app"
    }
    requirements = Requirements(webhooks=False)
    invalid_settings: ClassVar[Mapping[str, Any]] = {
        "team_id": "TEAM", "signing_key": "not a key", "jwt_refresh_seconds": 7200
    }

    def endpoint(self) -> APNsImitation:
        clock = VirtualClock()
        return APNsImitation(APNS_KEY.public_key(), team_id="TEAM123456", key_id="KEY1234567",
                             topic="com.shop.app", now=clock.timestamp)

    def outgoing(self, i: int) -> Outgoing:
        return self.make_outgoing(to=f"{i:064x}", content=PUSH)


class _FixedPortEndpoint(ScriptedHTTPEndpoint):
    """The push service's address is inside each subscription, so it must be known before it starts."""

    def __init__(self, replies: Mapping[str, Reply], port: int) -> None:
        super().__init__(replies)
        self.port = port

    async def __aenter__(self) -> _FixedPortEndpoint:
        import asyncio

        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    @property
    def settings(self) -> Mapping[str, Any]:
        return {}


class TestWebPushConformance(ProviderSuite):
    provider = WebPush
    config: ClassVar[Mapping[str, Any]] = {
        "vapid_private_key": b64url(ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
                                    .to_bytes(32, "big")),
        "vapid_subject": "mailto:ops@shop.example",
        "allow_http_endpoints": True,
    }
    requirements = Requirements(webhooks=False)
    invalid_settings: ClassVar[Mapping[str, Any]] = {
        "vapid_subject": "ops@shop.example", "vapid_private_key": "AAAA", "ttl": -5
    }
    ok_reply = Reply(201, {"Location": "https://push.example/m/1"})
    reject_reply = Reply(400, body={"code": 400, "errno": 111, "error": "Bad Request"})

    @pytest.fixture(autouse=True)
    def port(self, unused_tcp_port_for_push: int) -> None:
        self.push_port = unused_tcp_port_for_push

    def endpoint(self) -> _FixedPortEndpoint:
        scripted = super().endpoint()
        return _FixedPortEndpoint(scripted.replies, self.push_port)

    def outgoing(self, i: int) -> Outgoing:
        browser = ec.generate_private_key(ec.SECP256R1())
        subscription = {"endpoint": f"http://127.0.0.1:{self.push_port}/push/{i}",
                        "keys": {"p256dh": b64url(public_point(browser)), "auth": b64url(bytes(range(16)))}}
        return self.make_outgoing(to=json.dumps(subscription), content=PUSH)


@pytest.fixture
def unused_tcp_port_for_push() -> int:
    return free_port()
