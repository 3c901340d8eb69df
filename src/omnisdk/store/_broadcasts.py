"""Broadcasts: plans, pages and progress.

Every SQL statement about this table lives here (see docs/architecture.md), and the reads of
customers a broadcast makes through the segment SQL stored with its plan."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, time
from typing import Any

import attrs

from ._base import Transaction, dumps
from ._quarantine import decode_found, decode_row, decode_rows
from ._rows import json_array, json_object, text, timestamp

__all__ = [
    "BroadcastPlan",
    "BroadcastProgress",
    "ClaimedBroadcast",
    "audience_page",
    "broadcast_cursor",
    "broadcast_progress",
    "cancel_broadcast_row",
    "claim_broadcast",
    "count_audience",
    "finish_enqueueing",
    "insert_broadcast",
    "list_broadcast_progress",
    "next_broadcast_due",
    "record_broadcast_failure",
    "record_page",
    "renew_broadcast_lease",
    "set_audience",
]

_PLAN_COLUMNS = (
    "id, name, template, channels, purpose, data, timing, send_at, local_time, local_date, within_seconds, start_at, "
    "created_at"
)
_PROGRESS_COLUMNS = "id, name, template, status, audience, enqueued, error, start_at, created_at, enqueued_at"


@attrs.frozen(kw_only=True, slots=True)
class BroadcastPlan:
    """A broadcast's plan as stored: what to send, when (`timing` mode and its fields), from when."""

    id: str
    name: str | None
    template: str
    channels: tuple[str, ...]
    purpose: str
    data: dict[str, Any]
    timing: str
    send_at: float
    local_time: time | None
    local_date: date | None
    within: float | None
    start_at: float
    created_at: float


@attrs.define(kw_only=True, slots=True)
class ClaimedBroadcast:
    """A broadcast leased for streaming: its plan, and its segment as SQL over `customers AS c`
    with the parameters (its "now" fixed at the first claim)."""

    plan: BroadcastPlan
    where: str
    params: list[Any]
    audience: int | None


@attrs.frozen(kw_only=True, slots=True)
class BroadcastProgress:
    """A broadcast's stored state and counters (its deliveries are counted elsewhere)."""

    id: str
    name: str | None
    template: str
    state: str
    audience: int | None
    enqueued: int
    error: str | None
    start_at: float
    created_at: float
    enqueued_at: float | None


def _plan(row: Sequence[Any]) -> BroadcastPlan:
    bid, name, template, channels, purpose, data, mode, send_at, local_t, local_d, within, start_at, created = row
    return BroadcastPlan(
        id=text(bid), name=name, template=text(template), channels=tuple(json_array(channels)), purpose=text(purpose),
        data=json_object(data), timing=text(mode), send_at=timestamp(send_at),
        local_time=time.fromisoformat(local_t) if local_t else None,
        local_date=date.fromisoformat(local_d) if local_d else None,
        within=float(within) if within is not None else None, start_at=timestamp(start_at),
        created_at=timestamp(created),
    )


def _progress(row: Sequence[Any]) -> BroadcastProgress:
    bid, name, template, state, audience, enqueued, error, start_at, created_at, enqueued_at = row
    return BroadcastProgress(
        id=bid, name=name, template=template, state=state, audience=None if audience is None else int(audience),
        enqueued=int(enqueued), error=error, start_at=timestamp(start_at), created_at=timestamp(created_at),
        enqueued_at=timestamp(enqueued_at) if enqueued_at else None,
    )


def insert_broadcast(
    tx: Transaction, plan: BroadcastPlan, *, segment_sql: str, segment_params: Sequence[Any],
    segment_now: Sequence[int], now: float,
) -> None:
    """Store a plan; `segment_sql` (a condition over `customers AS c`) is what its pages stream,
    with `segment_params`, whose positions `segment_now` take the moment of the first claim."""
    tx.execute(
        "INSERT INTO broadcasts (id, name, template, channels, purpose, data, segment_sql, segment_params, "
        "segment_now, timing, send_at, local_time, local_date, within_seconds, status, start_at, after_customer, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'scheduled', ?, '', ?, ?)",
        (plan.id, plan.name, plan.template, dumps(list(plan.channels)), plan.purpose, dumps(plan.data),
         segment_sql, dumps(list(segment_params)),
         dumps(list(segment_now)), plan.timing, plan.send_at,
         plan.local_time.isoformat() if plan.local_time else None,
         plan.local_date.isoformat() if plan.local_date else None, plan.within, plan.start_at, now, now),
    )


# -- progress
def broadcast_progress(tx: Transaction, broadcast_id: str) -> BroadcastProgress:
    row = tx.one(f"SELECT {_PROGRESS_COLUMNS} FROM broadcasts WHERE id = ?", (broadcast_id,))
    return decode_found(tx, "broadcasts", row, _progress, missing=f"no broadcast {broadcast_id!r}",
                        name=f"broadcast {broadcast_id!r}")


def list_broadcast_progress(tx: Transaction, *, limit: int) -> list[BroadcastProgress]:
    """The latest broadcasts first."""
    rows = tx.query(f"SELECT {_PROGRESS_COLUMNS} FROM broadcasts ORDER BY created_at DESC, id DESC LIMIT ?",
                    (int(limit),))
    return decode_rows(tx, "broadcasts", rows, _progress)


