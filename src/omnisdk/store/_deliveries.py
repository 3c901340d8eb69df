"""Deliveries: the outbox rows, their claims, leases and statuses.

Changes are written set-based: the dispatcher collects a batch's `Change`s and `apply_changes`
writes each shape of change (the same columns set) in one statement per 500 rows, so the cost of a
batch does not grow with its rows' count of statements. Every SQL statement about this table lives
here (see docs/architecture.md)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import attrs

from .._clock import to_datetime
from .._content import SMS, Content, Email, Letter, PosOffer, Postcard, Push, Social
from .._touchpoints import new_id
from ._base import Transaction, dumps, json_table, loads
from ._decisions import LogEntry, append_decisions, decisions_of, legacy_entries
from ._events import stage_deliveries
from ._quarantine import decode_rows
from ._rows import json_array, json_object, optional_number, optional_timestamp, text, timestamp

__all__ = [
    "DELIVERY_STATUSES",
    "Change",
    "Decision",
    "Delivery",
    "DoubtRow",
    "DueRow",
    "EventDelivery",
    "FallbackRow",
    "Lease",
    "apply_changes",
    "cancel_run",
    "claim_due",
    "content_from_json",
    "content_json",
    "due_fallbacks",
    "find_event_delivery",
    "insert_deliveries",
    "insert_delivery",
    "latest_prompt",
    "lease_change",
    "lease_for_lookup",
    "mark_sending",
    "next_due",
    "select_deliveries",
    "set_event_status",
    "set_traceparent",
    "traceparents",
    "take_in_doubt",
]

DELIVERY_STATUSES: Final = ("queued", "deferred", "sending", "sent", "delivered", "failed", "skipped", "cancelled")
#: Rows per set-based statement.
_CHUNK: Final = 500

# -- the public record


@attrs.frozen(kw_only=True)
class Decision:
    """One entry of a delivery's decision log: who decided what, by which policy, and why."""

    at: datetime
    action: str
    channel: str | None
    reason: str
    actor: str = "dispatcher"
    policy: str | None = None


@attrs.frozen(kw_only=True)
class Delivery:
    """One queued message: where it went, how it went, and why (the decision log)."""

    id: str
    customer_id: str
    template: str
    status: str
    channel: str | None
    channels: Sequence[str]
    provider: str | None
    purpose: str
    attempts: int
    provider_message_id: str | None
    error: str | None
    decisions: Sequence[Decision]
    cost: float | None
    segments: int | None
    run_id: str | None
    journey: str | None
    step: str | None
    idempotency_key: str
    data: dict[str, Any]
    due_at: datetime
    sent_at: datetime | None
    parent_id: str | None
    created_at: datetime
    updated_at: datetime


_DELIVERY_COLUMNS: Final = (
    "id, customer_id, template, status, channel, channels, provider, purpose, attempts, provider_message_id, error, "
    "decisions, cost, segments, run_id, journey, step, idempotency_key, data, due_at, sent_at, parent_id, "
    "created_at, updated_at"
)


def _decision(entry: LogEntry) -> Decision:
    return Decision(at=to_datetime(entry.at), action=entry.outcome, channel=entry.channel, reason=entry.reason,
                    actor=entry.actor, policy=entry.policy)


def _delivery(row: Sequence[Any], log: Sequence[LogEntry]) -> Delivery:
    (did, cid, template, status, channel, channels, provider, purpose, attempts, pmid, error, decisions, cost,
     segments, run_id, journey, step, key, data, due_at, sent_at, parent_id, created_at, updated_at) = row
    entries = [*legacy_entries(did, json_array(decisions), timestamp(updated_at)), *log]
    return Delivery(
        id=text(did), customer_id=text(cid), template=text(template), status=text(status), channel=channel,
        channels=tuple(json_array(channels)), provider=provider, purpose=purpose, attempts=int(attempts),
        provider_message_id=pmid, error=error, decisions=tuple(_decision(e) for e in entries),
        cost=cost, segments=segments, run_id=run_id, journey=journey, step=step, idempotency_key=key,
        data=json_object(data), due_at=to_datetime(timestamp(due_at)),
        sent_at=to_datetime(timestamp(sent_at)) if sent_at else None, parent_id=parent_id,
        created_at=to_datetime(timestamp(created_at)), updated_at=to_datetime(timestamp(updated_at)),
    )


