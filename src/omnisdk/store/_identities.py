"""Identities: the identifiers that point at a customer, and merges.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations

from ._base import Transaction


def forget_address(tx: Transaction, customer_id: str, value: str) -> int:
    """Drop an address a provider says is dead (hard bounce, invalid number) from the profile; the
    customer's own user id is never dropped. How many identities went."""
    return tx.execute(
        "DELETE FROM identities WHERE customer_id = ? AND value = ? AND kind <> 'user_id'", (customer_id, value)
    )
