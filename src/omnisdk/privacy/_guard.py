"""What the suppression record refuses: a marketing opt-in on a channel whose address was forgotten."""

from __future__ import annotations

from ..policies import Addresses
from ..store import Transaction, loads
from ..store._forget import Suppression, delete_suppressions, suppressions_of
from ._forget import postal_digest_value
from ._suppression import digest

__all__ = ["customer_digests", "lift", "suppressed_for"]


def customer_digests(tx: Transaction, key: bytes, customer_id: str, channel: str = "all",
                     addresses: Addresses | None = None) -> list[str]:
    """The suppression hashes of the customer's identifiers that address `channel` ("all", or no
    `addresses` to ask: every one)."""
    kinds = None if channel == "all" or addresses is None else addresses.kinds(channel)
    pairs = [(str(k), str(v)) for k, v in tx.query("SELECT kind, value FROM identities WHERE customer_id = ?",
                                                   (customer_id,)) if kinds is None or k in kinds]
    if channel in ("all", "direct_mail"):
        postal = postal_digest_value(loads(tx.scalar("SELECT address FROM customers WHERE id = ?", (customer_id,))))
        if postal:
            pairs.append(("postal_address", postal))
    return [digest(key, kind, value) for kind, value in pairs]


def suppressed_for(tx: Transaction, key: bytes, customer_id: str, channel: str,
                   addresses: Addresses) -> list[Suppression]:
    return suppressions_of(tx, customer_digests(tx, key, customer_id, channel, addresses))


def lift(tx: Transaction, key: bytes, customer_id: str) -> int:
    """Drop the suppressions of the customer's current identifiers; how many there were."""
    return delete_suppressions(tx, customer_digests(tx, key, customer_id))
