"""A Web Push service (RFC 8030) taking aes128gcm payloads (RFC 8188/8291) with VAPID (RFC 8292)."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import attrs
from aiohttp import web
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ._base import Imitation, route
from ._call import Call, Invalid, Problem, RecordedRequest
from ._jose import BadToken, verify_jwt
from ._util import b64url, b64url_decode

__all__ = ["Push", "Subscription", "WebPushImitation", "decrypt_aes128gcm"]

MAX_PAYLOAD = 4096
_ERRNO = {400: 111, 401: 109, 404: 102, 410: 106, 413: 104, 429: 129, 500: 999, 503: 201}


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def decrypt_aes128gcm(body: bytes, private_key: ec.EllipticCurvePrivateKey, auth_secret: bytes) -> bytes:
    """The plaintext of a Web Push message body (RFC 8291 section 3.4, RFC 8188 records)."""
    salt, record_size, key_length = body[:16], int.from_bytes(body[16:20], "big"), body[20]
    sender = body[21 : 21 + key_length]
    receiver = private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    shared = private_key.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender))
    ikm = _hkdf(auth_secret, shared, b"WebPush: info\x00" + receiver + sender, 32)
    key = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    payload, records = body[21 + key_length :], []
    for seq, start in enumerate(range(0, len(payload), record_size)):
        iv = (int.from_bytes(nonce, "big") ^ seq).to_bytes(12, "big")
        records.append(AESGCM(key).decrypt(iv, payload[start : start + record_size], None).rstrip(b"\x00"))
    return b"".join(record[:-1] for record in records)


def _refused(message: str) -> Invalid:
    return Invalid(Problem("auth", message, "Authorization", "security"))


@attrs.define
class Subscription:
    """A browser's push subscription: what `PushSubscription.toJSON()` gives, plus the private key."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey = attrs.field(repr=False)
    auth_secret: bytes = attrs.field(repr=False)
    active: bool = True

    def info(self) -> dict[str, Any]:
        """{"endpoint": ..., "keys": {"p256dh": ..., "auth": ...}} as a browser hands it to the server."""
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"endpoint": self.endpoint, "keys": {"p256dh": b64url(public), "auth": b64url(self.auth_secret)}}


@attrs.frozen
class Push:
    """A message the push service accepted, still encrypted as sent."""

    subscription: Subscription
    #: The request that carried it.
    request: RecordedRequest = attrs.field(repr=False)
    #: The VAPID JWT's claims (aud, exp, sub).
    claims: dict[str, Any]
    #: Seconds the push service may keep the message (the TTL header).
    ttl: int
    #: The Urgency header: "very-low", "low", "normal" (its default) or "high".
    urgency: str = "normal"
    #: The Topic header: a newer message with the same topic replaces an undelivered one.
    topic: str | None = None

    @property
    def body(self) -> bytes:
        """The encrypted body, as sent."""
        return self.request.raw

    @property
    def headers(self) -> Mapping[str, str]:
        return self.request.headers

    def decrypt(self) -> bytes:
        """The plaintext, decrypted with the subscription's keys, as the browser would."""
        return decrypt_aes128gcm(self.body, self.subscription.private_key, self.subscription.auth_secret)


@attrs.define(kw_only=True, slots=False, eq=False)
class WebPushImitation(Imitation):
    """A push service endpoint: POST /push/{id} answers 201 Created, 410 Gone once unsubscribed.

    `subscribe()` makes a subscription (its private key stays here, so `Push.decrypt()` works).
    Requests need a TTL header, `Content-Encoding: aes128gcm` for a body of at most 4096 bytes,
    and `Authorization: vapid t=<ES256 JWT>, k=<public key>` whose `aud` is this server's origin.
    With `vapid_public_key` set, other application keys are refused.
    """

    vapid_public_key: str | None = None
    subscriptions: dict[str, Subscription] = attrs.field(factory=dict, init=False, repr=False)
    received: list[Push] = attrs.field(factory=list, init=False, repr=False)

    def subscribe(self) -> Subscription:
        """A new subscription with an endpoint on this server."""
        ident = secrets.token_urlsafe(24)
        key = ec.generate_private_key(ec.SECP256R1())
        subscription = Subscription(self.url(f"/push/{ident}"), key, secrets.token_bytes(16))
        self.subscriptions[ident] = subscription
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """The user revoked permission: the endpoint answers 410 Gone from now on."""
        subscription.active = False

    def error(self, status: int, problem: Problem | None = None) -> web.StreamResponse:
        message = problem.message if problem else HTTPStatus(status).phrase
        body = {"code": status, "errno": _ERRNO.get(status, 999), "error": message, "message": message}
        return web.json_response(body, status=status)

    def _vapid(self, call: Call) -> dict[str, Any]:
        scheme, _, params = call.headers.get("Authorization", "").partition(" ")
        fields = dict(p.strip().partition("=")[::2] for p in params.split(","))
        if scheme.lower() != "vapid" or not fields.get("t") or not fields.get("k"):
            raise _refused("Missing or malformed 'vapid t=..., k=...' Authorization")
        if self.vapid_public_key and fields["k"] != self.vapid_public_key:
            raise _refused("VAPID public key mismatch")
        try:
            point = b64url_decode(fields["k"])
            key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
            _, claims = verify_jwt(fields["t"], key)
        except (ValueError, BadToken) as exc:
            raise _refused(f"Invalid VAPID token: {exc}") from exc
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.base_url))
        if claims.get("aud") != origin or not isinstance(claims.get("exp"), int) or not claims.get("sub"):
            raise _refused(f"VAPID claims need aud={origin}, an integer exp and sub")
        return claims

    @route("POST", "/push/{ident}", auth=False)
    def push(self, call: Call) -> web.StreamResponse:
        subscription = self.subscriptions.get(call.params["ident"])
        if subscription is None:
            return self.error(404, Problem("path", "Subscription not found"))
        if not subscription.active:
            return self.error(410, Problem("path", "Subscription is no longer valid"))
        claims = self._vapid(call)
        if not call.headers.get("TTL", "").isdigit():
            raise Invalid(Problem("header", "Missing TTL header", "TTL", "missing"))
        if len(call.raw) > MAX_PAYLOAD:
            return self.error(413, Problem("body", "Payload too large"))
        if call.raw:
            if call.headers.get("Content-Encoding") != "aes128gcm":
                raise Invalid(Problem("header", "Content-Encoding must be aes128gcm", "Content-Encoding"))
            if len(call.raw) < 21 + 65 + 17 or call.raw[20] != 65:
                raise Invalid.body("Malformed aes128gcm header: expected a 65-byte keyid", reason="malformed")
            try:
                decrypt_aes128gcm(call.raw, subscription.private_key, subscription.auth_secret)
            except (InvalidTag, ValueError) as exc:
                raise Invalid.body(f"The payload does not decrypt: {exc!r}", reason="malformed") from exc
        headers = call.headers
        urgency, topic = headers.get("Urgency", "normal"), headers.get("Topic")
        self.received.append(Push(subscription, call.record, claims, int(headers["TTL"]), urgency, topic))
        ident = secrets.token_urlsafe(16)
        return web.Response(status=201, headers={"Location": self.url(f"/m/{ident}"), "TTL": call.headers["TTL"]})
