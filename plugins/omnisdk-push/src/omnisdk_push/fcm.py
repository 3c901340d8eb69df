"""Firebase Cloud Messaging HTTP v1: one `messages:send` per device token, authorised by a service account.

The service account's key signs a JWT that Google's token endpoint exchanges for an OAuth2 access
token (RFC 7523); the token is cached until shortly before it expires.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import httpx

import omnisdk
from omnisdk import Accepted, Capabilities, ConfigError, Outgoing, ProviderError, RetryableError
from omnisdk.providers import Outcome, Provider, response_object

from ._jose import load_rsa_private_key, sign_jwt
from ._outcomes import failure, send_each
from .webpush import push_payload

__all__ = ["FCMPush", "ServiceAccount", "fcm_message"]

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
#: Renew the access token this long before Google says it expires.
EXPIRY_MARGIN = 300.0
#: FCM's errorCode values (google.firebase.fcm.v1.FcmError) that mean the token will never work again.
DEAD_TOKEN_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})
RETRY_CODES = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"})


@attrs.frozen
class ServiceAccount:
    """The fields of a Google service-account key file that FCM needs."""

    project_id: str
    client_email: str
    private_key_id: str
    token_uri: str
    private_key: Any = attrs.field(repr=False)

    @classmethod
    def parse(cls, text: str, *, field: str = "credentials") -> ServiceAccount:
        try:
            data = json.loads(text)
        except ValueError:
            raise ConfigError("not service-account key JSON", field=field) from None
        if not isinstance(data, dict) or data.get("type") != "service_account":
            raise ConfigError('not a service-account key (expected "type": "service_account")', field=field)
        missing = [k for k in ("project_id", "client_email", "private_key") if not data.get(k)]
        if missing:
            raise ConfigError(f"the key has no {', '.join(missing)}", field=field)
        return cls(
            project_id=str(data["project_id"]),
            client_email=str(data["client_email"]),
            private_key_id=str(data.get("private_key_id", "")),
            token_uri=str(data.get("token_uri") or DEFAULT_TOKEN_URI),
            private_key=load_rsa_private_key(str(data["private_key"]), f"{field}.private_key"),
        )

    def assertion(self, now: float, token_uri: str) -> str:
        """The signed JWT that the token endpoint exchanges for an access token (one hour at most)."""
        claims = {"iss": self.client_email, "scope": SCOPE, "aud": token_uri, "iat": int(now), "exp": int(now) + 3600}
        header = {"alg": "RS256", "typ": "JWT", **({"kid": self.private_key_id} if self.private_key_id else {})}
        return sign_jwt(header, claims, self.private_key)


def fcm_message(message: Outgoing, platforms: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The `Message` resource: notification for display, data for the app, per-platform options from config."""
    payload = push_payload(message)
    notification = {"title": payload["title"], "body": payload["body"]}
    if "image" in payload:
        notification["image"] = payload["image"]
    data = {str(k): str(v) for k, v in payload.get("data", {}).items()}
    data["delivery_id"] = message.delivery_id
    body: dict[str, Any] = {"token": message.to, "notification": notification, "data": data}
    if "url" in payload:
        data["url"] = payload["url"]
    for platform, options in platforms.items():
        if options:
            body[platform] = dict(options)
    if "url" in payload and str(payload["url"]).startswith("https://"):
        webpush = body.setdefault("webpush", {})
        webpush["fcmOptions"] = {**webpush.get("fcmOptions", {}), "link": payload["url"]}
    return body


class FCMPush(Provider):
    name = "fcm"
    channel = "push"
    # FCM v1 has no multi-recipient send: one request per message, many in flight (max_concurrency).
    capabilities = Capabilities(max_batch_size=1, max_concurrency=64, content_limits={"payload_bytes": 4096})

    @attrs.define
    class Config:
        #: The service-account key file's JSON text (Firebase console → Project settings → Service accounts).
        credentials: str = omnisdk.secret()
        #: Defaults to the key's project_id.
        project_id: str | None = None
        base_url: str = "https://fcm.googleapis.com"
        #: Defaults to the key's token_uri.
        token_url: str | None = None
        #: Per-platform options merged into every message (AndroidConfig, ApnsConfig, WebpushConfig).
        android: dict[str, Any] = attrs.field(factory=dict)
        apns: dict[str, Any] = attrs.field(factory=dict)
        webpush: dict[str, Any] = attrs.field(factory=dict)
        #: Ask FCM to validate without delivering.
        validate_only: bool = False

        def __attrs_post_init__(self) -> None:
            ServiceAccount.parse(self.credentials)  # a bad key fails when the client starts, not at a send
            for platform in ("android", "apns", "webpush"):
                if not isinstance(getattr(self, platform), dict):
                    raise ConfigError("must be a table of FCM options", field=platform)

    config: Config

    def __init__(self, config: Any, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.account = ServiceAccount.parse(config.credentials)
        self.project_id = config.project_id or self.account.project_id
        self.token_url = config.token_url or self.account.token_uri
        self._access_token: tuple[str, float] | None = None
        self._token_lock = asyncio.Lock()
        self._platforms = {"android": config.android, "apns": config.apns, "webpush": config.webpush}

    async def access_token(self) -> str:
        """A cached OAuth2 access token; one exchange at a time however many sends are waiting."""
        async with self._token_lock:
            now = self.clock.timestamp()
            if self._access_token is not None and now < self._access_token[1]:
                return self._access_token[0]
            form = {
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": self.account.assertion(now, self.token_url),
            }
            response = await self.http.post(self.token_url, data=form)
            try:
                answer = response.json()
                token, expires_in = str(answer["access_token"]), float(answer.get("expires_in", 3600))
            except (ValueError, KeyError, TypeError):
                raise ProviderError(f"token endpoint answered {response.status_code} without an access token") from None
            self._access_token = (token, now + max(expires_in - EXPIRY_MARGIN, 0.0))
            return token

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[Outcome]:
        try:
            token = await self.access_token()
        except (ProviderError, httpx.TransportError) as exc:
            return [RetryableError(reason=f"no FCM access token: {exc}")] * len(batch)
        return await send_each(batch, lambda m: self._send_one(m, token))

    async def _send_one(self, message: Outgoing, token: str) -> Outcome:
        body: dict[str, Any] = {"message": fcm_message(message, self._platforms)}
        if self.config.validate_only:
            body["validateOnly"] = True
        url = f"{self.config.base_url.rstrip('/')}/v1/projects/{self.project_id}/messages:send"
        response = await self.http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        if response.is_success:
            return Accepted(provider_message_id=str(response_object(response).get("name", message.delivery_id)))
        status, code = _google_error(response)
        reason = f"FCM {status or response.status_code}{f' {code}' if code else ''}"
        if response.status_code == 401 and code != "THIRD_PARTY_AUTH_ERROR":
            self._access_token = None  # revoked or expired early: the next attempt fetches a new one
            return RetryableError(reason=reason, status=401)
        return failure(
            response, reason, self.clock.timestamp(),
            code=code, forget_codes=DEAD_TOKEN_CODES, forget_statuses=(404,), retry_codes=RETRY_CODES,
        )


def _google_error(response: httpx.Response) -> tuple[str | None, str | None]:
    """(status, FCM errorCode) from Google's error body, e.g. ("NOT_FOUND", "UNREGISTERED")."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return None, None
    if not isinstance(error, dict):
        return None, None
    code = None
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("FcmError"):
            code = detail.get("errorCode")
    status = error.get("status")
    return (str(status) if status else None), (str(code) if code else None)
