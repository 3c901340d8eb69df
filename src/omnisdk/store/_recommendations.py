"""What recommendations learn from: customers' purchases and product views, read from the touchpoints.

Every SQL statement the recommenders run lives here (see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from ._base import Transaction, loads
from ._rows import integer, text

__all__ = ["Interaction", "interactions", "recent_interactions"]

_CHUNK = 500


@attrs.frozen
class Interaction:
    """One purchase or view: who, which event on which channel, and its properties (decoded JSON)."""

    seq: int
    customer_id: str
    name: str
    channel: str
    properties: Any


def _decode(row: Sequence[Any]) -> Interaction | None:
    seq, cid, name, channel, properties = row
    try:
        return Interaction(integer(seq), text(cid), text(name), text(channel), loads(properties))
    except (TypeError, ValueError):  # an unreadable row teaches nothing; the readers that own it quarantine it
        return None


def interactions(tx: Transaction, names: Sequence[str], *, after_seq: int, page: int) -> list[Interaction]:
    """Up to `page` touchpoints named `names` after `after_seq`, in ingestion order (a model's build)."""
    rows = tx.query(
        f"SELECT seq, customer_id, name, channel, properties FROM touchpoints WHERE seq > ? "
        f"AND name IN ({','.join('?' * len(names))}) ORDER BY seq LIMIT ?",
        (after_seq, *names, page),
    )
    return [i for row in rows if (i := _decode(row)) is not None]


def recent_interactions(
    tx: Transaction, customer_ids: Sequence[str], names: Sequence[str], *, per_customer: int
) -> list[Interaction]:
    """The latest `per_customer` touchpoints named `names` of each customer, oldest first."""
    found: list[Interaction] = []
    marks = ",".join("?" * len(names))
    for start in range(0, len(customer_ids), _CHUNK):
        chunk = customer_ids[start:start + _CHUNK]
        rows = tx.query(
            "SELECT seq, customer_id, name, channel, properties FROM ("
            "SELECT seq, customer_id, name, channel, properties, occurred_at, ROW_NUMBER() OVER ("
            "PARTITION BY customer_id ORDER BY occurred_at DESC, seq DESC) AS latest FROM touchpoints "
            f"WHERE customer_id IN ({','.join('?' * len(chunk))}) AND name IN ({marks})) AS recent "
            "WHERE latest <= ? ORDER BY customer_id, occurred_at, seq",
            (*chunk, *names, per_customer),
        )
        found.extend(i for row in rows if (i := _decode(row)) is not None)
    return found
