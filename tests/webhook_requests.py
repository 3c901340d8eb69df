"""Every provider's webhook configured on one Omni, and requests signed the way each provider signs them.

Shared by tests/test_webhook_security.py and tests/test_fuzz_webhooks.py. The signers follow
../shared/contracts/webhook_vectors.md; Twilio's is twilio-python's own `RequestValidator`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

BASE = "https://shop.example/omnisdk/webhooks"
TWILIO_TOKEN = "twilio-auth-token"
TWILIO_SHARED = {"webhooks_sharedkey_1": "shared-secret-1"}
VONAGE_SECRET = "vonage-signature-secret"
MAILGUN_KEY = "key-mailgun-signing"
LOB_SECRET = "lob-webhook-secret"
SQUARE_KEY = "square-signature-key"
SHOPIFY_SECRET = "shopify-webhook-secret"
META_SECRET = "meta-app-secret"
META_VERIFY = "meta-verify-token"
SENDGRID_PRIVATE = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(SENDGRID_PRIVATE.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()

PROVIDERS = ("twilio", "vonage", "sendgrid", "mailgun", "whatsapp", "messenger", "lob", "square", "shopify")


def config(square_base_url: str = "http://127.0.0.1:9", **webhooks: Any) -> dict[str, Any]:
    """One Omni config that receives every provider's webhooks (all but Twilio as webhook-only sources)."""
    sources = {
        "vonage": {"channel": "sms", "api_key": "k", "api_secret": "s", "from": "+15017122661",
                   "signature_secret": VONAGE_SECRET, "signature_method": "sha256"},
        "sendgrid": {"channel": "email", "api_key": "SG.k", "from": "shop@shop.example",
                     "webhook_public_key": SENDGRID_PUBLIC},
        "mailgun": {"channel": "email", "api_key": "k", "domain": "mg.shop.example", "from": "shop@mg.shop.example",
                    "webhook_signing_key": MAILGUN_KEY},
        "whatsapp": {"channel": "social", "app_secret": META_SECRET, "verify_token": META_VERIFY,
                     "phone_number_id": "1055", "access_token": "EAAG-wa"},
        "messenger": {"channel": "social", "app_secret": META_SECRET, "verify_token": META_VERIFY,
                      "page_access_token": "EAAG-page"},
        "lob": {"channel": "direct_mail", "api_key": "test_k", "webhook_secret": LOB_SECRET,
                "from_address": {"name": "Shop", "line1": "1 Main St", "city": "Austin", "state": "TX",
                                 "postal_code": "78701"}},
        "square": {"channel": "pos", "access_token": "EAAAl-test", "signature_key": SQUARE_KEY,
                   "notification_url": f"{BASE}/square", "base_url": square_base_url, "lookup_timeout": 2.0},
        "shopify": {"channel": "pos", "webhook_secret": SHOPIFY_SECRET},
    }
    return {
        "channels": {"sms": {"provider": "twilio", "account_sid": "AC" + "a" * 32, "auth_token": TWILIO_TOKEN,
                             "from": "+15017122661", "webhook_shared_keys": TWILIO_SHARED}},
        "webhooks": {"sources": sources, **webhooks},
    }


Request = tuple[str, str, dict[str, str], bytes]


def twilio(params: Mapping[str, str], *, method: str = "POST", url: str = f"{BASE}/twilio",
           signed_url: str | None = None, algorithm: str | None = None) -> Request:
    """A Twilio webhook: POST form params, or GET with the params in the query string."""
    if method == "GET":
        url = f"{url}?{urlencode(params)}" if params else url
        signed_params: Mapping[str, str] = {}
        body = b""
    else:
        signed_params, body = params, urlencode(params).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    token = TWILIO_TOKEN
    if algorithm:
        token = TWILIO_SHARED["webhooks_sharedkey_1"]
        headers["X-Twilio-Webhooks-Signature-Settings"] = f"key=webhooks_sharedkey_1,algorithm={algorithm}"
    if signed_url is None and method == "GET":
        signed_url = url
    headers["X-Twilio-Signature"] = RequestValidator(token).compute_signature(signed_url or url, signed_params,
                                                                              algorithm)
    return method, url, headers, body


def inbound_sms(text: str, sid: str, phone: str = "+14155550100", **kwargs: Any) -> Request:
    return twilio({"MessageSid": sid, "From": phone, "To": "+15017122661", "Body": text}, **kwargs)


def vonage(params: Mapping[str, str], *, now: float, method: str = "POST", nonce: str = "n-1") -> Request:
    signed = {**params, "timestamp": str(int(now)), "nonce": nonce}
    payload = "".join(f"&{k}={v.replace('&', '_').replace('=', '_')}" for k, v in sorted(signed.items()))
    signed["sig"] = hmac.new(VONAGE_SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if method == "GET":
        return "GET", f"{BASE}/vonage?{urlencode(signed)}", {}, b""
    return "POST", f"{BASE}/vonage", {"Content-Type": "application/x-www-form-urlencoded"}, urlencode(signed).encode()


def sendgrid(events: Any, *, now: float, raw: bytes | None = None) -> Request:
    body = raw if raw is not None else json.dumps(events).encode() + b"\r\n"
    timestamp = str(int(now))
    signature = SENDGRID_PRIVATE.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return "POST", f"{BASE}/sendgrid", {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}, body


def mailgun(event_data: Any, *, now: float, token: str = "tok-1", raw: bytes | None = None) -> Request:
    timestamp = str(int(now))
    signature = {"timestamp": timestamp, "token": token,
                 "signature": hmac.new(MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()}
    body = raw if raw is not None else json.dumps({"signature": signature, "event-data": event_data}).encode()
    return "POST", f"{BASE}/mailgun", {"Content-Type": "application/json"}, body


def meta(provider: str, payload: Any = None, *, raw: bytes | None = None) -> Request:
    body = raw if raw is not None else json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(META_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return "POST", f"{BASE}/{provider}", {"Content-Type": "application/json", "X-Hub-Signature-256": signature}, body


def lob(payload: Any = None, *, now: float, raw: bytes | None = None, millis: bool = True) -> Request:
    body = raw if raw is not None else json.dumps(payload).encode()
    timestamp = str(int(now * 1000) if millis else int(now))
    signature = hmac.new(LOB_SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return "POST", f"{BASE}/lob", {"Content-Type": "application/json", "Lob-Signature": signature,
                                   "Lob-Signature-Timestamp": timestamp}, body


def square(payload: Any = None, *, raw: bytes | None = None) -> Request:
    body = raw if raw is not None else json.dumps(payload).encode()
    url = f"{BASE}/square"
    signature = base64.b64encode(hmac.new(SQUARE_KEY.encode(), url.encode() + body, hashlib.sha256).digest()).decode()
    return "POST", url, {"Content-Type": "application/json", "x-square-hmacsha256-signature": signature}, body


def shopify(payload: Any = None, *, topic: str = "orders/paid", raw: bytes | None = None) -> Request:
    body = raw if raw is not None else json.dumps(payload).encode()
    signature = base64.b64encode(hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    return "POST", f"{BASE}/shopify", {"Content-Type": "application/json", "X-Shopify-Hmac-Sha256": signature,
                                       "X-Shopify-Topic": topic}, body
