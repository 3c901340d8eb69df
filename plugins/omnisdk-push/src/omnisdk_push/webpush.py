"""Web Push: a VAPID-signed (RFC 8292), aes128gcm-encrypted (RFC 8291) POST to the subscription's endpoint.

`Outgoing.to` is the browser's PushSubscription as JSON: {"endpoint": ..., "keys": {"p256dh": ..., "auth": ...}}.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs

import omnisdk
from omnisdk import Accepted, Capabilities, ConfigError, Outgoing, PermanentError, Provider, Push
from omnisdk.providers import Outcome

from ._ece import MAX_PLAINTEXT_BYTES, encrypt
from ._jose import b64url, b64url_decode, load_ec_private_key, public_point, sign_jwt
from ._outcomes import failure, send_each
from ._tokens import TokenCache

__all__ = ["Subscription", "VapidSigner", "WebPush", "push_body", "push_payload"]

#: RFC 8292 §2: a token lives at most 24 hours; we sign for 12 and renew after 6.
VAPID_TOKEN_SECONDS = 12 * 3600


class VapidSigner:
    """Signs `Authorization: vapid t=…,k=…` for a push service origin (RFC 8292)."""

    def __init__(self, private_key: str, subject: str, *, field: str = "vapid_private_key") -> None:
        self._key = load_ec_private_key(private_key, field)
        self.subject = subject
        self.public_key = b64url(public_point(self._key))
        self._cache = TokenCache(lifetime=VAPID_TOKEN_SECONDS / 2)

    def token(self, audience: str, issued_at: float) -> str:
        claims = {"aud": audience, "exp": int(issued_at) + VAPID_TOKEN_SECONDS, "sub": self.subject}
        return sign_jwt({"typ": "JWT", "alg": "ES256"}, claims, self._key)

    def authorization(self, endpoint: str, now: float) -> str:
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        token = self._cache.get(audience, now, lambda issued: self.token(audience, issued))
        return f"vapid t={token},k={self.public_key}"


@attrs.frozen
class Subscription:
    """A browser PushSubscription: where to post, and the keys only that browser can decrypt with."""

    endpoint: str
    p256dh: bytes
    auth: bytes

    @classmethod
    def parse(cls, text: str, *, allow_http: bool = False) -> Subscription:
        """Raises ValueError saying what is wrong with the subscription."""
        try:
            data = json.loads(text)
            endpoint, keys = data["endpoint"], data["keys"]
            p256dh, auth = b64url_decode(keys["p256dh"]), b64url_decode(keys["auth"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a PushSubscription JSON with endpoint and keys.p256dh/auth ({exc!s})") from None
        scheme = urlsplit(str(endpoint)).scheme
        if scheme != "https" and not (allow_http and scheme == "http"):
            raise ValueError("the endpoint must be an https URL")
        if len(p256dh) != 65 or p256dh[0] != 4:
            raise ValueError("keys.p256dh is not an uncompressed P-256 point")
        if len(auth) != 16:
            raise ValueError("keys.auth is not 16 bytes")
        return cls(endpoint=str(endpoint), p256dh=p256dh, auth=auth)


def push_payload(message: Outgoing) -> dict[str, Any]:
    """What the service worker receives: the rendered Push fields plus the delivery id for click tracking."""
    content = message.content
    if not isinstance(content, Push):
        raise TypeError(f"expected a Push rendition, got {type(content).__name__}")
    payload: dict[str, Any] = {"title": content.title, "body": content.body, "delivery_id": message.delivery_id}
    if content.url:
        payload["url"] = content.url
    if content.image:
        payload["image"] = content.image
    if content.data:
        payload["data"] = dict(content.data)
    return payload


def push_body(message: Outgoing) -> bytes:
    """The plaintext the browser decrypts: compact JSON in UTF-8. `\\u` escapes would spend up to six
    bytes of the ~4 KB budget on one accented letter, twelve on an emoji; raw UTF-8 spends two to four.
    Raises UnicodeEncodeError for text that is not valid Unicode (a lone surrogate)."""
    return json.dumps(push_payload(message), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class WebPush(Provider):
    name = "webpush"
    channel = "push"
    capabilities = Capabilities(
        max_batch_size=1,
        content_limits={"payload_bytes": MAX_PLAINTEXT_BYTES},
        crash_policy="at_most_once",
    )

    @attrs.define
    class Config:
        #: The application server's P-256 key: base64url raw 32 bytes (as `web-push generate-vapid-keys`
        #: prints it) or PEM.
        vapid_private_key: str = omnisdk.secret()
        #: Who to contact about this sender: "mailto:ops@shop.example" or an https URL.
        vapid_subject: str = ""
        #: Seconds the push service keeps an undelivered message.
        ttl: int = 4 * 7 * 24 * 3600
        urgency: Literal["very-low", "low", "normal", "high"] = "normal"
        #: Accept http:// endpoints (local test servers only; browsers always give https).
        allow_http_endpoints: bool = False

        def __attrs_post_init__(self) -> None:
            load_ec_private_key(self.vapid_private_key, "vapid_private_key")  # fails at start, not at a send
            if not self.vapid_subject.startswith(("mailto:", "https://")):
                raise ConfigError("must be a mailto: or https: contact (RFC 8292 §2.1)", field="vapid_subject")
            if self.ttl < 0:
                raise ConfigError("must be zero or more seconds", field="ttl")

    config: Config

    def __init__(self, config: Any, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.signer = VapidSigner(config.vapid_private_key, config.vapid_subject)

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[Outcome]:
        return await send_each(batch, self._send_one)

    async def _send_one(self, message: Outgoing) -> Outcome:
        try:
            subscription = Subscription.parse(message.to, allow_http=self.config.allow_http_endpoints)
        except ValueError as exc:
            return PermanentError(reason=f"invalid subscription: {exc}", code="invalid_subscription",
                                  forget_address=True)
        try:
            plaintext = push_body(message)
        except UnicodeEncodeError:
            return PermanentError(reason="the push text is not valid Unicode (a lone surrogate)",
                                  code="invalid_payload")
        if len(plaintext) > MAX_PLAINTEXT_BYTES:
            return PermanentError(reason=f"payload of {len(plaintext)} bytes exceeds {MAX_PLAINTEXT_BYTES}",
                                  code="payload_too_large")
        now = self.clock.timestamp()
        headers: Mapping[str, str] = {
            "Authorization": self.signer.authorization(subscription.endpoint, now),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self.config.ttl),
            "Urgency": self.config.urgency,
        }
        body = encrypt(plaintext, subscription.p256dh, subscription.auth)
        response = await self.http.post(subscription.endpoint, content=body, headers=headers)
        if response.is_success:
            return Accepted(provider_message_id=response.headers.get("location") or message.delivery_id)
        return failure(response, f"push service answered {response.status_code}", now, forget_statuses=(404, 410))
