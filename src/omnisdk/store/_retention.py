"""Retention: each rule's statements (`[retention]`), one batch at a time, and when each last ran.

A rule only ever touches rows that are finished: routed touchpoints, deliveries in a final state,
ended runs, finished erasure requests. Every statement is bounded by `limit` rows, so a pass is a
series of short transactions the worker interleaves with its other work.
"""

from __future__ import annotations

from typing import Final

import attrs

from ._base import Transaction

__all__ = ["RULES", "RetentionRun", "apply_rule", "eligible", "record_run", "retention_runs"]

_FINAL: Final = "status IN ('sent', 'delivered', 'failed', 'skipped', 'cancelled')"

#: Per rule: (table, key, which rows are past `?` (the cut-off), what to do with them: None deletes,
#: else the SET clause of an update that must also make them no longer match).
RULES: Final[dict[str, tuple[str, str, str, str | None]]] = {
    "touchpoints": ("touchpoints", "seq", "occurred_at < ? AND routed = 1", None),
    "delivery_bodies": ("deliveries", "id",
                        f"created_at < ? AND {_FINAL} AND (sent_content IS NOT NULL OR CAST(data AS TEXT) <> '{{}}')",
                        "sent_content = NULL, data = '{}'"),
    "deliveries": ("deliveries", "id", f"created_at < ? AND {_FINAL}", None),
    "decision_log": ("delivery_decisions", "seq", "at < ?", None),
    "journey_runs": ("journey_runs", "id", "ended_at < ? AND status NOT IN ('running', 'waiting')", None),
    "webhook_requests": ("webhook_requests", "provider || ':' || nonce", "received_at < ?", None),
    "webhook_events": ("webhook_events", "provider || ':' || event_id", "received_at < ?", None),
    "quarantine": ("quarantine", "id", "quarantined_at < ?", None),
    "forget_requests": ("forget_requests", "id", "finished_at < ? AND status = 'done'", None),
}


@attrs.frozen
class RetentionRun:
    name: str
    last_run_at: float
    removed: int


def eligible(tx: Transaction, rule: str, cutoff: float) -> int:
    """How many rows `rule` would remove or clear now."""
    table, _, where, _ = RULES[rule]
    return int(tx.scalar(f"SELECT COUNT(*) FROM {table} WHERE {where}", (cutoff,)) or 0)


def apply_rule(tx: Transaction, rule: str, cutoff: float, limit: int) -> int:
    """One batch of `rule`: at most `limit` rows removed (or cleared); how many."""
    table, key, where, update = RULES[rule]
    chosen = f"{key} IN (SELECT {key} FROM {table} WHERE {where} LIMIT ?)"
    done = 0
    if rule == "deliveries":  # a delivery's decision log goes with it
        tx.execute(f"DELETE FROM delivery_decisions WHERE delivery_id IN (SELECT id FROM deliveries WHERE {where} "
                   "LIMIT ?)", (cutoff, limit))
    if rule == "journey_runs":
        tx.execute(f"DELETE FROM journey_steps WHERE run_id IN (SELECT id FROM journey_runs WHERE {where} LIMIT ?)",
                   (cutoff, limit))
    if update is None:
        done = tx.execute(f"DELETE FROM {table} WHERE {chosen}", (cutoff, limit))
    else:
        done = tx.execute(f"UPDATE {table} SET {update} WHERE {chosen}", (cutoff, limit))
    return done


def record_run(tx: Transaction, rule: str, now: float, removed: int) -> None:
    tx.execute("INSERT INTO retention_runs (name, last_run_at, removed) VALUES (?, ?, ?) ON CONFLICT (name) "
               "DO UPDATE SET last_run_at = excluded.last_run_at, removed = retention_runs.removed + excluded.removed",
               (rule, now, removed))


def retention_runs(tx: Transaction) -> dict[str, RetentionRun]:
    return {str(n): RetentionRun(str(n), float(at), int(removed)) for n, at, removed in tx.query(
        "SELECT name, last_run_at, removed FROM retention_runs ORDER BY name")}
