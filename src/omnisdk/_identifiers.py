"""Normalising identifiers so the same person matches across channels (E.164 phones, lower-case emails)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Final

import attrs
import phonenumbers
from email_validator import EmailNotValidError, validate_email

from ._customers import DEVICE_KINDS, PERSON_KINDS
from ._errors import InvalidIdentifierError, ValidationError
from ._touchpoints import MESSAGE_CHANNELS

__all__ = [
    "BLOCKED_VALUES",
    "CORE_ADDRESS_KINDS",
    "IdentityKind",
    "IdentityKinds",
    "normalize_email",
    "normalize_identifier",
    "normalize_phone",
]

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


#: The core's kinds that address each channel: what a provider of the channel is handed as `Outgoing.to`.
#: A plugin adds its vendor's kinds (`register(kind, addresses="social")`); direct mail is addressed by
#: the postal address, never by an identity.
CORE_ADDRESS_KINDS: Final[Mapping[str, tuple[str, ...]]] = {
    "email": ("email",),
    "sms": ("phone",),
    "push": ("fcm_token", "apns_token", "webpush_endpoint", "push_token"),
    "social": (),
    "pos": ("pos_customer_id", "loyalty_id"),
}
#: Channels an identity kind may address.
_ADDRESSABLE: Final = tuple(c for c in MESSAGE_CHANNELS if c != "direct_mail")


#: What a plugin's normaliser gets (the value stripped, junk already dropped) and gives back.
Normalizer = Callable[[str], str]
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@attrs.frozen
class IdentityKind:
    """An identifier kind a plugin declares: `normalize` gives the canonical value (raising
    `ValueError` for one that is not valid), `unique` allows one per profile (a second one is
    a different person, so profiles that would share it are not merged), `device` ranks it with
    the device tokens rather than the person identifiers when profiles merge, and `addresses` names
    the channel whose address it is, if any (a messaging app's user id addresses `social`)."""

    name: str
    normalize: Normalizer | None = None
    unique: bool = False
    device: bool = False
    plugin: str = ""
    addresses: str | None = None


class IdentityKinds:
    """The identifier kinds one client accepts: the core's and those its plugins declared."""

    def __init__(self, declared: Iterable[IdentityKind] = ()) -> None:
        self._declared: dict[str, IdentityKind] = {}
        for kind in declared:
            self.add(kind)

    def add(self, kind: IdentityKind) -> None:
        if not isinstance(kind.name, str) or not _KIND.match(kind.name):
            raise ValueError(f"identifier kind {kind.name!r}: use 1-64 lower-case letters, digits and '_'")
        if kind.name in PERSON_KINDS or kind.name in DEVICE_KINDS or kind.name == "anonymous_id":
            raise ValueError(f"identifier kind {kind.name!r} is one of the core's")
        if kind.normalize is not None and not callable(kind.normalize):
            raise ValueError(f"identifier kind {kind.name!r}: normalize must be callable")
        if kind.addresses is not None and kind.addresses not in _ADDRESSABLE:
            raise ValueError(f"identifier kind {kind.name!r}: addresses must be one of the channels "
                             f"{', '.join(_ADDRESSABLE)}, not {kind.addresses!r}")
        known = self._declared.get(kind.name)
        if known is not None and known != kind:
            raise ValueError(f"identifier kind {kind.name!r} is already declared by {known.plugin or 'another plugin'}")
        self._declared[kind.name] = kind

    @property
    def names(self) -> tuple[str, ...]:
        """Every kind in priority order: person kinds, then devices, anonymous ids last."""
        declared = list(self._declared.values())
        return (*PERSON_KINDS, *(k.name for k in declared if not k.device), *DEVICE_KINDS,
                *(k.name for k in declared if k.device), "anonymous_id")

    def addresses(self) -> dict[str, tuple[str, ...]]:
        """Channel → the identity kinds that address it: the core's, then the declared ones."""
        table = {channel: list(kinds) for channel, kinds in CORE_ADDRESS_KINDS.items()}
        for kind in self._declared.values():
            if kind.addresses is not None:
                table[kind.addresses].append(kind.name)
        return {channel: tuple(kinds) for channel, kinds in table.items()}

    def unique(self) -> tuple[str, ...]:
        """Declared kinds allowed once per profile."""
        return tuple(k.name for k in self._declared.values() if k.unique)

    def __contains__(self, kind: object) -> bool:
        return kind in self._declared or kind in PERSON_KINDS or kind in DEVICE_KINDS or kind == "anonymous_id"

    def normalize(self, kind: str, value: object, *, region: str | None = None) -> str | None:
        """The canonical form of an identifier, or None when the value is a known junk value."""
        if kind not in self:
            raise ValidationError(
                f"unknown identifier kind {kind!r}; expected one of {', '.join(self.names)}", field=kind, value=value
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
        declared = self._declared.get(kind)
        if declared is not None and declared.normalize is not None:
            try:
                text = declared.normalize(text)
            except ValueError as exc:
                raise InvalidIdentifierError(str(exc) or "not a valid value", field=kind, value=text[:32]) from None
            if not isinstance(text, str) or not text or len(text) > 512:
                raise InvalidIdentifierError("the plugin's normaliser gave no usable value", field=kind)
        return text


#: The core's kinds alone (no plugin declared any).
CORE_KINDS: Final = IdentityKinds()


def normalize_identifier(kind: str, value: object, *, region: str | None = None) -> str | None:
    """The canonical form of an identifier of a core kind, or None for a known junk value."""
    return CORE_KINDS.normalize(kind, value, region=region)
