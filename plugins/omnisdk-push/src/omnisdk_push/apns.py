"""Apple Push Notification service over HTTP/2 with a token (.p8 key) signed ES256.

APNs speaks only HTTP/2, so this provider keeps its own HTTP/2 client: concurrent sends are streams
on one connection. Apple rejects a provider token older than an hour and refuses new ones
more often than every 20 minutes, so one token is reused and renewed after `jwt_refresh_seconds`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import attrs
import httpx

import omnisdk
from omnisdk import Accepted, Capabilities, ConfigError, Outgoing, PermanentError, Provider, RetryableError
from omnisdk.providers import Outcome

from ._jose import load_ec_private_key, sign_jwt
from ._outcomes import failure, send_each
from ._tokens import TokenCache
from .webpush import push_payload

__all__ = ["APNS_PAYLOAD_LIMIT", "APNsPush", "apns_payload"]

APNS_PAYLOAD_LIMIT = 4096
#: Apple: renew no sooner than 20 minutes and no later than 60 minutes after the last token.
TOKEN_WINDOW = (20 * 60, 60 * 60)
#: `reason` values that mean the device token is gone for good.
DEAD_TOKEN_REASONS = frozenset({"Unregistered", "BadDeviceToken", "DeviceTokenNotForTopic"})
TOKEN_REASONS = frozenset({"ExpiredProviderToken", "InvalidProviderToken"})
_APNS_ID_NAMESPACE = uuid.UUID("6f1c5d2e-7a0b-4c1e-9d0e-0a4d6e5b3c21")


def apns_payload(message: Outgoing) -> dict[str, Any]:
    """`aps` for the system UI, with our fields (url, data, delivery id) beside it for the app."""
    payload = push_payload(message)
    aps: dict[str, Any] = {"alert": {"title": payload["title"], "body": payload["body"]}, "sound": "default"}
    if "image" in payload:
        aps["mutable-content"] = 1  # lets a notification service extension fetch the image
    body: dict[str, Any] = {"aps": aps, "delivery_id": message.delivery_id}
    for key in ("url", "image", "data"):
        if key in payload:
            body[key] = payload[key]
    return body


class APNsPush(Provider):
    name = "apns"
    channel = "push"
    # One request per message; concurrent sends are streams multiplexed on one HTTP/2 connection.
    capabilities = Capabilities(
        max_batch_size=1, max_concurrency=64, content_limits={"payload_bytes": APNS_PAYLOAD_LIMIT}
    )

    @attrs.define
    class Config:
        team_id: str
        key_id: str
        #: The AuthKey_<key_id>.p8 file's text (PEM, P-256).
        signing_key: str = omnisdk.secret()
        #: The app's bundle id (apns-topic).
        topic: str = ""
        #: https://api.sandbox.push.apple.com for development builds.
        base_url: str = "https://api.push.apple.com"
        push_type: Literal["alert", "background"] = "alert"
        priority: Literal[5, 10] = 10
        jwt_refresh_seconds: int = 50 * 60

        def __attrs_post_init__(self) -> None:
            load_ec_private_key(self.signing_key, "signing_key")  # a bad key fails at start, not at a send
            for field in ("team_id", "key_id"):
                if len(getattr(self, field)) != 10:
                    raise ConfigError("Apple team and key ids are 10 characters", field=field)
            if not self.topic:
                raise ConfigError("missing the app's bundle id", field="topic")
            low, high = TOKEN_WINDOW
            if not low <= self.jwt_refresh_seconds < high:
                raise ConfigError(f"must be within Apple's window [{low}, {high}) s", field="jwt_refresh_seconds")

    config: Config

    def __init__(self, config: Any, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self._key = load_ec_private_key(config.signing_key, "signing_key")
        self._tokens = TokenCache(lifetime=float(config.jwt_refresh_seconds))
        # The core's client sets the timeouts; APNs needs HTTP/2, which that client may not speak.
        self.h2 = httpx.AsyncClient(http1=False, http2=True, base_url=config.base_url, timeout=self.http.timeout)

    def provider_token(self) -> str:
        now = self.clock.timestamp()
        header = {"alg": "ES256", "kid": self.config.key_id}
        team = self.config.team_id
        claims = {"iss": team}
        return self._tokens.get(team, now, lambda issued: sign_jwt(header, {**claims, "iat": int(issued)}, self._key))

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[Outcome]:
        return await send_each(batch, self._send_one)

    async def _send_one(self, message: Outgoing) -> Outcome:
        body = json.dumps(apns_payload(message), separators=(",", ":"), ensure_ascii=False).encode()
        if len(body) > APNS_PAYLOAD_LIMIT:
            return PermanentError(reason=f"payload of {len(body)} bytes exceeds APNs' {APNS_PAYLOAD_LIMIT}",
                                  code="PayloadTooLarge")
        token = message.to.strip()
        if not token or any(c not in "0123456789abcdefABCDEF" for c in token):
            return PermanentError(reason="device token is not hexadecimal", code="BadDeviceToken", forget_address=True)
        headers = {
            "authorization": f"bearer {self.provider_token()}",
            "apns-topic": self.config.topic,
            "apns-push-type": self.config.push_type,
            "apns-priority": str(self.config.priority),
            # Deterministic per delivery, so a resend after a crash carries the same id.
            "apns-id": str(uuid.uuid5(_APNS_ID_NAMESPACE, message.idempotency_key)),
        }
        response = await self.h2.post(f"/3/device/{token}", content=body, headers=headers)
        if response.is_success:
            return Accepted(provider_message_id=response.headers.get("apns-id", headers["apns-id"]))
        reason = _reason(response)
        if reason in TOKEN_REASONS:
            self._tokens.forget(self.config.team_id)
            return RetryableError(reason=f"APNs {reason}", status=response.status_code)
        return failure(response, f"APNs {response.status_code} {reason or ''}".strip(), self.clock.timestamp(),
                       code=reason, forget_codes=DEAD_TOKEN_REASONS, forget_statuses=(410,))

    async def aclose(self) -> None:
        await self.h2.aclose()


def _reason(response: httpx.Response) -> str | None:
    try:
        reason = response.json().get("reason")
    except (ValueError, AttributeError):
        return None
    return str(reason) if reason else None
