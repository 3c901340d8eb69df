"""What the telemetry gauges read at each collection: outbox depth and age, due runs, quarantined rows.

Read-only counts over the deliveries, journey_runs and quarantine tables, each one indexed query,
run only when a metrics reader collects (never on the send path).
"""

from __future__ import annotations

from ._base import Transaction

__all__ = ["due_runs", "outbox_age", "outbox_depth", "quarantined_rows"]


def outbox_depth(tx: Transaction) -> dict[str, int]:
    """Deliveries waiting or in flight, by status (queued, deferred, sending)."""
    return {str(status): int(n) for status, n in tx.query(
        "SELECT status, COUNT(*) FROM deliveries WHERE status IN ('queued', 'deferred', 'sending') GROUP BY status")}


def outbox_age(tx: Transaction, now: float) -> float:
    """Seconds the oldest due, unsent delivery has waited past its due time (0 when none is late)."""
    oldest = tx.scalar("SELECT MIN(due_at) FROM deliveries WHERE status IN ('queued', 'deferred') AND due_at <= ?",
                       (now,))
    return 0.0 if oldest is None else max(0.0, now - float(oldest))


def due_runs(tx: Transaction, now: float) -> int:
    """Journey runs due now (running or waiting, `due_at` passed)."""
    return int(tx.scalar("SELECT COUNT(*) FROM journey_runs WHERE status IN ('running', 'waiting') AND due_at <= ?",
                         (now,)) or 0)


def quarantined_rows(tx: Transaction) -> dict[str, int]:
    """Rows set aside as unreadable, by the table they came from."""
    return {str(origin): int(n) for origin, n in tx.query("SELECT origin, COUNT(*) FROM quarantine GROUP BY origin")}
