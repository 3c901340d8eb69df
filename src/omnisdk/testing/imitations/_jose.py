"""Just enough JOSE to check the JWTs clients sign: Google's RS256 assertions and VAPID's ES256."""

from __future__ import annotations

import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ._util import b64url_decode

__all__ = ["BadToken", "verify_jwt"]


class BadToken(ValueError):
    """A JWT that does not parse or whose signature does not verify."""


def verify_jwt(token: str, key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a compact JWS signed with RS256 (RSA key) or ES256 (P-256 key)."""
    try:
        head, body, signature = token.split(".")
        header, claims = json.loads(b64url_decode(head)), json.loads(b64url_decode(body))
        raw = b64url_decode(signature)
    except ValueError as exc:
        raise BadToken(f"not a compact JWS: {exc}") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise BadToken("the JWT header and claims must be JSON objects")
    signed = f"{head}.{body}".encode()
    try:
        if isinstance(key, rsa.RSAPublicKey) and header.get("alg") == "RS256":
            key.verify(raw, signed, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey) and header.get("alg") == "ES256" and len(raw) == 64:
            der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
            key.verify(der, signed, ec.ECDSA(hashes.SHA256()))
        else:
            raise BadToken(f"unexpected JWT algorithm {header.get('alg')!r} for this key")
    except InvalidSignature as exc:
        raise BadToken("the JWT signature does not verify") from exc
    return header, claims
