"""Web Push cryptography against the RFCs' own examples and independent implementations (http_ece, py_vapid)."""

from __future__ import annotations

import json
import os

import http_ece
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from omnisdk_push._ece import MAX_PLAINTEXT_BYTES, encrypt
from omnisdk_push._jose import b64url, b64url_decode, load_ec_private_key, public_point
from omnisdk_push.webpush import VapidSigner
from py_vapid import Vapid02

from omnisdk import ConfigError

# RFC 8291 Appendix A (webhook_vectors.md §8)
PLAINTEXT = b"When I grow up, I want to be a watermelon"
AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
UA_PUBLIC = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
SALT = "DGv6ra1nlYgDCS1FRnbzlw"
BODY = ("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3"
        "jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN")
# RFC 8292 §2.4 (webhook_vectors.md §9)
RFC8292_HEADER = (
    "vapid t=eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJhdWQiOiJodHRwczovL3B1c2guZXhhbXBsZS5uZXQiLCJleHAiOjE0NTM1MjM3Njgs"
    "InN1YiI6Im1haWx0bzpwdXNoQGV4YW1wbGUuY29tIn0.i3CYb7t4xfxCDquptFOepC9GAu_HLGkMlMuCGSK2rpiUfnK9ojFwDXb1JrErtmysazNjjv"
    "W2L9OkSSHzvoD1oA,k=BA1Hxzyi1RUM1b5wjxsn7nGxAszw2u61m164i3MrAIxHF6YK5h4SDYic-dRuU_RCPCfA5aq9ojSwk5Y2EmClBPs"
)


def test_rfc8291_appendix_a_byte_for_byte() -> None:
    body = encrypt(PLAINTEXT, b64url_decode(UA_PUBLIC), b64url_decode(AUTH), salt=b64url_decode(SALT),
                   as_private=load_ec_private_key(AS_PRIVATE, "as"))
    assert b64url(body) == BODY


def _browser() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    return ec.generate_private_key(ec.SECP256R1()), os.urandom(16)


def test_http_ece_decrypts_what_we_encrypt() -> None:
    ua_private, auth = _browser()
    plaintext = json.dumps({"title": "hi", "body": "caf\u00e9"}).encode()
    body = encrypt(plaintext, public_point(ua_private), auth)
    assert http_ece.decrypt(body, private_key=ua_private, auth_secret=auth, version="aes128gcm") == plaintext


def test_each_message_gets_a_fresh_salt_and_sender_key() -> None:
    ua_private, auth = _browser()
    first, second = (encrypt(b"same", public_point(ua_private), auth) for _ in range(2))
    assert first[:16] != second[:16] and first[21:86] != second[21:86]


def test_largest_payload_fits_one_4096_byte_record_and_one_more_byte_is_refused() -> None:
    ua_private, auth = _browser()
    body = encrypt(b"x" * MAX_PLAINTEXT_BYTES, public_point(ua_private), auth)
    assert len(body) == 4096
    assert http_ece.decrypt(body, private_key=ua_private, auth_secret=auth, version="aes128gcm") == b"x" * 3993
    with pytest.raises(ValueError, match="exceeds"):
        encrypt(b"x" * (MAX_PLAINTEXT_BYTES + 1), public_point(ua_private), auth)


def test_rfc8292_example_verifies_with_the_independent_verifier() -> None:
    # The vector itself, so the verifier below is known to accept what RFC 8292 accepts.
    assert Vapid02.verify(RFC8292_HEADER)


def test_our_vapid_header_verifies_and_carries_the_claims() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    raw = b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    signer = VapidSigner(raw, "mailto:ops@shop.example")
    header = signer.authorization("https://updates.push.example.net/wpush/v2/abc?x=1", now=1_700_000_000)
    assert Vapid02.verify(header)
    token = header.split("t=", 1)[1].split(",", 1)[0]
    claims = json.loads(b64url_decode(token.split(".")[1]))
    assert claims == {"aud": "https://updates.push.example.net", "exp": 1_700_000_000 + 12 * 3600,
                      "sub": "mailto:ops@shop.example"}
    assert header.endswith(f",k={b64url(public_point(key))}")


def test_tampered_vapid_header_is_rejected_by_the_verifier() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = VapidSigner(b64url(key.private_numbers().private_value.to_bytes(32, "big")), "mailto:ops@shop.example")
    header = signer.authorization("https://push.example.net/x", now=1_700_000_000)
    token = header.split("t=", 1)[1].split(",", 1)[0]
    head, _, signature = token.split(".")
    forged_claims = b64url(json.dumps({"aud": "https://push.example.net", "exp": 1_800_000_000,
                                       "sub": "mailto:ops@shop.example"}).encode())
    assert not Vapid02.verify(header.replace(token, f"{head}.{forged_claims}.{signature}"))


def test_vapid_token_is_reused_per_origin_until_half_its_life() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = VapidSigner(b64url(key.private_numbers().private_value.to_bytes(32, "big")), "mailto:a@b.example")
    first = signer.authorization("https://push.example.net/a", now=0)
    assert signer.authorization("https://push.example.net/b", now=3600) == first
    assert signer.authorization("https://other.example/a", now=3600) != first
    assert signer.authorization("https://push.example.net/a", now=6 * 3600) != first


@pytest.mark.parametrize("bad", ["", "AAAA", "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"])
def test_bad_vapid_keys_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        VapidSigner(bad, "mailto:a@b.example")
    assert info.value.field == "vapid_private_key"
