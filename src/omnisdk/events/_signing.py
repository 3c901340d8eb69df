"""The signature of an event webhook, and the function a receiver checks it with.

`Omnisdk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>`, as
Stripe signs its webhooks: the timestamp is signed with the body, so a captured request replayed
later than `tolerance` seconds is refused; several `v1=` entries may appear while a secret is rotated.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from typing import Final

__all__ = ["SIGNATURE_HEADER", "EVENT_ID_HEADER", "sign", "verify_signature"]

SIGNATURE_HEADER: Final = "Omnisdk-Signature"
EVENT_ID_HEADER: Final = "Omnisdk-Event-Id"


def _digest(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8", "surrogatepass"), timestamp.encode("ascii") + b"." + body,
                    hashlib.sha256).hexdigest()


def sign(body: bytes, secret: str, timestamp: float) -> str:
    """The `Omnisdk-Signature` header value for `body` sent at `timestamp`."""
    t = str(int(timestamp))
    return f"t={t},v1={_digest(secret, t, body)}"


def verify_signature(
    body: bytes, header: str | None, secret: str, *, tolerance: float = 300.0, now: float | None = None
) -> bool:
    """Whether `header` (the `Omnisdk-Signature` a request carried) signs `body` under `secret`,
    at a time within `tolerance` seconds of `now` (the system clock by default). Never raises on
    malformed input: anything unexpected is simply not a valid signature."""
    if not header or not isinstance(header, str) or not isinstance(body, bytes | bytearray):
        return False
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and timestamp is None:
            timestamp = value
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    current = time.time() if now is None else now
    if not math.isfinite(current) or abs(current - int(timestamp)) > tolerance:
        return False
    expected = _digest(secret, timestamp, bytes(body)).encode("ascii")
    return any(hmac.compare_digest(expected, c.encode("utf-8", "surrogatepass")) for c in candidates)