def select_deliveries(
    tx: Transaction, *, ids: Sequence[str] | None = None, filters: Mapping[str, str] | None = None,
    statuses: Sequence[str] | None = None, limit: int | None = None,
) -> list[Delivery]:
    """Deliveries by id, or matching every filter (column = value) and status, oldest first; each
    with its decision log."""
    where: list[str] = []
    params: list[Any] = []
    if ids is not None:
        if not ids:
            return []
        where.append(f"id IN ({','.join('?' * len(ids))})")
        params.extend(ids)
    for column, value in (filters or {}).items():
        if column not in ("customer_id", "run_id", "journey", "channel"):
            raise ValueError(f"no filter on {column}")
        where.append(f"{column} = ?")
        params.append(value)
    if statuses is not None:
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        params.extend(statuses)
    sql = f"SELECT {_DELIVERY_COLUMNS} FROM deliveries"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at, id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    rows = tx.query(sql, params)
    logs = decisions_of(tx, (r[0] for r in rows)) if rows else {}
    return decode_rows(tx, "deliveries", rows, lambda row: _delivery(row, logs.get(row[0], ())))


# -- the outbox


def insert_delivery(
    tx: Transaction, *, key: str, customer_id: str, template: str, channels: Sequence[str], now: float,
    due_at: float | None = None, purpose: str = "marketing", data: Mapping[str, Any] | None = None,
    run_id: str | None = None, journey: str | None = None, step: str | None = None,
    broadcast_id: str | None = None, fallback_after: float | None = None, parent_id: str | None = None,
) -> str:
    """Queue one message; the delivery id. A `key` already queued returns that delivery's id."""
    delivery_id = "dlv_" + new_id()
    if tx.execute(
        "INSERT INTO deliveries (id, idempotency_key, customer_id, template, channels, purpose, data, run_id, journey, "
        "step, broadcast_id, status, due_at, decisions, fallback_after, parent_id, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, '[]', ?, ?, ?, ?) "
        "ON CONFLICT (idempotency_key) DO NOTHING",
        (delivery_id, key, customer_id, template, dumps(list(channels)), purpose, dumps(dict(data or {})), run_id,
         journey, step, broadcast_id, now if due_at is None else due_at, fallback_after, parent_id, now, now),
    ):
        stage_deliveries(tx, [delivery_id])  # "queued" on the event stream
        return delivery_id
    return str(tx.scalar("SELECT id FROM deliveries WHERE idempotency_key = ?", (key,)))


def insert_deliveries(
    tx: Transaction, rows: Sequence[tuple[str, str, float]], *, template: str, channels: Sequence[str], now: float,
    purpose: str = "marketing", data: Mapping[str, Any] | None = None, broadcast_id: str | None = None,
) -> int:
    """Queue one message to many customers, `rows` of (idempotency key, customer id, due_at), in one
    statement (the rows travel as one JSON parameter); a key already queued is left as it is."""
    if not rows:
        return 0
    per_row = dumps([["dlv_" + new_id(), key, cid, due_at] for key, cid, due_at in rows])
    source, (did, key, cid, due) = _json_rows(tx.dialect.name, 4)
    json = tx.dialect.types["json"]
    return tx.execute(
        "INSERT INTO deliveries (id, idempotency_key, customer_id, template, channels, purpose, data, broadcast_id, "
        f"status, due_at, decisions, created_at, updated_at) SELECT {did}, {key}, {cid}, ?, CAST(? AS {json}), ?, "
        f"CAST(? AS {json}), ?, 'queued', {due}, '[]', ?, ? FROM {source} WHERE TRUE "
        "ON CONFLICT (idempotency_key) DO NOTHING",
        (template, dumps(list(channels)), purpose, dumps(dict(data or {})), broadcast_id, now, now, per_row),
    )


