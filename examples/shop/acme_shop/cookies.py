"""Signed cookies: who is browsing (a visitor id) and who is signed in (a customer id).

Signing matters for omnisdk too: signing in stitches the visitor's anonymous history into the
customer's profile, so a forged visitor cookie would pull someone else's browsing into yours.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["CookieSigner"]


class CookieSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, value: str) -> str:
        digest = hmac.new(self._secret, value.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def sign(self, value: str) -> str:
        return f"{value}.{self._mac(value)}"

    def unsign(self, token: str | None) -> str | None:
        """The value, or None when the cookie is missing or was tampered with."""
        if not token or "." not in token:
            return None
        value, mac = token.rsplit(".", 1)
        return value if hmac.compare_digest(mac, self._mac(value)) else None
