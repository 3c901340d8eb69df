"""Keyed hashes of identifiers, and the scrubbing of a customer's values out of free text.

A suppression record must recognise an address again without holding it: an HMAC-SHA256 under a
key the store's owner holds (`[privacy] suppression_key`, else one generated once per store), so
the hash alone cannot be reversed by hashing a list of guessed addresses.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

__all__ = ["Scrubber", "digest"]

#: What replaces a customer's value inside free text.
FORGOTTEN = "[forgotten]"


def digest(key: bytes, kind: str, value: str) -> str:
    """The keyed hash of one normalised identifier (`kind` in it: a phone number is not a user id)."""
    return hmac.new(key, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()


class Scrubber:
    """Replaces every value of a customer (ids, identifiers, names, address lines) inside text,
    case-insensitively; values shorter than three characters are left (they would blank words)."""

    def __init__(self, values: Iterable[str]) -> None:
        needles = sorted({v for v in values if isinstance(v, str) and len(v.strip()) >= 3}, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, needles)), re.IGNORECASE) if needles else None

    def __call__(self, text: str) -> str:
        return self.pattern.sub(FORGOTTEN, text) if self.pattern is not None and text else text

    def mentions(self, text: str) -> bool:
        return self.pattern is not None and bool(text) and self.pattern.search(text) is not None