def _json_rows(dialect: str, width: int) -> tuple[str, list[str]]:
    """A table over a JSON array of arrays (one `?`), and its columns: text, and the last a number."""
    if dialect == "sqlite":
        columns = [f"json_extract(r.value, '$[{i}]')" for i in range(width)]
        return "json_each(?) AS r", columns
    columns = [f"(r.value ->> {i})" for i in range(width)]
    columns[-1] = f"CAST({columns[-1]} AS DOUBLE PRECISION)"
    return "jsonb_array_elements(CAST(? AS JSONB)) AS r", columns


def cancel_run(tx: Transaction, run_id: str, *, reason: str, now: float, actor: str = "journey") -> list[str]:
    """Cancel what a run queued but has not started sending, logging why; the ids cancelled."""
    cancelled = [did for (did,) in tx.query(
        "UPDATE deliveries SET status = 'cancelled', error = ?, updated_at = ? "
        "WHERE run_id = ? AND status IN ('queued', 'deferred') RETURNING id",
        (reason, now, run_id),
    )]
    stage_deliveries(tx, cancelled)
    append_decisions(tx, [LogEntry(delivery_id=did, at=now, outcome="cancelled", channel=None, reason=reason,
                                   actor=actor) for did in cancelled])
    return cancelled


def next_due(tx: Transaction) -> float | None:
    """When the dispatcher next has work: a row due, a timed fallback, a lease running out."""
    row = tx.one(
        "SELECT (SELECT MIN(CASE WHEN lease_until > due_at THEN lease_until ELSE due_at END) "
        "FROM deliveries WHERE status IN ('queued', 'deferred')), "
        "(SELECT MIN(fallback_due) FROM deliveries WHERE fallback_due IS NOT NULL), "
        "(SELECT MIN(lease_until) FROM deliveries WHERE status = 'sending')"
    )
    dues = [float(v) for v in row or () if v is not None]
    return min(dues) if dues else None


# -- claims


@attrs.define(slots=True)
class DueRow:
    """A due outbox row as claimed, its JSON columns decoded."""

    id: str
    idempotency_key: str
    customer_id: str
    template: str
    channels: list[str]
    failed_channels: list[str]
    purpose: str
    data: dict[str, Any]
    run_id: str | None
    journey: str | None
    step: str | None
    attempts: int
    provider: str | None
    channel: str | None
    fallback_after: float | None
    created_at: float


_DUE_COLUMNS: Final = (
    "id, idempotency_key, customer_id, template, channels, failed_channels, purpose, data, run_id, journey, step, "
    "attempts, provider, channel, fallback_after, created_at"
)


def _due_row(row: Sequence[Any]) -> DueRow:
    (did, key, cid, template, channels, failed, purpose, data, run_id, journey, step, attempts, provider, channel,
     fallback_after, created_at) = row
    return DueRow(text(did), key, text(cid), text(template), json_array(channels), json_array(failed), text(purpose),
                  json_object(data), run_id, journey, step, int(attempts), provider, channel, fallback_after,
                  timestamp(created_at))


def claim_due(tx: Transaction, now: float, limit: int) -> tuple[list[DueRow], int]:
    """Up to `limit` rows due and not leased (locked on PostgreSQL, skipping those another worker
    holds); how many others were unreadable (quarantined)."""
    rows = tx.query(
        f"SELECT {_DUE_COLUMNS} FROM deliveries WHERE status IN ('queued', 'deferred') "
        "AND due_at <= ? AND (lease_until IS NULL OR lease_until < ?) ORDER BY due_at LIMIT ?" + tx.dialect.skip_locked,
        (now, now, limit),
    )
    decoded = decode_rows(tx, "deliveries", rows, _due_row)
    return decoded, len(rows) - len(decoded)


