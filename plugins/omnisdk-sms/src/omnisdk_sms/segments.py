"""How many SMS segments a text costs: GSM-7 (160, or 153 per part) or UCS-2 (70, or 67 per part).

Carriers bill per segment, so the count is recorded on every delivery. A multi-part message
carries a 6-byte header in each part, which is why the per-part budget drops. An escape
sequence (GSM-7 extension characters such as € or {) and a UTF-16 surrogate pair (most emoji)
are never split across two parts, so a part may hold one unit less than its budget.
"""

from __future__ import annotations

from typing import Final, Literal

import attrs

__all__ = ["GSM7_BASIC", "GSM7_EXTENSION", "SegmentCount", "count_segments", "is_gsm7"]

#: The GSM 03.38 default alphabet. 0x1B is the escape code, but a text holding a literal ESC is still
#: GSM-7 (one septet, shown as a space), as the reference codec encodes it; Vonage sends it as `text`.
GSM7_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The extension table: each costs two septets (escape + character).
GSM7_EXTENSION: Final = frozenset("^{}\\[~]|€\f")

Encoding = Literal["GSM-7", "UCS-2"]
_LIMITS: Final = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


@attrs.frozen
class SegmentCount:
    encoding: Encoding
    #: Septets (GSM-7) or UTF-16 code units (UCS-2) the text needs.
    units: int
    segments: int


_GSM7: Final = GSM7_BASIC | GSM7_EXTENSION


def is_gsm7(text: str) -> bool:
    return _GSM7.issuperset(text)


def _units(text: str, encoding: Encoding) -> list[int]:
    """The cost of each character, in the encoding's units."""
    if encoding == "GSM-7":
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def count_segments(text: str) -> SegmentCount:
    """Encoding, units and segments of `text` as a carrier counts them."""
    encoding: Encoding = "GSM-7" if is_gsm7(text) else "UCS-2"
    if encoding == "GSM-7":  # one septet each, two for the extension table's characters
        total = len(text) + (0 if GSM7_EXTENSION.isdisjoint(text) else sum(c in GSM7_EXTENSION for c in text))
    else:
        total = len(text.encode("utf-16-le")) // 2
    single, per_part = _LIMITS[encoding]
    if total <= single:
        return SegmentCount(encoding, total, 1 if text else 0)
    segments, used = 1, 0
    for cost in _units(text, encoding):
        if used + cost > per_part:
            segments, used = segments + 1, 0
        used += cost
    return SegmentCount(encoding, total, segments)
