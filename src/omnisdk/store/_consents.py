"""Consent history: append-only consent entries and the current state per channel and purpose.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations

from ._base import Transaction


def consent_ledger(tx: Transaction, customer_id: str, channel: str, purpose: str) -> list[tuple[bool, str, float]]:
    """A channel's consent entries for one purpose, newest first: (granted, source, recorded_at)."""
    rows = tx.query(
        "SELECT granted, source, recorded_at FROM consents WHERE customer_id = ? AND channel = ? AND purpose = ? "
        "ORDER BY recorded_at DESC, id DESC",
        (customer_id, channel, purpose),
    )
    return [(bool(granted), str(source), float(at)) for granted, source, at in rows]
