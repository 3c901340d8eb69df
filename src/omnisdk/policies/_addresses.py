"""Where a message reaches a customer on each channel: the identifier or postal address the provider needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from .._customers import Customer
from .._touchpoints import MESSAGE_CHANNELS, check_channel

__all__ = ["ADDRESS_KINDS", "address_for", "format_postal_address"]

#: Identity kinds that address each channel, in the order they are preferred.
ADDRESS_KINDS: Final[Mapping[str, tuple[str, ...]]] = {
    "email": ("email",),
    "sms": ("phone",),
    "push": ("fcm_token", "apns_token", "webpush_endpoint", "push_token"),
    "social": ("messenger_psid", "whatsapp_id"),
    "pos": ("pos_customer_id", "square_customer_id", "loyalty_id"),
}

#: A postal address needs a street line and a city or postal code to be printable.
_POSTAL_REQUIRED: Final = ("line1",)
_POSTAL_ONE_OF: Final = ("postal_code", "city")
_POSTAL_ORDER: Final = ("name", "line1", "line2", "city", "state", "postal_code", "country")


def address_for(customer: Customer, channel: str, *, kinds: Sequence[str] | None = None) -> str | None:
    """The customer's address on `channel`, or None when they cannot be reached there.

    Push, social and POS accept several identity kinds; `kinds` narrows them to what one
    provider understands (e.g. `("fcm_token",)` for FCM). Of several identities of the
    accepted kinds, the most recently added wins (the device used last). Direct mail
    returns the postal address on one line; the provider gets the structured one from
    `customer.address`.
    """
    check_channel(channel, allowed=MESSAGE_CHANNELS)
    if channel == "direct_mail":
        return format_postal_address(customer.address)
    accepted = tuple(kinds) if kinds is not None else ADDRESS_KINDS[channel]
    for identity in reversed(customer.identities):
        if identity.kind in accepted:
            return identity.value
    return None


def format_postal_address(address: Mapping[str, Any] | None) -> str | None:
    """A printable one-line postal address, or None when it lacks a street line and a city or postal code."""
    if not address:
        return None
    if any(not address.get(k) for k in _POSTAL_REQUIRED) or not any(address.get(k) for k in _POSTAL_ONE_OF):
        return None
    return ", ".join(str(address[k]) for k in _POSTAL_ORDER if address.get(k))
