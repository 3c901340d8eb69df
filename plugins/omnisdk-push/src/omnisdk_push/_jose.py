"""Compact JWTs signed with ES256 (APNs, VAPID) or RS256 (Google service accounts), and key loading.

The three push services each want a short signed token; one small signer serves them all.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from omnisdk import ConfigError

__all__ = ["b64url", "b64url_decode", "load_ec_private_key", "load_rsa_private_key", "public_point", "sign_jwt"]


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JOSE and Web Push write it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raises ValueError when it is not base64url."""
    cleaned = text.strip()
    return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def sign_jwt(
    header: Mapping[str, Any], claims: Mapping[str, Any], key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
) -> str:
    """`header.claims.signature`; ES256 signatures are in JOSE form (raw r‖s), not DER."""
    signing_input = f"{b64url(_json(header))}.{b64url(_json(claims))}".encode("ascii")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode('ascii')}.{b64url(signature)}"


def _load_pem(text: str, field: str) -> Any:
    try:
        return serialization.load_pem_private_key(text.strip().encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"not a PEM private key ({type(exc).__name__})", field=field) from None


def load_ec_private_key(text: str, field: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 key from PEM (an APNs .p8 file) or a base64url raw 32-byte scalar (VAPID's usual form)."""
    if "-----BEGIN" in text:
        key = _load_pem(text, field)
    else:
        try:
            raw = b64url_decode(text)
        except ValueError:
            raise ConfigError("not PEM and not base64url", field=field) from None
        if len(raw) != 32:
            raise ConfigError(f"a raw P-256 private key is 32 bytes, got {len(raw)}", field=field)
        key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError("expected a P-256 (prime256v1) private key", field=field)
    return key


def load_rsa_private_key(text: str, field: str) -> rsa.RSAPrivateKey:
    key = _load_pem(text, field)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError("expected an RSA private key", field=field)
    return key


def public_point(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """The uncompressed public point (65 bytes, 0x04‖X‖Y) that Web Push exchanges."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
