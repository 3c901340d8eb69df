"""Tracked links: the store's own signing keys (`signing_keys`), shared by every worker on the store.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations

import secrets
import time
from typing import Any

from .._errors import StoreError
from ._base import SQLStore
from ._quarantine import decode_rows
from ._rows import text, timestamp

__all__ = ["signing_key"]


def signing_key(store: SQLStore, name: str) -> bytes:
    """The key named `name`, generated once; an unreadable key is quarantined, and a new one made in
    its place."""
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO signing_keys (name, secret, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
            (name, secrets.token_urlsafe(32), time.time()),
        )
        for _ in range(2):
            rows = tx.query("SELECT name, secret, created_at FROM signing_keys WHERE name = ?", (name,))
            for secret in decode_rows(tx, "signing_keys", rows, _secret):
                return secret.encode()
            tx.execute("INSERT INTO signing_keys (name, secret, created_at) VALUES (?, ?, ?)",
                       (name, secrets.token_urlsafe(32), time.time()))
        raise StoreError(f"signing key {name!r} cannot be stored")


def _secret(row: Any) -> str:
    _, secret, created_at = row
    timestamp(created_at)
    if not text(secret):
        raise ValueError("empty secret")
    return str(secret)