@attrs.frozen
class Lease:
    """A claimed row leased to a worker to send: what it will send, where, by whom."""

    id: str
    attempts: int
    channel: str
    provider: str
    address: str
    #: The content as sent (`content_json`), kept for providers that can be asked about it later.
    sent_content: str | None


def lease_change(item: Lease, *, owner: str, until: float, now: float) -> Change:
    """The change that leases a claimed row to `owner` (it stays `queued`: a worker that dies leaves
    it due when the lease runs out)."""
    return Change(item.id, {
        "attempts": item.attempts, "channel": item.channel, "provider": item.provider, "address": item.address,
        "sent_content": item.sent_content, "lease_owner": owner, "lease_until": until, "updated_at": now,
    })


def mark_sending(tx: Transaction, ids: Sequence[str], *, owner: str, now: float, until: float) -> set[str]:
    """Mark the rows `owner` still holds `sending` (their calls start now); the ids marked."""
    marked: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        rows = tx.query(
            "UPDATE deliveries SET status = 'sending', lease_until = ?, updated_at = ?, attempted_at = ?, lookups = 0 "
            f"WHERE id IN ({','.join('?' * len(chunk))}) AND status IN ('queued', 'deferred') AND lease_owner = ? "
            "RETURNING id",
            (until, now, now, *chunk, owner),
        )
        marked.update(did for (did,) in rows)
    return marked


# -- set-based changes

#: Column types, for the casts a VALUES list needs on PostgreSQL.
_TYPES: Final = {
    "status": "TEXT", "error": "TEXT", "due_at": "DOUBLE PRECISION", "channel": "TEXT", "attempts": "INTEGER",
    "lease_owner": "TEXT", "lease_until": "DOUBLE PRECISION", "provider": "TEXT", "address": "TEXT",
    "sent_content": "json", "provider_message_id": "TEXT", "cost": "DOUBLE PRECISION", "segments": "INTEGER",
    "sent_at": "DOUBLE PRECISION", "fallback_due": "DOUBLE PRECISION", "failed_channels": "json",
    "lookups": "INTEGER", "updated_at": "DOUBLE PRECISION", "parent_id": "TEXT",
}
#: Statuses a worker holds a row in: leased to send (`queued`, `deferred`), or sending.
HELD_TO_SEND: Final = ("queued", "deferred")
HELD_SENDING: Final = ("sending",)


@attrs.frozen
class Change:
    """New values for some columns of one delivery; with `owner`, only while that worker holds it
    (leased, in one of `statuses`)."""

    id: str
    values: Mapping[str, Any]
    owner: str | None = None
    statuses: tuple[str, ...] = ()


def apply_changes(tx: Transaction, changes: Sequence[Change]) -> set[str]:
    """Write `changes`: one statement per shape (columns, guard) and 500 rows; the ids changed."""
    groups: dict[tuple[tuple[str, ...], str | None, tuple[str, ...]], list[Change]] = defaultdict(list)
    for change in changes:
        groups[(tuple(change.values), change.owner, change.statuses)].append(change)
    changed: set[str] = set()
    for (columns, owner, statuses), group in groups.items():
        guard, guard_params = "", []
        if owner is not None:
            guard, guard_params = " AND lease_owner = ?", [owner]
        if statuses:
            guard += f" AND status IN ({','.join('?' * len(statuses))})"
            guard_params.extend(statuses)
        if len(group) == 1:
            change = group[0]
            sets = ", ".join(f"{c} = ?" for c in columns)
            if tx.execute(f"UPDATE deliveries SET {sets} WHERE id = ?{guard}",
                          (*change.values.values(), change.id, *guard_params)):
                changed.add(change.id)
            continue
        json = tx.dialect.types["json"]
        types = {c: json if _TYPES[c] == "json" else _TYPES[c] for c in columns}
        for start in range(0, len(group), _CHUNK):
            chunk = group[start : start + _CHUNK]
            # A column with one value for every row of the chunk (a status, a time, a cleared lease) is
            # set once, as a parameter: the VALUES list carries only what differs from row to row.
            first = chunk[0].values
            same = [c for c in columns if all(change.values[c] == first[c] and type(change.values[c]) is type(first[c])
                                              for change in chunk)]
            varying = [c for c in columns if c not in same]
            casts = [f"{c} = CAST(? AS {types[c]})" for c in same]
            casts += [f"{c} = CAST(v.column{i + 2} AS {types[c]})" for i, c in enumerate(varying)]
            row = f"({','.join('?' * (len(varying) + 1))})"
            params = [value for change in chunk for value in (change.id, *(change.values[c] for c in varying))]
            rows = tx.query(
                f"UPDATE deliveries SET {', '.join(casts)} FROM (VALUES {','.join([row] * len(chunk))}) AS v "
                f"WHERE deliveries.id = v.column1{guard} RETURNING deliveries.id",
                (*(first[c] for c in same), *params, *guard_params),
            )
            changed.update(did for (did,) in rows)
    return changed


