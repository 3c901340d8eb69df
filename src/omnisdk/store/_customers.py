"""Customer profiles: reading, creating and updating customers rows.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._base import Transaction


def profile_fingerprints(
    tx: Transaction, customer_ids: Sequence[str]
) -> tuple[dict[str, tuple[Any, Any]], dict[str, set[tuple[str, str]]], dict[str, list[tuple[str, str, bool]]]]:
    """What a send's decision depends on, per customer, in one query: (timezone, merged_into), the
    identities (kind, value), and the consent entries (channel, purpose, granted) in ledger order."""
    marks = ",".join("?" * len(customer_ids))
    rows = tx.query(
        f"SELECT 0, id, timezone, merged_into, 0, 0 FROM customers WHERE id IN ({marks}) "
        f"UNION ALL SELECT 1, customer_id, kind, value, 0, 0 FROM identities WHERE customer_id IN ({marks}) "
        f"UNION ALL SELECT 2, customer_id, channel, purpose, granted, id FROM consents WHERE customer_id IN ({marks}) "
        "ORDER BY 1, 2, 6",
        (*customer_ids, *customer_ids, *customer_ids),
    )
    found: dict[str, tuple[Any, Any]] = {}
    identities: dict[str, set[tuple[str, str]]] = {}
    consents: dict[str, list[tuple[str, str, bool]]] = {}
    for table, cid, first, second, granted, _ in rows:
        if table == 0:
            found[cid] = (first, second)
        elif table == 1:
            identities.setdefault(cid, set()).add((first, second))
        else:
            consents.setdefault(cid, []).append((first, second, bool(granted)))
    return found, identities, consents
