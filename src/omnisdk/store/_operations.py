"""Read-only summaries for operators: runs by state and step, overdue runs, the outbox, provider health.

The dashboard (`omnisdk ui`) and the readiness probe read these; nothing here writes. Every SQL
statement of those views lives here (see docs/architecture.md), for both databases.
"""

from __future__ import annotations

import attrs

from ._base import Transaction
from ._deliveries import Delivery, select_deliveries
from ._quarantine import decode_rows
from ._runs import _RUN_COLUMNS, RunRecord, _run_record

__all__ = ["OutboxStatus", "ProviderCounts", "RunCount", "outbox_ids", "outbox_status", "overdue_runs",
           "provider_counts", "quarantine_count", "run_counts", "work_lag"]

@attrs.frozen(kw_only=True)
class RunCount:
    """How many runs of a journey are in one status at one step."""

    journey: str
    status: str
    step: str | None
    count: int


@attrs.frozen(kw_only=True)
class OutboxStatus:
    """One outbox status: how many rows, the oldest one's due time, and (for `sending`) how many are in
    doubt: their worker's lease ran out before it recorded the provider's answer."""

    status: str
    count: int
    oldest_due_at: float | None
    in_doubt: int = 0


@attrs.frozen(kw_only=True)
class ProviderCounts:
    """A provider's deliveries updated in a recent window, by status, and its retries in that window."""

    channel: str | None
    provider: str
    statuses: dict[str, int]
    retries: int


def run_counts(tx: Transaction) -> list[RunCount]:
    """Runs per journey, status and step (the step a waiting run is parked at)."""
    rows = tx.query("SELECT journey, status, step, COUNT(*) FROM journey_runs GROUP BY journey, status, step "
                    "ORDER BY journey, status, step")
    return [RunCount(journey=str(j), status=str(s), step=None if step is None else str(step), count=int(n))
            for j, s, step, n in rows]


def overdue_runs(tx: Transaction, before: float, limit: int) -> list[RunRecord]:
    """Active runs that were due before `before` and are still not done (stuck), most overdue first."""
    rows = tx.query(f"SELECT {_RUN_COLUMNS} FROM journey_runs WHERE status IN ('running', 'waiting') "
                    "AND due_at < ? ORDER BY due_at, id LIMIT ?", (before, int(limit)))
    return decode_rows(tx, "journey_runs", rows, _run_record)


def outbox_status(tx: Transaction, now: float) -> list[OutboxStatus]:
    """Pending deliveries per status, with the oldest due time; `sending` rows past their lease are in doubt."""
    rows = tx.query(
        "SELECT status, COUNT(*), MIN(due_at), "
        "SUM(CASE WHEN status = 'sending' AND lease_until < ? THEN 1 ELSE 0 END) "
        "FROM deliveries WHERE status IN ('queued', 'deferred', 'sending') GROUP BY status ORDER BY status", (now,))
    return [OutboxStatus(status=str(s), count=int(n), oldest_due_at=None if due is None else float(due),
                         in_doubt=int(doubt or 0)) for s, n, due, doubt in rows]


def outbox_ids(tx: Transaction, now: float, limit: int) -> list[Delivery]:
    """The pending deliveries that have waited longest past their due time (in-doubt ones included)."""
    rows = tx.query("SELECT id FROM deliveries WHERE status IN ('queued', 'deferred', 'sending') AND due_at <= ? "
                    "ORDER BY due_at, id LIMIT ?", (now, int(limit)))
    return select_deliveries(tx, ids=[str(r[0]) for r in rows])


def provider_counts(tx: Transaction, since: float) -> list[ProviderCounts]:
    """Per provider, its deliveries last updated since `since` by status, and the retries logged since then."""
    found: dict[tuple[str | None, str], ProviderCounts] = {}
    for channel, provider, status, n in tx.query(
        "SELECT channel, provider, status, COUNT(*) FROM deliveries WHERE provider IS NOT NULL AND updated_at >= ? "
        "GROUP BY channel, provider, status ORDER BY channel, provider, status", (since,)
    ):
        key = (None if channel is None else str(channel), str(provider))
        found.setdefault(key, ProviderCounts(channel=key[0], provider=key[1], statuses={}, retries=0))
        found[key].statuses[str(status)] = int(n)
    retries: dict[tuple[str | None, str], int] = {
        (None if c is None else str(c), str(p)): int(n) for c, p, n in tx.query(
            "SELECT d.channel, d.provider, COUNT(*) FROM delivery_decisions x "
            "JOIN deliveries d ON d.id = x.delivery_id WHERE x.outcome = 'retry' AND x.at >= ? "
            "AND d.provider IS NOT NULL GROUP BY d.channel, d.provider",
            (since,))
    }
    for key, n in retries.items():
        counts = found.setdefault(key, ProviderCounts(channel=key[0], provider=key[1], statuses={}, retries=0))
        found[key] = attrs.evolve(counts, retries=n)
    return list(found.values())


def quarantine_count(tx: Transaction) -> int:
    return int(tx.scalar("SELECT COUNT(*) FROM quarantine") or 0)


def work_lag(tx: Transaction, now: float) -> tuple[float | None, float | None]:
    """How long the most overdue (run, delivery) has waited past its due time, in seconds; None when nothing is."""
    run_due = tx.scalar("SELECT MIN(due_at) FROM journey_runs WHERE status IN ('running', 'waiting') AND due_at <= ?",
                        (now,))
    delivery_due = tx.scalar("SELECT MIN(due_at) FROM deliveries WHERE status IN ('queued', 'deferred') "
                             "AND due_at <= ?", (now,))
    return (None if run_due is None else now - float(run_due),
            None if delivery_due is None else now - float(delivery_due))
