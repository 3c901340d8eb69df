"""The outbound event stream (migration 0020): touchpoints and delivery changes, in commit order.

Writers stage what changed (`stage_touchpoints`, `stage_deliveries`, called by the `Recorder`);
the rows are written just before the transaction commits, after a transaction-level lock on
PostgreSQL, so `seq` values become visible in the order they were given out: a reader resuming
after `seq` n never misses a smaller one committed later (concurrent writers queue on that lock
for the length of one INSERT and the commit). SQLite has one writer at a time anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from ._base import Transaction, dumps, loads

__all__ = [
    "EVENT_KINDS", "StoredEvent", "ack_outbox", "due_outbox", "fill_outbox", "next_outbox_due", "read_events",
    "retry_outbox", "stage_deliveries", "stage_touchpoints",
]

EVENT_KINDS = ("touchpoint", "delivery")

#: The delivery columns an event carries: ids and states, never an address or a body.
_DELIVERY_DATA = ("id", "customer_id", "status", "channel", "provider", "template", "attempts",
                  "provider_message_id", "journey", "run_id", "step", "broadcast_id")


@attrs.frozen(slots=True)
class StoredEvent:
    seq: int
    kind: str
    subject_id: str
    customer_id: str | None
    name: str
    channel: str | None
    data: dict[str, Any]
    occurred_at: float
    recorded_at: float


@attrs.define
class _Staged:
    touchpoints: dict[str, None] = attrs.Factory(dict)
    deliveries: dict[str, None] = attrs.Factory(dict)


def _staged(tx: Transaction) -> _Staged:
    staged: _Staged | None = getattr(tx, "_events", None)
    if staged is None:
        staged = _Staged()
        tx._events = staged  # type: ignore[attr-defined]
        tx.before_commit(lambda: _write(tx, staged))
    return staged


def stage_touchpoints(tx: Transaction, rows: Sequence[Sequence[Any]]) -> None:
    """Touchpoint rows (id, customer_id, channel, name, properties JSON, occurred_at, recorded_at)
    stored in `tx`, to become events when it commits (copied from the stored rows then, by id)."""
    if rows:
        _staged(tx).touchpoints.update(dict.fromkeys(str(row[0]) for row in rows))


def stage_deliveries(tx: Transaction, ids: Sequence[str]) -> None:
    """Deliveries whose status changed in `tx`; their state as `tx` ends becomes an event each."""
    if ids:
        _staged(tx).deliveries.update(dict.fromkeys(ids))


def _write(tx: Transaction, staged: _Staged) -> None:
    if not staged.touchpoints and not staged.deliveries:
        return
    pg = tx.dialect.name == "postgresql"
    if pg:  # commit-ordered seq: held until this transaction ends
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('omnisdk.events.' || current_schema()))")
    _copy(tx, staged.touchpoints, "touchpoints", "t", "'touchpoint', t.id, t.customer_id, t.name, t.channel, "
          "t.properties, t.occurred_at, t.recorded_at")
    pairs = ", ".join(f"'{c}', d.{c}" for c in _DELIVERY_DATA)
    data = f"jsonb_build_object({pairs})" if pg else f"json_object({pairs})"
    _copy(tx, staged.deliveries, "deliveries", "d",
          f"'delivery', d.id, d.customer_id, d.status, d.channel, {data}, d.updated_at, d.updated_at")


def _copy(tx: Transaction, staged: dict[str, None], table: str, alias: str, columns: str) -> None:
    """One event per staged id, in the order staged, made from the row `table` holds for it now
    (one statement for the whole transaction's ids); the ids are taken off `staged`."""
    if not staged:
        return
    ids = list(staged)
    staged.clear()
    pg = tx.dialect.name == "postgresql"
    source = ("jsonb_array_elements_text(CAST(? AS JSONB)) WITH ORDINALITY AS r(value, n)" if pg
              else "json_each(?) AS r")
    tx.execute(
        "INSERT INTO events (kind, subject_id, customer_id, name, channel, data, occurred_at, recorded_at) "
        f"SELECT {columns} FROM {source} JOIN {table} {alias} ON {alias}.id = r.value "
        f"ORDER BY {'r.n' if pg else 'r.key'}",
        (dumps(ids),),
    )


def read_events(tx: Transaction, *, after: int, limit: int, kinds: Sequence[str] = ()) -> list[StoredEvent]:
    """Events with `seq` > `after`, oldest first."""
    where = "seq > ?"
    params: list[Any] = [after, *kinds]
    if kinds:
        where += f" AND kind IN ({','.join('?' * len(kinds))})"
    rows = tx.query(
        "SELECT seq, kind, subject_id, customer_id, name, channel, data, occurred_at, recorded_at FROM events "
        f"WHERE {where} ORDER BY seq LIMIT ?", (*params, limit),
    )
    return [StoredEvent(int(r[0]), r[1], r[2], r[3], r[4], r[5], loads(r[6]) or {}, float(r[7]), float(r[8]))
            for r in rows]


# -- per-endpoint outboxes of the event webhooks


def fill_outbox(tx: Transaction, endpoint: str, kinds: Sequence[str], now: float, limit: int) -> int:
    """Take the endpoint's next events (of `kinds`) into its outbox and move its cursor; how many."""
    lock = " FOR UPDATE" if tx.dialect.name == "postgresql" else ""  # one filler per endpoint at a time
    cursor = tx.scalar(f"SELECT seq FROM event_webhook_cursors WHERE endpoint = ?{lock}", (endpoint,))
    if cursor is None:
        tx.execute("INSERT INTO event_webhook_cursors (endpoint, seq) VALUES (?, 0) ON CONFLICT (endpoint) DO NOTHING",
                   (endpoint,))
        cursor = 0
    events = read_events(tx, after=int(cursor), limit=limit, kinds=kinds)
    if not events:
        return 0
    tx.executemany(
        "INSERT INTO event_webhook_outbox (endpoint, seq, customer_key, due_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (endpoint, seq) DO NOTHING",
        [(endpoint, e.seq, e.customer_id or "", now) for e in events],
    )
    tx.execute("UPDATE event_webhook_cursors SET seq = ? WHERE endpoint = ?", (events[-1].seq, endpoint))
    return len(events)


def due_outbox(tx: Transaction, endpoint: str, now: float, limit: int) -> list[tuple[StoredEvent, int]]:
    """Each customer's oldest outstanding event for `endpoint`, when due: (event, attempts so far)."""
    rows = tx.query(
        "SELECT o.seq, o.attempts FROM event_webhook_outbox o WHERE o.endpoint = ? AND o.due_at <= ? "
        "AND o.seq = (SELECT MIN(h.seq) FROM event_webhook_outbox h WHERE h.endpoint = o.endpoint "
        "AND h.customer_key = o.customer_key) ORDER BY o.seq LIMIT ?",
        (endpoint, now, limit),
    )
    if not rows:
        return []
    attempts = {int(seq): int(n) for seq, n in rows}
    marks = ",".join("?" * len(attempts))
    found = tx.query(
        "SELECT seq, kind, subject_id, customer_id, name, channel, data, occurred_at, recorded_at FROM events "
        f"WHERE seq IN ({marks}) ORDER BY seq", list(attempts),
    )
    return [(StoredEvent(int(r[0]), r[1], r[2], r[3], r[4], r[5], loads(r[6]) or {}, float(r[7]), float(r[8])),
             attempts[int(r[0])]) for r in found]


def ack_outbox(tx: Transaction, endpoint: str, seqs: Sequence[int]) -> None:
    """The endpoint acknowledged these events."""
    tx.executemany("DELETE FROM event_webhook_outbox WHERE endpoint = ? AND seq = ?", [(endpoint, s) for s in seqs])


def retry_outbox(tx: Transaction, endpoint: str, retries: Sequence[tuple[int, float, str]]) -> None:
    """(seq, due_at, status) of events to try again; their customers' later events wait behind them."""
    tx.executemany(
        "UPDATE event_webhook_outbox SET attempts = attempts + 1, due_at = ?, last_status = ? "
        "WHERE endpoint = ? AND seq = ?",
        [(due, status, endpoint, seq) for seq, due, status in retries],
    )


def next_outbox_due(tx: Transaction, endpoints: Sequence[str]) -> float | None:
    """When an endpoint's outbox next has an event due (None when every outbox is empty)."""
    if not endpoints:
        return None
    value = tx.scalar(  # of each customer's oldest event: the later ones wait for it, whatever their due_at
        f"SELECT MIN(o.due_at) FROM event_webhook_outbox o WHERE o.endpoint IN ({','.join('?' * len(endpoints))}) "
        "AND o.seq = (SELECT MIN(h.seq) FROM event_webhook_outbox h WHERE h.endpoint = o.endpoint "
        "AND h.customer_key = o.customer_key)", list(endpoints))
    return None if value is None else float(value)
