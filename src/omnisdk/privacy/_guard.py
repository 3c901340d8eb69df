"""What the suppression record refuses: a marketing opt-in on a channel whose address was forgotten."""

from __future__ import annotations

from ..policies import Addresses
from ..store import Transaction
from ..store._forget import (
    Suppression,
    customer_identifiers,
    customer_profiles,
    delete_suppressions,
    suppressions_of,
)
from ._forget import postal_digest_value
from ._suppression import digest

__all__ = ["customer_digests", "lift", "suppressed_for"]


def customer_digests(tx: Transaction, key: bytes, customer_id: str, channel: str = "all",
                     addresses: Addresses | None = None) -> list[str]:
    """The suppression hashes of the customer's identifiers that address `channel` ("all", or no
    `addresses` to ask: every one)."""
    kinds = None if channel == "all" or addresses is None else addresses.kinds(channel)
    pairs = [(k, v) for k, v in customer_identifiers(tx, [customer_id]) if kinds is None or k in kinds]
    if channel in ("all", "direct_mail"):
        profiles = customer_profiles(tx, [customer_id])
        postal = postal_digest_value(profiles[0][1] if profiles else None)
        if postal:
            pairs.append(("postal_address", postal))
    return [digest(key, kind, value) for kind, value in pairs]


def suppressed_for(tx: Transaction, key: bytes, customer_id: str, channel: str,
                   addresses: Addresses) -> list[Suppression]:
    return suppressions_of(tx, customer_digests(tx, key, customer_id, channel, addresses))


def lift(tx: Transaction, key: bytes, customer_id: str) -> int:
    """Drop the suppressions of the customer's current identifiers; how many there were."""
    return delete_suppressions(tx, customer_digests(tx, key, customer_id))