# -- rows in doubt (`sending` past their lease)


@attrs.define(slots=True)
class DoubtRow:
    """A `sending` row whose lease ran out: its call's outcome is unknown."""

    id: str
    customer_id: str
    template: str
    channel: str
    channels: list[str]
    failed_channels: list[str]
    provider: str | None
    purpose: str
    journey: str | None
    step: str | None
    run_id: str | None
    idempotency_key: str
    address: str | None
    attempted_at: float | None
    sent_content: Any
    lookups: int
    fallback_after: float | None


_DOUBT_COLUMNS: Final = (
    "id, customer_id, template, channel, channels, failed_channels, provider, purpose, journey, step, run_id, "
    "idempotency_key, address, COALESCE(attempted_at, updated_at), sent_content, lookups, fallback_after"
)


def _doubt_row(row: Sequence[Any]) -> DoubtRow:
    (did, cid, template, channel, channels, failed, provider, purpose, journey, step, run_id, key, address,
     attempted_at, sent_content, lookups, fallback_after) = row
    return DoubtRow(text(did), text(cid), template, channel, json_array(channels), json_array(failed), provider,
                    purpose, journey, step, run_id, key, address, optional_timestamp(attempted_at), sent_content,
                    int(lookups or 0), fallback_after)


def take_in_doubt(tx: Transaction, now: float, limit: int) -> list[DoubtRow]:
    """Rows `sending` past their lease (locked on PostgreSQL)."""
    rows = tx.query(
        f"SELECT {_DOUBT_COLUMNS} FROM deliveries WHERE status = 'sending' AND lease_until <= ? LIMIT {int(limit)}"
        + tx.dialect.skip_locked,
        (now,),
    )
    return decode_rows(tx, "deliveries", rows, _doubt_row)


def lease_for_lookup(tx: Transaction, ids: Sequence[str], *, owner: str, until: float) -> None:
    """Lease in-doubt rows to `owner` while it asks their provider (no other worker asks meanwhile)."""
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        tx.execute(f"UPDATE deliveries SET lease_owner = ?, lease_until = ? WHERE id IN ({','.join('?' * len(chunk))})",
                   (owner, until, *chunk))


_CONTENT_TYPES: Final[dict[str, type[Content]]] = {
    cls.__name__: cls for cls in (Email, SMS, Push, Social, Postcard, Letter, PosOffer)
}


def content_json(content: Content) -> str:
    """The content as sent, for a later lookup (`content_from_json` reads it back)."""
    return dumps({"type": type(content).__name__, "fields": attrs.asdict(content, recurse=False)})


