"""E.164 checks for recipients and senders: a bad number is refused before any request is made."""

from __future__ import annotations

import re
from typing import Final

import phonenumbers

__all__ = ["is_e164", "is_sender_id"]

_E164: Final = re.compile(r"^\+[1-9]\d{6,14}$")
_SHORT_CODE: Final = re.compile(r"^\d{3,8}$")
_ALPHANUMERIC: Final = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")


def is_e164(number: str) -> bool:
    """`+` and up to 15 digits, and a number that exists in its country's numbering plan."""
    if not _E164.match(number):
        return False
    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(number, None)))
    except phonenumbers.NumberParseException:
        return False


def is_sender_id(sender: str) -> bool:
    """What may stand in `from`: an E.164 number, a short code, or an alphanumeric sender id."""
    return is_e164(sender) or bool(_SHORT_CODE.match(sender) or _ALPHANUMERIC.match(sender))
