"""The Twilio form body is byte for byte what `urllib.parse.urlencode` would send."""

from __future__ import annotations

import random
from urllib.parse import urlencode

from omnisdk_sms.twilio import _encode_form

ALPHABET = "abcXYZ019 _.-~+&=%/?#€😀é\n\t\"'<>!*()\u200b"


def test_the_form_is_encoded_exactly_as_urlencode_does() -> None:
    rng = random.Random(2026)
    samples = [[("To", "+14155550100"), ("Body", "Hi Ada, it's ready 😀"), ("From", "+14155559999")],
               [("To", ""), ("Body", " ")]]
    names = ("To", "Body", "MediaUrl")
    samples += [[(name, "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 80)))) for name in names]
                for _ in range(3000)]
    for pairs in samples:
        assert _encode_form(pairs) == urlencode(pairs).encode(), pairs