def content_from_json(value: Any) -> Content | None:
    """The content `content_json` wrote; None when it is missing or of a type this version does not know."""
    data = loads(value)
    if not isinstance(data, Mapping):
        return None
    cls = _CONTENT_TYPES.get(str(data.get("type")))
    fields = data.get("fields")
    if cls is None or not isinstance(fields, Mapping):
        return None
    try:  # JSON has lists where the renditions keep tuples (media_urls, categories, quick_replies)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    except TypeError:
        return None


# -- timed fallbacks


@attrs.define(slots=True)
class FallbackRow:
    """A sent (or failed) delivery whose `fallback_after` ran out before it was delivered."""

    id: str
    idempotency_key: str
    customer_id: str
    template: str
    channels: list[str]
    failed_channels: list[str]
    channel: str | None
    purpose: str
    data: dict[str, Any]
    run_id: str | None
    journey: str | None
    step: str | None
    status: str
    fallback_after: float | None


def _fallback_row(row: Sequence[Any]) -> FallbackRow:
    (did, key, cid, template, channels, failed, channel, purpose, data, run_id, journey, step, status,
     fallback_after) = row
    return FallbackRow(did, key, cid, template, json_array(channels), json_array(failed), channel, purpose,
                       json_object(data), run_id, journey, step, status, optional_number(fallback_after))


def due_fallbacks(tx: Transaction, now: float, limit: int = 1000) -> list[FallbackRow]:
    """Deliveries whose timed fallback is due, taken: their `fallback_due` is cleared."""
    rows = tx.query(
        "SELECT id, idempotency_key, customer_id, template, channels, failed_channels, channel, purpose, data, "
        "run_id, journey, step, status, fallback_after FROM deliveries "
        f"WHERE fallback_due IS NOT NULL AND fallback_due <= ? LIMIT {int(limit)}" + tx.dialect.skip_locked,
        (now,),
    )
    if not rows:
        return []
    for start in range(0, len(rows), _CHUNK):
        chunk = [r[0] for r in rows[start : start + _CHUNK]]
        tx.execute(f"UPDATE deliveries SET fallback_due = NULL WHERE id IN ({','.join('?' * len(chunk))})", chunk)
    return decode_rows(tx, "deliveries", rows, _fallback_row)


# -- webhooks


@attrs.frozen
class EventDelivery:
    """The delivery a webhook event is about."""

    id: str
    customer_id: str
    status: str
    channel: str | None
    address: str | None
    journey: str | None
    template: str


def find_event_delivery(
    tx: Transaction, *, delivery_id: str | None, provider_message_id: str | None, provider: str
) -> EventDelivery | None:
    """By our delivery id (echoed back in metadata), else by the provider's message id."""
    columns = "id, customer_id, status, channel, address, journey, template"
    row = None
    if delivery_id:
        row = tx.one(f"SELECT {columns} FROM deliveries WHERE id = ?", (delivery_id,))
    if row is None and provider_message_id:
        row = tx.one(f"SELECT {columns} FROM deliveries WHERE provider_message_id = ? AND provider = ?",
                     (provider_message_id, provider))
    return None if row is None else EventDelivery(*row)


def set_event_status(tx: Transaction, delivery_id: str, status: str, error: str | None, now: float) -> None:
    """A status a provider reported; a failure makes a timed fallback due at once."""
    tx.execute(
        "UPDATE deliveries SET status = ?, error = COALESCE(?, error), fallback_due = CASE WHEN ? = 'failed' "
        "AND fallback_after IS NOT NULL THEN ? ELSE NULL END, updated_at = ? WHERE id = ?",
        (status, error, status, now, now, delivery_id),
    )


def latest_prompt(
    tx: Transaction, customer_id: str, templates: Sequence[str], *, since: float, until: float
) -> str | None:
    """The latest of `templates` sent to the customer by SMS between `since` and `until` (a double
    opt-in prompt a YES answers)."""
    marks = ",".join("?" * len(templates))
    found = tx.scalar(
        f"SELECT id FROM deliveries WHERE customer_id = ? AND channel = 'sms' AND template IN ({marks}) "
        "AND status IN ('sent', 'delivered') AND sent_at IS NOT NULL AND sent_at >= ? AND sent_at <= ? "
        "ORDER BY sent_at DESC LIMIT 1",
        (customer_id, *templates, since, until),
    )
    return None if found is None else str(found)


