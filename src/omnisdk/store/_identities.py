"""Identities: the identifiers that point at a customer, and merges.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from ._base import Transaction

__all__ = [
    "IdentityOwner",
    "counts_by_kind",
    "counts_of_pair",
    "has_kind",
    "identity_owners",
    "insert_identities",
    "insert_user_ids",
    "move_identities",
    "forget_address",
]


@attrs.frozen
class IdentityOwner:
    """Who holds an identifier now."""

    kind: str
    value: str
    customer_id: str


def identity_owners(tx: Transaction, pairs: Sequence[tuple[str, str]]) -> list[IdentityOwner]:
    """The holders of the (kind, value) pairs that are stored (200 pairs per query)."""
    owners: list[IdentityOwner] = []
    for start in range(0, len(pairs), 200):
        chunk = pairs[start:start + 200]
        where = " OR ".join(["(kind = ? AND value = ?)"] * len(chunk))
        params = [p for pair in chunk for p in pair]
        owners.extend(IdentityOwner(kind, value, cid) for kind, value, cid in tx.query(
            f"SELECT kind, value, customer_id FROM identities WHERE {where}", params))
    return owners


def insert_identities(tx: Transaction, rows: Iterable[tuple[str, str, str, float]]) -> int:
    """Store (kind, value, customer id, created_at) rows; a pair already held is left to its holder."""
    return tx.executemany(
        "INSERT INTO identities (kind, value, customer_id, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (kind, value) DO NOTHING",
        list(rows),
    )


def insert_user_ids(tx: Transaction, customer_ids: Sequence[str], now: float, *, skip_existing: bool = True) -> None:
    """Each customer id as its own `user_id` identifier (an app's id is one)."""
    if not skip_existing and len(customer_ids) == 1:
        tx.execute("INSERT INTO identities (kind, value, customer_id, created_at) VALUES ('user_id', ?, ?, ?)",
                   (customer_ids[0], customer_ids[0], now))
        return
    insert_identities(tx, [("user_id", c, c, now) for c in customer_ids])


def has_kind(tx: Transaction, customer_id: str, kind: str) -> bool:
    return bool(tx.scalar("SELECT 1 FROM identities WHERE customer_id = ? AND kind = ?", (customer_id, kind)))


def counts_by_kind(tx: Transaction, customer_id: str) -> dict[str, int]:
    """How many identifiers of each kind the profile holds."""
    rows = tx.query("SELECT kind, COUNT(*) FROM identities WHERE customer_id = ? GROUP BY kind", (customer_id,))
    return {kind: int(n) for kind, n in rows}


def counts_of_pair(tx: Transaction, one: str, other: str) -> dict[str, int]:
    """How many distinct identifiers of each kind two profiles hold together (what a merge would give)."""
    rows = tx.query(
        "SELECT kind, COUNT(DISTINCT value) FROM identities WHERE customer_id IN (?, ?) GROUP BY kind", (one, other)
    )
    return {kind: int(n) for kind, n in rows}


def move_identities(tx: Transaction, winner: str, loser: str) -> None:
    tx.execute("UPDATE identities SET customer_id = ? WHERE customer_id = ?", (winner, loser))


def forget_address(tx: Transaction, customer_id: str, value: str) -> int:
    """Drop an address a provider says is dead (hard bounce, invalid number) from the profile; the
    customer's own user id is never dropped. How many identities went."""
    return tx.execute(
        "DELETE FROM identities WHERE customer_id = ? AND value = ? AND kind <> 'user_id'", (customer_id, value)
    )
