"""Normalising identifiers so the same person matches across channels (E.164 phones, lower-case emails)."""

from __future__ import annotations

from typing import Final

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from ._customers import IDENTITY_KINDS
from ._errors import InvalidIdentifierError, ValidationError

__all__ = ["BLOCKED_VALUES", "normalize_email", "normalize_identifier", "normalize_phone"]

#: Junk that forms and POS terminals send for "unknown"; never used to match or merge profiles.
BLOCKED_VALUES: Final = frozenset(
    {"", "null", "none", "nil", "undefined", "nan", "0", "-1", "n/a", "na", "unknown", "test", "anonymous",
     "[object object]", "00000000-0000-0000-0000-000000000000", "noemail@example.com", "test@test.com"}
)


def normalize_email(value: str, *, field: str = "email") -> str:
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidIdentifierError(f"not a valid email address: {exc}", field=field, value=value) from None
    return f"{result.local_part}@{result.domain}".lower()


_PHONE_PROBLEMS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: (
        "not a phone number with a known country code; write it as +<country code><number>, "
        "or set identity.default_region for national numbers"
    ),
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "not a phone number: too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "not a phone number: too short",
    phonenumbers.NumberParseException.TOO_LONG: "not a phone number: too long",
}


def normalize_phone(value: str, *, region: str | None = None, field: str = "phone") -> str:
    """E.164. `region` (e.g. "US") resolves national numbers written without a country code."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentifierError(_PHONE_PROBLEMS.get(exc.error_type, "not a phone number"), field=field,
                                     value=value) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentifierError("not a valid phone number for its country", field=field, value=value)
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def normalize_identifier(kind: str, value: object, *, region: str | None = None) -> str | None:
    """The canonical form of an identifier, or None when the value is a known junk value."""
    if kind not in IDENTITY_KINDS:
        raise ValidationError(
            f"unknown identifier kind {kind!r}; expected one of {', '.join(IDENTITY_KINDS)}", field=kind, value=value
        )
    if value is None:
        return None
    if not isinstance(value, str | int):
        raise InvalidIdentifierError(f"expected a string, got {type(value).__name__}", field=kind, value=value)
    text = str(value).strip()
    if text.lower() in BLOCKED_VALUES:
        return None
    if kind == "email":
        return normalize_email(text, field=kind)
    if kind == "phone":
        return normalize_phone(text, region=region, field=kind)
    if len(text) > 512:
        raise InvalidIdentifierError("longer than 512 characters", field=kind, value=text[:32] + "…")
    return text
