"""The decision log: append-only rows saying which policy decided what about a delivery, and why.

Entries are only ever inserted, a whole batch's in one statement (`append_decisions`), never
rewritten; a delivery's log is its rows in `seq` order (migration 0014 moved the JSON logs here).

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ._base import Transaction, dumps
from ._rows import optional_number

__all__ = ["LogEntry", "append_decisions", "decision_counts", "decisions_of", "last_reason_sql", "legacy_entries"]

#: Rows per INSERT (9 parameters each: well under both databases' limits).
_CHUNK = 500
_COLUMNS = "delivery_id, at, actor, outcome, channel, policy, reason, until, checks"
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"


@attrs.frozen(kw_only=True)
class LogEntry:
    """One entry of a delivery's decision log."""

    delivery_id: str
    at: float
    #: What was decided: send, skip, defer, sent, retry, failover, fallback, failed, in_doubt, ...
    outcome: str
    channel: str | None
    reason: str
    #: Who decided: dispatcher, journey, broadcast, app.
    actor: str = "dispatcher"
    #: The policy behind a skip or a defer, when one policy decided it.
    policy: str | None = None
    until: float | None = None
    #: Every policy looked at (as `policies.Check.as_dict` gives them), already encoded as JSON.
    checks: str | None = None

    def row(self) -> tuple[Any, ...]:
        return (self.delivery_id, self.at, self.actor, self.outcome, self.channel, self.policy, self.reason,
                self.until, self.checks)


def append_decisions(tx: Transaction, entries: Sequence[LogEntry]) -> None:
    """Append `entries` (in this order) to their deliveries' logs: one statement per 500."""
    for start in range(0, len(entries), _CHUNK):
        chunk = entries[start : start + _CHUNK]
        params = [value for entry in chunk for value in entry.row()]
        tx.execute(f"INSERT INTO delivery_decisions ({_COLUMNS}) VALUES {','.join([_ROW] * len(chunk))}", params)


def _chunks(ids: Iterable[str]) -> Iterable[list[str]]:
    wanted = list(dict.fromkeys(ids))
    for start in range(0, len(wanted), _CHUNK):
        yield wanted[start : start + _CHUNK]


def decisions_of(tx: Transaction, delivery_ids: Iterable[str]) -> dict[str, list[LogEntry]]:
    """Each delivery's log, oldest entry first."""
    found: dict[str, list[LogEntry]] = {}
    for chunk in _chunks(delivery_ids):
        rows = tx.query(
            f"SELECT {_COLUMNS} FROM delivery_decisions WHERE delivery_id IN ({','.join('?' * len(chunk))}) "
            "ORDER BY delivery_id, seq",
            chunk,
        )
        for did, at, actor, outcome, channel, policy, reason, until, checks in rows:
            found.setdefault(did, []).append(LogEntry(
                delivery_id=did, at=float(at), actor=actor, outcome=outcome, channel=channel, policy=policy,
                reason=str(reason), until=optional_number(until),
                checks=checks if checks is None or isinstance(checks, str) else dumps(checks),
            ))
    return found


def decision_counts(
    tx: Transaction, delivery_ids: Iterable[str], outcomes: Sequence[str]
) -> dict[str, Counter[tuple[str, str | None]]]:
    """How often each of `outcomes` was logged per delivery and channel (attempts and retries so far)."""
    found: dict[str, Counter[tuple[str, str | None]]] = {}
    marks = ",".join("?" * len(outcomes))
    for chunk in _chunks(delivery_ids):
        rows = tx.query(
            f"SELECT delivery_id, outcome, channel, COUNT(*) FROM delivery_decisions WHERE delivery_id IN "
            f"({','.join('?' * len(chunk))}) AND outcome IN ({marks}) GROUP BY delivery_id, outcome, channel",
            (*chunk, *outcomes),
        )
        for did, outcome, channel, count in rows:
            found.setdefault(did, Counter())[(outcome, channel)] = int(count)
    return found


def legacy_entries(delivery_id: str, log: Any, updated_at: float) -> list[LogEntry]:
    """Entries still held in a delivery's JSON `decisions` column (written before migration 0014, or
    by an older worker since): read as rows are, in front of them."""
    entries = []
    for item in log if isinstance(log, list) else ():
        if not isinstance(item, Mapping):
            continue
        at = item.get("at")
        checks = item.get("checks")
        entries.append(LogEntry(
            delivery_id=delivery_id, at=float(at) if isinstance(at, int | float) else updated_at,
            outcome=str(item.get("action", "unknown")), channel=item.get("channel"),
            reason=str(item.get("reason", "")), until=optional_number(item.get("until")),
            checks=dumps(checks) if isinstance(checks, list) else None,
        ))
    return entries


def last_reason_sql(tx: Transaction, alias: str) -> str:
    """SQL for the reason of the latest entry of delivery `alias`'s log (a skip's reason, for reports)."""
    legacy = (f"({alias}.decisions -> -1 ->> 'reason')" if tx.dialect.name == "postgresql"
              else f"json_extract({alias}.decisions, '$[#-1].reason')")
    latest = (f"(SELECT x.reason FROM delivery_decisions x WHERE x.delivery_id = {alias}.id "
              "ORDER BY x.seq DESC LIMIT 1)")
    return f"COALESCE({latest}, {legacy})"

