"""Consent history: append-only consent entries and the current state per channel and purpose.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._clock import to_datetime
from .._customers import Consent
from ._base import Transaction
from ._quarantine import decode_rows
from ._rows import integer, text, timestamp

__all__ = ["consents_of", "insert_consent", "consent_ledger"]


def insert_consent(
    tx: Transaction, customer_id: str, channel: str, purpose: str, granted: bool, source: str, now: float,
    evidence: str | None = None,
) -> None:
    """Append one entry to the ledger (the latest entry per channel and purpose wins)."""
    tx.execute(
        "INSERT INTO consents (customer_id, channel, purpose, granted, source, recorded_at, evidence) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (customer_id, channel, purpose, int(granted), source, now, evidence),
    )


def consents_of(tx: Transaction, customer_ids: Sequence[str]) -> dict[str, list[Consent]]:
    """The ledgers of many profiles, oldest entry first; an unreadable entry is quarantined and the
    revocation left in its place counts."""
    consents: dict[str, list[Consent]] = {}
    marks = ",".join("?" * len(customer_ids))
    sql = (f"SELECT id, customer_id, channel, purpose, granted, source, recorded_at, evidence "
           f"FROM consents WHERE customer_id IN ({marks}) ORDER BY id")
    rows = tx.query(sql, customer_ids)
    decoded = decode_rows(tx, "consents", rows, _consent)
    if len(decoded) != len(rows):  # read again: the revocations left in their place count
        decoded = decode_rows(tx, "consents", tx.query(sql, customer_ids), _consent)
    for cid, consent in decoded:
        consents.setdefault(cid, []).append(consent)
    return consents


def _consent(row: Sequence[Any]) -> tuple[str, Consent]:
    _, cid, channel, purpose, granted, source, at, evidence = row
    return cid, Consent(channel=text(channel), purpose=text(purpose), granted=bool(integer(granted)),
                        source=text(source), recorded_at=to_datetime(timestamp(at)),
                        evidence=None if evidence is None else text(evidence))


def consent_ledger(tx: Transaction, customer_id: str, channel: str, purpose: str) -> list[tuple[bool, str, float]]:
    """A channel's consent entries for one purpose, newest first: (granted, source, recorded_at)."""
    rows = tx.query(
        "SELECT granted, source, recorded_at FROM consents WHERE customer_id = ? AND channel = ? AND purpose = ? "
        "ORDER BY recorded_at DESC, id DESC",
        (customer_id, channel, purpose),
    )
    return [(bool(granted), str(source), float(at)) for granted, source, at in rows]
