"""Segment counting at the boundaries: GSM-7 160/153, extension characters count twice, UCS-2 70/67."""

from __future__ import annotations

import gsm0338  # noqa: F401  (registers the reference "gsm03.38" codec)
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omnisdk_sms import count_segments
from omnisdk_sms.phone import is_e164, is_sender_id
from omnisdk_sms.segments import GSM7_BASIC, GSM7_EXTENSION, is_gsm7


@pytest.mark.parametrize(("text", "encoding", "units", "segments"), [
    ("", "GSM-7", 0, 0),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("€" * 80, "GSM-7", 160, 1),            # extension characters cost two septets
    ("€" * 81, "GSM-7", 162, 2),
    ("a" * 159 + "{", "GSM-7", 161, 2),
    ("a" * 152 + "€" + "a" * 10, "GSM-7", 164, 2),  # the escape pair is not split: part 1 holds 152
    ("a" * 152 + "€" + "a" * 153, "GSM-7", 307, 3),
    ("Ç@£$¥èéùìò\nØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¡ÄÖÑÜ§¿äöñüà", "GSM-7", 42, 1),
    ("\x1b", "GSM-7", 1, 1),                # a literal ESC is one septet of the default alphabet
    ("a" * 159 + "\x1b", "GSM-7", 160, 1),
    ("\x1b" * 161, "GSM-7", 161, 2),
    ("a" * 152 + "\x1b€" + "a" * 10, "GSM-7", 165, 2),
    ("ç", "UCS-2", 1, 1),                    # lower-case ç is not in the GSM alphabet (Ç is)
    ("a" * 69 + "ç", "UCS-2", 70, 1),
    ("a" * 70 + "ç", "UCS-2", 71, 2),
    ("a" * 133 + "ç", "UCS-2", 134, 2),
    ("a" * 134 + "ç", "UCS-2", 135, 3),
    ("😀" * 35, "UCS-2", 70, 1),             # an emoji is a surrogate pair: two units
    ("😀" * 36, "UCS-2", 72, 2),
    ("a" * 66 + "😀" + "a" * 10, "UCS-2", 78, 2),  # the pair is not split: part 1 holds 66
    ("a" * 66 + "😀" + "a" * 66, "UCS-2", 134, 3),
    ("a" * 65 + "😀" + "a" * 67, "UCS-2", 134, 2),
])
def test_segments(text: str, encoding: str, units: int, segments: int) -> None:
    count = count_segments(text)
    assert (count.encoding, count.units, count.segments) == (encoding, units, segments)


def reference_septets(char: str) -> int | None:
    """Septets the GSM 03.38 reference codec spends on a character, None when it cannot encode it."""
    try:
        return len(char.encode("gsm03.38"))
    except UnicodeEncodeError:
        return None


def test_our_alphabet_is_the_reference_codecs() -> None:
    costs = {chr(i): reference_septets(chr(i)) for i in range(0x10000) if not 0xD800 <= i <= 0xDFFF}
    assert {c for c, n in costs.items() if n == 1} == GSM7_BASIC
    assert {c for c, n in costs.items() if n == 2} == GSM7_EXTENSION
    assert set(costs.values()) == {None, 1, 2}


GSM_OR_NOT = st.text(st.sampled_from([*sorted(GSM7_BASIC | GSM7_EXTENSION), "ç", "😀", "\u00a0"]), max_size=400)


@settings(max_examples=300, deadline=None)
@given(GSM_OR_NOT)
def test_units_are_what_the_reference_codec_encodes(text: str) -> None:
    count = count_segments(text)
    septets = [reference_septets(c) for c in text]
    assert is_gsm7(text) is (None not in septets)
    if count.encoding == "GSM-7":
        assert count.units == len(text.encode("gsm03.38"))
    else:
        assert count.units == len(text.encode("utf-16-le")) // 2


@pytest.mark.parametrize(("number", "valid"), [
    ("+14155550100", True), ("+447911123456", True), ("+33612345678", True),
    ("14155550100", False), ("+1 415 555 0100", False), ("+0123456789", False), ("+1415", False),
    ("+1234567890123456", False), ("+19999999999", False),
])
def test_e164(number: str, valid: bool) -> None:
    assert is_e164(number) is valid


@pytest.mark.parametrize(("sender", "valid"), [
    ("+14155550100", True), ("AcmeShop", True), ("Acme Shop 1", True), ("12345", True),
    ("AcmeShopIsTooLong", False), ("Acme-Shop", False), ("", False),
])
def test_sender_ids(sender: str, valid: bool) -> None:
    assert is_sender_id(sender) is valid
