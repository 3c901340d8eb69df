"""The webhook requests already taken (migration 0013): a nonce seen once is a replay next time.

Shared by every worker on the store, so a request replayed to another worker is caught too; rows
older than the retention are pruned as new ones arrive (indexed by provider and time).
"""

from __future__ import annotations

import hashlib
from typing import Literal

from ._base import Transaction

__all__ = ["remember_event", "remember_request"]

#: Longer nonces are kept by their digest, never cut short (two could share a prefix).
_MAX_NONCE = 200


def remember_request(
    tx: Transaction, *, provider: str, nonce: str, digest: str, now: float, retention: float
) -> Literal["first", "repeat", "reused"]:
    """Record `nonce` for `provider`: "first" when it is new, "repeat" when the same request (same
    digest) came before, "reused" when another request came with it (a replay)."""
    if len(nonce) > _MAX_NONCE:
        nonce = f"sha256:{hashlib.sha256(nonce.encode('utf-8', 'surrogatepass')).hexdigest()}"
    tx.execute("DELETE FROM webhook_requests WHERE provider = ? AND received_at < ?", (provider, now - retention))
    if tx.execute(
        "INSERT INTO webhook_requests (provider, nonce, digest, received_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (provider, nonce) DO NOTHING",
        (provider, nonce, digest, now),
    ):
        return "first"
    seen = tx.scalar("SELECT digest FROM webhook_requests WHERE provider = ? AND nonce = ?", (provider, nonce))
    return "repeat" if seen == digest else "reused"


def remember_event(tx: Transaction, *, provider: str, event_id: str, now: float) -> bool:
    """Record a webhook event's id (migration 0003's `webhook_events`); False when it came before
    (providers retry their webhooks)."""
    return bool(tx.execute(
        "INSERT INTO webhook_events (provider, event_id, received_at) VALUES (?, ?, ?) "
        "ON CONFLICT (provider, event_id) DO NOTHING",
        (provider, event_id, now),
    ))
