"""Web Push message encryption (RFC 8291) in the aes128gcm content coding (RFC 8188), one record.

Push services relay the body without reading it: only the browser that made the subscription
(holding `ua_private` and the `auth` secret) can decrypt it.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._jose import public_point

__all__ = ["HEADER_BYTES", "MAX_PLAINTEXT_BYTES", "RECORD_SIZE", "encrypt"]

RECORD_SIZE = 4096
#: salt (16) + record size (4) + key id length (1) + key id: the sender's public point (65).
HEADER_BYTES = 16 + 4 + 1 + 65
_TAG_BYTES = 16
#: Push services accept 4096 bytes of body; what is left for the message after the header,
#: the GCM tag and the one-byte last-record delimiter (RFC 8291 §4).
MAX_PLAINTEXT_BYTES = RECORD_SIZE - HEADER_BYTES - _TAG_BYTES - 1


def _hmac_sha256(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 with one expand block, which is all RFC 8291 needs (length ≤ 32)."""
    prk = _hmac_sha256(salt, ikm)
    return _hmac_sha256(prk, info + b"\x01")[:length]


def encrypt(
    plaintext: bytes,
    ua_public: bytes,
    auth_secret: bytes,
    *,
    salt: bytes | None = None,
    as_private: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """The request body for one push message. `salt` and `as_private` are fresh unless given (tests)."""
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise ValueError(f"payload of {len(plaintext)} bytes exceeds Web Push's {MAX_PLAINTEXT_BYTES}")
    ua_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    as_private = as_private or ec.generate_private_key(ec.SECP256R1())
    as_public = public_point(as_private)
    salt = salt if salt is not None else os.urandom(16)
    ecdh_secret = as_private.exchange(ec.ECDH(), ua_key)
    ikm = _hkdf(auth_secret, ecdh_secret, b"WebPush: info\x00" + ua_public + as_public, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    ciphertext = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    header = salt + RECORD_SIZE.to_bytes(4, "big") + bytes([len(as_public)]) + as_public
    return header + ciphertext
