"""Where a message reaches a customer on each channel: the identifier or postal address the provider needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from .._customers import Customer
from .._identifiers import CORE_ADDRESS_KINDS, IdentityKinds
from .._touchpoints import MESSAGE_CHANNELS, check_channel

__all__ = ["CORE_ADDRESSES", "Addresses", "address_for", "format_postal_address"]


class Addresses:
    """Which identity kinds address each channel for one client: the core's, and those its plugins
    declared (`register_identity_kinds`, `addresses="social"`). Built once by the composition root
    from the client's identity kinds; the policies (reachable?), the message builder (`Outgoing.to`)
    and the last-moment re-check (same address?) all ask this one."""

    def __init__(self, kinds: Mapping[str, Sequence[str]] = CORE_ADDRESS_KINDS) -> None:
        self._kinds = {channel: tuple(kinds.get(channel, ())) for channel in MESSAGE_CHANNELS}

    @classmethod
    def of(cls, kinds: IdentityKinds) -> Addresses:
        """The addresses of a client that accepts `kinds` (the core's and its plugins')."""
        return cls(kinds.addresses())

    def kinds(self, channel: str) -> tuple[str, ...]:
        """The identity kinds that address `channel` (none for direct mail: it has a postal address)."""
        check_channel(channel, allowed=MESSAGE_CHANNELS)
        return self._kinds[channel]

    def address_for(self, customer: Customer, channel: str, *, kinds: Sequence[str] | None = None) -> str | None:
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
        accepted = tuple(kinds) if kinds is not None else self._kinds[channel]
        for identity in reversed(customer.identities):
            if identity.kind in accepted:
                return identity.value
        return None


#: The core's kinds alone: a client's own `Addresses` adds its plugins' kinds.
CORE_ADDRESSES: Final = Addresses()


def address_for(customer: Customer, channel: str, *, kinds: Sequence[str] | None = None) -> str | None:
    """`Addresses.address_for` with the core's identity kinds only (a client's own `Addresses`, in
    `PolicyRules.addresses`, also knows the kinds its plugins declared)."""
    return CORE_ADDRESSES.address_for(customer, channel, kinds=kinds)


#: A postal address needs a street line and a city or postal code to be printable.
_POSTAL_REQUIRED: Final = ("line1",)
_POSTAL_ONE_OF: Final = ("postal_code", "city")
_POSTAL_ORDER: Final = ("name", "line1", "line2", "city", "state", "postal_code", "country")


def format_postal_address(address: Mapping[str, Any] | None) -> str | None:
    """A printable one-line postal address, or None when it lacks a street line and a city or postal code."""
    if not address:
        return None
    if any(not address.get(k) for k in _POSTAL_REQUIRED) or not any(address.get(k) for k in _POSTAL_ONE_OF):
        return None
    return ", ".join(str(address[k]) for k in _POSTAL_ORDER if address.get(k))
