"""Small helpers shared by the imitations: ids in the providers' formats, SMS segments, base64url."""

from __future__ import annotations

import base64
import secrets
import string
from datetime import UTC, datetime

__all__ = ["b64url", "b64url_decode", "hex_id", "now", "random_id", "sms_segments"]

_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = set("^{}\\[~]|€\f")
_ALPHANUMERIC = string.ascii_letters + string.digits


def now() -> datetime:
    return datetime.now(UTC)


def hex_id(prefix: str, nbytes: int = 16) -> str:
    """Twilio's "SM" + 32 hex, Lob's "psc_" + 16 hex."""
    return prefix + secrets.token_hex(nbytes)


def random_id(length: int, alphabet: str = _ALPHANUMERIC) -> str:
    """An opaque id like Square's or SendGrid's (one urandom call: this is on the hot path)."""
    return "".join(alphabet[byte % len(alphabet)] for byte in secrets.token_bytes(length))


def sms_segments(text: str) -> int:
    """How many SMS parts a text takes: 160/153 GSM-7 septets, or 70/67 UCS-2 characters."""
    if all(c in _GSM7 or c in _GSM7_EXTENSION for c in text):
        units, single, multi = len(text) + sum(c in _GSM7_EXTENSION for c in text), 160, 153
    else:
        units, single, multi = len(text.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else -(-units // multi)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
