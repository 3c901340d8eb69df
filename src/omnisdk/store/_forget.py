"""Erasure requests, suppressions, and the batched walk an erasure makes over the tables the privacy
registry (`_privacy.REGISTRY`) names. Every SQL statement of `omni.forget` and `omni.export` lives here.

Each batch is one transaction that changes at most `limit` rows of one table and saves the
request's progress (the last key done) with them, so a crash loses at most the batch in hand and
the next pass resumes after the last one committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from ._base import Transaction, dumps, loads
from ._decisions import LogEntry, append_decisions
from ._privacy import REGISTRY, TableRule

__all__ = [
    "ForgetRequest",
    "Suppression",
    "cancel_customer_work",
    "customer_family",
    "customer_identifiers",
    "customer_profiles",
    "decoded_rows",
    "delete_rows",
    "delete_suppressions",
    "due_requests",
    "in_flight",
    "insert_request",
    "insert_suppressions",
    "linked_rows",
    "list_requests",
    "load_request",
    "next_request_due",
    "sent_references",
    "save_request",
    "suppressions_of",
    "table_exists",
    "update_rows",
]


@attrs.frozen(kw_only=True)
class ForgetRequest:
    """An erasure request as recorded: when, by whom, why, how far it got and what it removed.
    `subject` (the customer's ids and values, needed to resume) is None once it is done."""

    id: str
    requested_by: str
    reason: str
    status: str
    subject: dict[str, Any] | None
    progress: dict[str, Any]
    removed: dict[str, int]
    plugin_errors: dict[str, str]
    plugin_attempts: int
    due_at: float | None
    requested_at: float
    updated_at: float
    finished_at: float | None


@attrs.frozen
class Suppression:
    digest: str
    kind: str
    request_id: str
    created_at: float


_REQUEST_COLUMNS = ("id, requested_by, reason, status, subject, progress, removed, plugin_errors, plugin_attempts, "
                    "due_at, requested_at, updated_at, finished_at")


def _request(row: Sequence[Any]) -> ForgetRequest:
    (rid, by, reason, status, subject, progress, removed, errors, attempts, due, requested, updated, finished) = row
    return ForgetRequest(id=rid, requested_by=by, reason=reason, status=status, subject=loads(subject),
                         progress=loads(progress) or {}, removed=loads(removed) or {},
                         plugin_errors=loads(errors) or {}, plugin_attempts=int(attempts), due_at=due,
                         requested_at=float(requested), updated_at=float(updated),
                         finished_at=None if finished is None else float(finished))


def insert_request(tx: Transaction, request_id: str, *, requested_by: str, reason: str, subject: Mapping[str, Any],
                   now: float) -> None:
    tx.execute(
        "INSERT INTO forget_requests (id, requested_by, reason, status, subject, progress, removed, plugin_errors, "
        "due_at, requested_at, updated_at) VALUES (?, ?, ?, 'erasing', ?, '{}', '{}', '{}', ?, ?, ?)",
        (request_id, requested_by, reason, dumps(subject), now, now, now))


def load_request(tx: Transaction, request_id: str) -> ForgetRequest | None:
    row = tx.one(f"SELECT {_REQUEST_COLUMNS} FROM forget_requests WHERE id = ?", (request_id,))
    return None if row is None else _request(row)


def list_requests(tx: Transaction, limit: int = 100) -> list[ForgetRequest]:
    return [_request(r) for r in tx.query(
        f"SELECT {_REQUEST_COLUMNS} FROM forget_requests ORDER BY requested_at DESC, id LIMIT ?", (limit,))]


def due_requests(tx: Transaction, now: float, limit: int = 10) -> list[str]:
    """Open requests whose next pass is due (unfinished erasures, plugins to retry)."""
    return [str(r[0]) for r in tx.query(
        "SELECT id FROM forget_requests WHERE status <> 'done' AND due_at <= ? ORDER BY due_at, id LIMIT ?",
        (now, limit))]


def next_request_due(tx: Transaction) -> float | None:
    due = tx.scalar("SELECT MIN(due_at) FROM forget_requests WHERE status <> 'done'")
    return None if due is None else float(due)


def save_request(tx: Transaction, request: ForgetRequest) -> None:
    tx.execute(
        "UPDATE forget_requests SET status = ?, subject = ?, progress = ?, removed = ?, plugin_errors = ?, "
        "plugin_attempts = ?, due_at = ?, updated_at = ?, finished_at = ? WHERE id = ?",
        (request.status, None if request.subject is None else dumps(request.subject), dumps(request.progress),
         dumps(request.removed), dumps(request.plugin_errors), request.plugin_attempts, request.due_at,
         request.updated_at, request.finished_at, request.id))


def customer_family(tx: Transaction, customer_id: str) -> list[str]:
    """The profile and every profile merged into it (a merge points each loser at the final winner)."""
    ids = [customer_id]
    ids.extend(str(r[0]) for r in tx.query(
        "SELECT id FROM customers WHERE merged_into = ? AND id <> ? ORDER BY id", (customer_id, customer_id)))
    ids.extend(str(r[0]) for r in tx.query(
        "SELECT DISTINCT loser_id FROM merges WHERE winner_id = ? ORDER BY loser_id", (customer_id,))
        if str(r[0]) not in ids)
    return ids


def customer_identifiers(tx: Transaction, ids: Sequence[str]) -> list[tuple[str, str]]:
    """(kind, value) of every identifier of these profiles, in a stable order."""
    marks = ", ".join("?" * len(ids))
    return [(str(k), str(v)) for k, v in tx.query(
        f"SELECT kind, value FROM identities WHERE customer_id IN ({marks}) ORDER BY kind, value", list(ids))]


def customer_profiles(tx: Transaction, ids: Sequence[str]) -> list[tuple[Any, Any]]:
    """(traits, address) of these profiles, decoded."""
    marks = ", ".join("?" * len(ids))
    return [(loads(traits), loads(address)) for traits, address in
            tx.query(f"SELECT traits, address FROM customers WHERE id IN ({marks})", list(ids))]


def sent_references(tx: Transaction, ids: Sequence[str]) -> list[tuple[str, str | None, str | None]]:
    """(provider, provider message id, address) of the deliveries to these profiles that hold either."""
    marks = ", ".join("?" * len(ids))
    return [(str(provider), None if message_id is None else str(message_id), None if address is None else str(address))
            for provider, message_id, address in tx.query(
                f"SELECT provider, provider_message_id, address FROM deliveries WHERE customer_id IN ({marks}) "
                "AND (provider_message_id IS NOT NULL OR address IS NOT NULL)", list(ids))]


# -- suppressions
def insert_suppressions(tx: Transaction, rows: Iterable[tuple[str, str, str, float]]) -> int:
    """(digest, kind, request id, created_at); a digest already held keeps its first request."""
    return tx.executemany(
        "INSERT INTO suppressions (digest, kind, request_id, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (digest) DO NOTHING", list(rows))


def suppressions_of(tx: Transaction, digests: Sequence[str]) -> list[Suppression]:
    found: list[Suppression] = []
    for start in range(0, len(digests), 500):
        chunk = list(digests[start:start + 500])
        found.extend(Suppression(str(d), str(k), str(r), float(c)) for d, k, r, c in tx.query(
            f"SELECT digest, kind, request_id, created_at FROM suppressions WHERE digest IN "
            f"({', '.join('?' * len(chunk))}) ORDER BY digest", chunk))
    return found


def delete_suppressions(tx: Transaction, digests: Sequence[str]) -> int:
    return sum(tx.execute("DELETE FROM suppressions WHERE digest = ?", (d,)) for d in digests)


# -- the walk over the registry's tables
def table_exists(tx: Transaction, table: str) -> bool:
    if tx.dialect.name == "postgresql":
        sql = "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?"
    else:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return bool(tx.scalar(sql, (table,)))


def _keyset(key: Sequence[str]) -> str:
    """`(k1, k2, ...) > (?, ?, ...)` spelt out (both databases; one placeholder set per clause)."""
    clauses = []
    for i, column in enumerate(key):
        equal = [f"{k} = ?" for k in key[:i]]
        clauses.append("(" + " AND ".join([*equal, f"{column} > ?"]) + ")")
    return "(" + " OR ".join(clauses) + ")"


def _keyset_params(after: Sequence[Any]) -> list[Any]:
    return [value for i in range(len(after)) for value in (*after[:i], after[i])]


def linked_rows(tx: Transaction, table: str, ids: Sequence[str], after: Sequence[Any] | None,
                limit: int) -> list[dict[str, Any]]:
    """The next `limit` rows of `table` that are the customer's (`ids`), after key `after`, by key;
    for a `scan` table, the next rows whatever they hold (the caller reads them). Every column."""
    rule: TableRule = REGISTRY[table]
    columns = list(rule.columns)
    where: list[str] = []
    params: list[Any] = []
    if rule.link is not None:
        marks = ", ".join("?" * len(ids))
        where.append("(" + rule.link.replace("{ids}", marks) + ")")
        params.extend(list(ids) * rule.link.count("{ids}"))
    if after is not None:
        where.append(_keyset(rule.key))
        params.extend(_keyset_params(after))
    sql = f"SELECT {', '.join(columns)} FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {', '.join(rule.key)} LIMIT ?"
    return [dict(zip(columns, row, strict=True)) for row in tx.query(sql, [*params, limit])]


def update_rows(tx: Transaction, table: str, changes: Sequence[tuple[Sequence[Any], Mapping[str, Any]]]) -> int:
    """Write each row's changed columns ({column: value}, JSON already encoded) by its key."""
    key = REGISTRY[table].key
    done = 0
    for key_values, values in changes:
        if not values:
            continue
        sets = ", ".join(f"{column} = ?" for column in values)
        done += tx.execute(f"UPDATE {table} SET {sets} WHERE {' AND '.join(f'{k} = ?' for k in key)}",
                           [*values.values(), *key_values])
    return done


def delete_rows(tx: Transaction, table: str, keys: Sequence[Sequence[Any]]) -> int:
    key = REGISTRY[table].key
    return tx.executemany(f"DELETE FROM {table} WHERE {' AND '.join(f'{k} = ?' for k in key)}",
                          [list(k) for k in keys])


def in_flight(tx: Transaction, ids: Sequence[str], now: float) -> int:
    """The customer's deliveries a worker is sending now and runs a worker holds under a lease: the
    erasure waits for them to settle (the dispatcher records their outcome first), then goes on."""
    marks = ", ".join("?" * len(ids))
    sending = tx.scalar(f"SELECT COUNT(*) FROM deliveries WHERE customer_id IN ({marks}) AND status = 'sending'",
                        list(ids))
    leased = tx.scalar(
        f"SELECT COUNT(*) FROM journey_runs WHERE customer_id IN ({marks}) AND status IN ('running', 'waiting') "
        "AND lease_owner IS NOT NULL AND due_at > ?", [*ids, now])
    return int(sending or 0) + int(leased or 0)


def decoded_rows(tx: Transaction, table: str, ids: Sequence[str]) -> list[dict[str, Any]]:
    """Every row of `table` that is the customer's, JSON columns decoded, in key order (an export)."""
    from ._privacy import json_columns

    json_cols = {c for t, c in json_columns() if t == table}
    rows: list[dict[str, Any]] = []
    after: Sequence[Any] | None = None
    while True:
        batch = linked_rows(tx, table, ids, after, 1000)
        rows.extend({k: (loads(v) if k in json_cols else v) for k, v in row.items()} for row in batch)
        if len(batch) < 1000:
            return rows
        after = [batch[-1][k] for k in REGISTRY[table].key]


def cancel_customer_work(tx: Transaction, ids: Sequence[str], *, reason: str, now: float) -> tuple[list[str], int]:
    """Cancel the customer's queued messages and active runs, at once: (the delivery ids, how many runs).

    A message a worker has claimed but not started sending stays unsent (`mark_sending` only takes
    rows still queued); one it is sending already is left to it, and the erasure waits for its outcome."""
    marks = ", ".join("?" * len(ids))
    cancelled = [str(r[0]) for r in tx.query(
        f"UPDATE deliveries SET status = 'cancelled', error = ?, updated_at = ? WHERE customer_id IN ({marks}) "
        "AND status IN ('queued', 'deferred') RETURNING id", (reason, now, *ids))]
    append_decisions(tx, [LogEntry(delivery_id=did, at=now, outcome="cancelled", channel=None, reason=reason,
                                   actor="app") for did in cancelled])
    runs = tx.execute(
        f"UPDATE journey_runs SET status = 'cancelled', active_key = NULL, due_at = NULL, reason = ?, ended_at = ?, "
        f"updated_at = ? WHERE customer_id IN ({marks}) AND status IN ('running', 'waiting') "
        "AND (lease_owner IS NULL OR due_at <= ?)", (reason, now, now, *ids, now))
    return cancelled, runs