def cancel_broadcast_row(tx: Transaction, broadcast_id: str, now: float) -> None:
    """Stop queueing (whoever holds its lease stops at the next page)."""
    tx.execute("UPDATE broadcasts SET status = 'cancelled', lease_owner = NULL, lease_until = NULL, "
               "updated_at = ? WHERE id = ?", (now, broadcast_id))


# -- streaming
def next_broadcast_due(tx: Transaction, owner: str) -> float | None:
    """When a broadcast is next due for `owner`: its start, or when another worker's lease runs out."""
    due = tx.scalar(
        "SELECT MIN(CASE WHEN lease_owner = ? OR lease_until IS NULL OR lease_until < start_at THEN start_at "
        "ELSE lease_until END) FROM broadcasts WHERE status IN ('scheduled', 'enqueueing')",
        (owner,),
    )
    return float(due) if due is not None else None


def _claimed(row: Sequence[Any], now: float) -> ClaimedBroadcast:
    """"now" of the segment is when the broadcast was first claimed (this claim, if none yet)."""
    *columns, sql, params, now_at, evaluated, audience = row
    values = json_array(params)
    evaluated = now if evaluated is None else timestamp(evaluated)
    for i in json_array(now_at):
        values[i] = evaluated
    return ClaimedBroadcast(plan=_plan(columns), where=text(sql), params=values,
                            audience=None if audience is None else int(audience))


def claim_broadcast(tx: Transaction, *, now: float, owner: str, until: float) -> ClaimedBroadcast | None:
    """Lease the next due broadcast to `owner` until `until` (its own first); unreadable ones are quarantined."""
    while True:
        row = tx.one(
            f"SELECT {_PLAN_COLUMNS}, segment_sql, segment_params, segment_now, evaluated_at, audience "
            "FROM broadcasts WHERE status IN ('scheduled', 'enqueueing') AND start_at <= ? "
            "AND (lease_owner = ? OR lease_until IS NULL OR lease_until < ?) "
            "ORDER BY CASE WHEN lease_owner = ? THEN 0 ELSE 1 END, start_at LIMIT 1" + tx.dialect.skip_locked,
            (now, owner, now, owner),
        )
        if row is None:
            return None
        claimed = decode_row(tx, "broadcasts", row, lambda r: _claimed(r, now))
        if claimed is not None:
            break
    tx.execute(
        "UPDATE broadcasts SET status = 'enqueueing', lease_owner = ?, lease_until = ?, "
        "evaluated_at = COALESCE(evaluated_at, ?), updated_at = ? WHERE id = ?",
        (owner, until, now, now, claimed.plan.id),
    )
    return claimed


def count_audience(tx: Transaction, claimed: ClaimedBroadcast) -> int:
    return int(tx.scalar(f"SELECT COUNT(*) FROM customers c WHERE {claimed.where}", claimed.params))


def set_audience(tx: Transaction, broadcast_id: str, audience: int, now: float) -> None:
    tx.execute("UPDATE broadcasts SET audience = ?, updated_at = ? WHERE id = ?", (audience, now, broadcast_id))


def renew_broadcast_lease(tx: Transaction, broadcast_id: str, *, owner: str, until: float) -> bool:
    """Extend `owner`'s lease; False when it lost it (cancelled, or another worker took over)."""
    return bool(tx.execute(
        "UPDATE broadcasts SET lease_until = ? WHERE id = ? AND lease_owner = ? AND status = 'enqueueing'",
        (until, broadcast_id, owner),
    ))


def broadcast_cursor(tx: Transaction, broadcast_id: str) -> str:
    """The last customer id queued (pages go in customer id order)."""
    return str(tx.scalar("SELECT after_customer FROM broadcasts WHERE id = ?", (broadcast_id,)) or "")


def audience_page(
    tx: Transaction, claimed: ClaimedBroadcast, *, after: str, limit: int
) -> list[tuple[str, str | None]]:
    """(customer id, time zone) of the next `limit` recipients after `after`."""
    return [(r[0], r[1]) for r in tx.query(
        f"SELECT c.id, c.timezone FROM customers c WHERE {claimed.where} AND c.id > ? ORDER BY c.id LIMIT ?",
        (*claimed.params, after, limit),
    )]


def record_page(tx: Transaction, broadcast_id: str, *, after: str, queued: int, now: float) -> None:
    tx.execute("UPDATE broadcasts SET after_customer = ?, enqueued = enqueued + ?, updated_at = ? WHERE id = ?",
               (after, queued, now, broadcast_id))


def finish_enqueueing(tx: Transaction, broadcast_id: str, now: float) -> None:
    tx.execute("UPDATE broadcasts SET status = 'enqueued', enqueued_at = ?, lease_owner = NULL, lease_until = NULL "
               "WHERE id = ?", (now, broadcast_id))


def record_broadcast_failure(tx: Transaction, broadcast_id: str, *, error: str, retry_at: float, now: float) -> None:
    """Why a page failed; any worker may try again from `retry_at`."""
    tx.execute("UPDATE broadcasts SET error = ?, lease_owner = NULL, lease_until = ?, updated_at = ? WHERE id = ?",
               (error[:500], retry_at, now, broadcast_id))
