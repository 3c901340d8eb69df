"""The preference ledger (`preferences`) and double opt-in requests (`opt_in_requests`).

Every SQL statement about these tables lives here (see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from .._clock import to_datetime
from .._topics import Preference
from ._base import Transaction
from ._quarantine import decode_rows
from ._rows import integer, optional_text, text, timestamp

__all__ = [
    "OptInRequest",
    "confirm_opt_in",
    "expire_opt_ins",
    "insert_opt_in",
    "insert_preferences",
    "opt_in",
    "pending_opt_in",
    "preferences_of",
]


def insert_preferences(
    tx: Transaction, customer_id: str, entries: Sequence[tuple[str, str, bool]], source: str, now: float,
    evidence: str | None = None,
) -> None:
    """Append (topic, channel, subscribed) entries to the customer's ledger."""
    tx.executemany(
        "INSERT INTO preferences (customer_id, topic, channel, subscribed, source, evidence, recorded_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(customer_id, topic, channel, int(on), source, evidence, now) for topic, channel, on in entries],
    )


def preferences_of(tx: Transaction, customer_ids: Sequence[str]) -> dict[str, list[Preference]]:
    """The ledgers of many profiles, oldest entry first (an unreadable entry is quarantined)."""
    if not customer_ids:
        return {}
    marks = ",".join("?" * len(customer_ids))
    rows = tx.query(f"SELECT id, customer_id, topic, channel, subscribed, source, evidence, recorded_at "
                    f"FROM preferences WHERE customer_id IN ({marks}) ORDER BY id", customer_ids)
    found: dict[str, list[Preference]] = {}
    for cid, entry in decode_rows(tx, "preferences", rows, _preference):
        found.setdefault(cid, []).append(entry)
    return found


def _preference(row: Sequence[Any]) -> tuple[str, Preference]:
    _, cid, topic, channel, subscribed, source, evidence, at = row
    return text(cid), Preference(topic=text(topic), channel=text(channel), subscribed=bool(integer(subscribed)),
                                 source=text(source), evidence=optional_text(evidence),
                                 recorded_at=to_datetime(timestamp(at)))


@attrs.frozen(kw_only=True)
class OptInRequest:
    id: str
    customer_id: str
    channel: str
    purpose: str
    source: str
    status: str
    requested_at: float
    expires_at: float
    confirmed_at: float | None = None
    evidence: str | None = None


_COLUMNS = "id, customer_id, channel, purpose, source, status, requested_at, expires_at, confirmed_at, evidence"


def insert_opt_in(tx: Transaction, request: OptInRequest) -> None:
    tx.execute(f"INSERT INTO opt_in_requests ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (request.id, request.customer_id, request.channel, request.purpose, request.source, request.status,
                request.requested_at, request.expires_at, request.confirmed_at, request.evidence))


def opt_in(tx: Transaction, request_id: str) -> OptInRequest | None:
    row = tx.one(f"SELECT {_COLUMNS} FROM opt_in_requests WHERE id = ?", (request_id,))
    return None if row is None else _request(row)


def pending_opt_in(tx: Transaction, customer_id: str, channel: str, now: float) -> OptInRequest | None:
    """The customer's latest unexpired pending request on `channel`."""
    row = tx.one(f"SELECT {_COLUMNS} FROM opt_in_requests WHERE customer_id = ? AND channel = ? "
                 "AND status = 'pending' AND expires_at > ? ORDER BY requested_at DESC LIMIT 1",
                 (customer_id, channel, now))
    return None if row is None else _request(row)


def confirm_opt_in(tx: Transaction, request_id: str, evidence: str, now: float) -> bool:
    """Mark a pending, unexpired request confirmed; False when it was not (any more) pending."""
    return bool(tx.execute(
        "UPDATE opt_in_requests SET status = 'confirmed', confirmed_at = ?, evidence = ? "
        "WHERE id = ? AND status = 'pending' AND expires_at > ?", (now, evidence, request_id, now)))


def expire_opt_ins(tx: Transaction, now: float) -> int:
    """Pending requests past their expiry become `expired`; how many."""
    return int(tx.execute("UPDATE opt_in_requests SET status = 'expired' WHERE status = 'pending' AND expires_at <= ?",
                          (now,)) or 0)


def _request(row: Sequence[Any]) -> OptInRequest:
    rid, cid, channel, purpose, source, status, requested, expires, confirmed, evidence = row
    return OptInRequest(id=str(rid), customer_id=str(cid), channel=str(channel), purpose=str(purpose),
                        source=str(source), status=str(status), requested_at=float(requested),
                        expires_at=float(expires), confirmed_at=None if confirmed is None else float(confirmed),
                        evidence=None if evidence is None else str(evidence))