# -- written by journeys and broadcasts: a batch of queued messages, a broadcast's progress
@attrs.frozen(kw_only=True, slots=True)
class QueuedDelivery:
    """A message a journey step queues (`key` is its idempotency key, run_id:step)."""

    id: str
    key: str
    customer_id: str
    template: str
    channels: Sequence[str]
    purpose: str
    data: Mapping[str, Any]
    due_at: float
    run_id: str | None = None
    journey: str | None = None
    step: str | None = None


def insert_queued_deliveries(tx: Transaction, rows: Sequence[QueuedDelivery], now: float) -> int:
    """Queue many messages in one statement; a key already queued is left as it is. Returns how
    many are new (fewer than `rows`: some key was taken, and its row holds another id)."""
    if not rows:
        return 0
    source, (did, key, cid, template, channels, purpose, data, run_id, journey, step, due) = json_table(
        tx, "ttttjtjtttf")
    stage_deliveries(tx, [r.id for r in rows])  # "queued" on the event stream (a key already taken: no row, no event)
    return tx.execute(
        "INSERT INTO deliveries (id, idempotency_key, customer_id, template, channels, purpose, data, run_id, "
        f"journey, step, status, due_at, decisions, created_at, updated_at) SELECT {did}, {key}, {cid}, {template}, "
        f"{channels}, {purpose}, {data}, {run_id}, {journey}, {step}, 'queued', {due}, '[]', ?, ? FROM {source} "
        "WHERE TRUE ON CONFLICT (idempotency_key) DO NOTHING",
        (now, now, dumps([[r.id, r.key, r.customer_id, r.template, list(r.channels), r.purpose, dict(r.data),
                           r.run_id, r.journey, r.step, r.due_at] for r in rows])),
    )


def broadcast_delivery_counts(tx: Transaction, broadcast_id: str) -> dict[str, int]:
    """A broadcast's deliveries counted by status."""
    return {str(status): int(n) for status, n in tx.query(
        "SELECT status, COUNT(*) FROM deliveries WHERE broadcast_id = ? GROUP BY status", (broadcast_id,)
    )}


def cancel_broadcast_deliveries(tx: Transaction, broadcast_id: str, now: float) -> list[str]:
    """Cancel a broadcast's deliveries that are queued but not yet being sent, logging why; the ids cancelled."""
    cancelled = [did for (did,) in tx.query(
        "UPDATE deliveries SET status = 'cancelled', error = 'broadcast cancelled', updated_at = ? "
        "WHERE broadcast_id = ? AND status IN ('queued', 'deferred') RETURNING id", (now, broadcast_id),
    )]
    stage_deliveries(tx, cancelled)
    append_decisions(tx, [LogEntry(delivery_id=did, at=now, outcome="cancelled", channel=None,
                                   reason="broadcast cancelled", actor="broadcast") for did in cancelled])
    return cancelled


# -- trace context (migration 0020), written and read only when telemetry is on


def set_traceparent(tx: Transaction, ids: Sequence[str], traceparent: str) -> None:
    """Keep the W3C trace context of whoever queued these deliveries (the first queuing wins)."""
    tx.executemany("UPDATE deliveries SET traceparent = ? WHERE id = ? AND traceparent IS NULL",
                   [(traceparent, did) for did in ids])


def traceparents(tx: Transaction, ids: Sequence[str]) -> dict[str, str]:
    """The stored trace context of those of `ids` that have one."""
    found: dict[str, str] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        found.update((str(did), str(tp)) for did, tp in tx.query(
            f"SELECT id, traceparent FROM deliveries WHERE id IN ({','.join('?' * len(chunk))}) "
            "AND traceparent IS NOT NULL", chunk))
    return found
