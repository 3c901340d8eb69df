"""The demo's providers: the real plugins, pointed at local imitations of Twilio, SendGrid, FCM, Lob and Square."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlencode

import attrs
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..testing.imitations import FCMImitation, LobImitation, SendGridImitation, SquareImitation, TwilioImitation
from ..testing.imitations import twilio_signature as _twilio_signature

__all__ = ["DemoProviders", "demo_providers"]

PUBLIC_URL = "https://shop.acme.example/omnisdk"
SQUARE_SIGNATURE_KEY = "demo-square-signature-key"


@attrs.define
class DemoProviders:
    """Running imitations, the client config that points the plugins at them, and webhook signers."""

    twilio: TwilioImitation
    sendgrid: SendGridImitation
    fcm: FCMImitation
    lob: LobImitation
    square: SquareImitation
    config: dict[str, Any]
    _sendgrid_key: ec.EllipticCurvePrivateKey

    def imitations(self) -> list[Any]:
        return [self.twilio, self.sendgrid, self.fcm, self.lob, self.square]

    # Each provider's webhook, signed as that provider signs it.
    def twilio_status(self, message_sid: str, status: str) -> tuple[str, dict[str, str], bytes]:
        url = f"{PUBLIC_URL}/webhooks/twilio"
        params = {"MessageSid": message_sid, "MessageStatus": status, "AccountSid": self.twilio.account_sid}
        signature = _twilio_signature(url, params, self.twilio.auth_token)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
        return url, headers, urlencode(params).encode()

    def sendgrid_events(self, events: Sequence[Mapping[str, Any]], now: float) -> tuple[str, dict[str, str], bytes]:
        body = (json.dumps(list(events)) + "\r\n").encode()
        timestamp = str(int(now))
        signature = self._sendgrid_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        headers = {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }
        return f"{PUBLIC_URL}/webhooks/sendgrid", headers, body

    def square_payment(self, payment: Mapping[str, Any], event_id: str) -> tuple[str, dict[str, str], bytes]:
        url = f"{PUBLIC_URL}/webhooks/square"
        body = json.dumps({"merchant_id": "MDEMO", "type": "payment.updated", "event_id": event_id,
                           "created_at": payment["updated_at"],
                           "data": {"type": "payment", "id": payment["id"], "object": {"payment": payment}}}).encode()
        digest = hmac.new(SQUARE_SIGNATURE_KEY.encode(), url.encode() + body, hashlib.sha256).digest()
        return url, {"Content-Type": "application/json",
                     "x-square-hmacsha256-signature": base64.b64encode(digest).decode()}, body


@contextmanager
def demo_providers() -> Iterator[DemoProviders]:
    with ExitStack() as stack:
        twilio = stack.enter_context(TwilioImitation())
        sendgrid = stack.enter_context(SendGridImitation(rate_limit=10**9))
        fcm = stack.enter_context(FCMImitation())
        lob = stack.enter_context(LobImitation())
        square = stack.enter_context(SquareImitation())
        sendgrid_key = ec.generate_private_key(ec.SECP256R1())
        public_key = base64.b64encode(sendgrid_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
        config: dict[str, Any] = {
            "channels": {
                "sms": {"provider": "twilio", "account_sid": twilio.account_sid, "auth_token": twilio.auth_token,
                        "from": "+15005550006", "base_url": twilio.base_url,
                        "status_callback": f"{PUBLIC_URL}/webhooks/twilio"},
                "email": {"provider": "sendgrid", "api_key": sendgrid.api_key, "from": "Acme <hello@acme.example>",
                          "base_url": sendgrid.base_url, "webhook_public_key": public_key,
                          "webhook_tolerance": 10**10},
                "push": {"provider": "fcm", "credentials": json.dumps(fcm.service_account_info),
                         "base_url": fcm.base_url},
                "direct_mail": {"provider": "lob", "api_key": lob.api_key, "base_url": lob.base_url,
                                "from_address": {"name": "Acme Outfitters", "line1": "185 Berry St",
                                                 "city": "San Francisco", "state": "CA", "postal_code": "94107",
                                                 "country": "US"},
                                "prices": {"postcard_4x6": 0.63}},
                "pos": {"provider": "square", "access_token": square.access_token, "base_url": square.base_url,
                        "signature_key": SQUARE_SIGNATURE_KEY,
                        "locations": {square.location_id: "Acme SoHo"}},
            },
            "policies": {"quiet_hours": {"start": "21:00", "end": "08:00"}, "frequency_cap": {"marketing": "5/7d"}},
            "webhooks": {"public_url": PUBLIC_URL},
            "analytics": {"segment_interval_seconds": 86400},
        }
        yield DemoProviders(twilio, sendgrid, fcm, lob, square, config, sendgrid_key)
