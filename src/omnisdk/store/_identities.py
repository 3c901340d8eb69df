"""Identities: the identifiers that point at a customer, and merges.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations

from ._base import Transaction


# -- read by the journey runtime (h15-journeys): the merges feed it reconciles runs after
def merges_after(tx: Transaction, position: int, limit: int) -> list[tuple[int, str]]:
    """(merge id, winner customer id) of the merges after `position`, oldest first."""
    return [(int(r[0]), str(r[1])) for r in tx.query(
        "SELECT id, winner_id FROM merges WHERE id > ? ORDER BY id LIMIT ?", (position, limit)
    )]
