"""`Delivery`: what `omni.deliveries(...)` returns, one message and the story of its sending."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from .._clock import to_datetime
from .._errors import ValidationError
from ..store import Transaction, decode_rows, json_array, json_object, text, timestamp
from ._outbox import DELIVERY_STATUSES

__all__ = ["DELIVERY_COLUMNS", "Decision", "Delivery", "delivery_from_row", "query_deliveries"]


@attrs.frozen(kw_only=True)
class Decision:
    """One entry of a delivery's decision log: what the dispatcher did and why."""

    at: datetime
    action: str
    channel: str | None
    reason: str


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


DELIVERY_COLUMNS = (
    "id, customer_id, template, status, channel, channels, provider, purpose, attempts, provider_message_id, error, "
    "decisions, cost, segments, run_id, journey, step, idempotency_key, data, due_at, sent_at, parent_id, "
    "created_at, updated_at"
)


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    (did, cid, template, status, channel, channels, provider, purpose, attempts, pmid, error, decisions, cost,
     segments, run_id, journey, step, key, data, due_at, sent_at, parent_id, created_at, updated_at) = row
    return Delivery(
        id=text(did), customer_id=text(cid), template=text(template), status=text(status), channel=channel,
        channels=tuple(json_array(channels)), provider=provider, purpose=purpose, attempts=int(attempts),
        provider_message_id=pmid, error=error,
        decisions=tuple(
            Decision(at=to_datetime(timestamp(d["at"])), action=d["action"], channel=d.get("channel"),
                     reason=d["reason"])
            for d in json_array(decisions)
        ),
        cost=cost, segments=segments, run_id=run_id, journey=journey, step=step, idempotency_key=key,
        data=json_object(data), due_at=to_datetime(timestamp(due_at)),
        sent_at=to_datetime(timestamp(sent_at)) if sent_at else None, parent_id=parent_id,
        created_at=to_datetime(timestamp(created_at)), updated_at=to_datetime(timestamp(updated_at)),
    )


def query_deliveries(
    tx: Transaction,
    *,
    customer_id: str | None = None,
    run_id: str | None = None,
    status: str | Sequence[str] | None = None,
    journey: str | None = None,
    channel: str | None = None,
    limit: int | None = None,
) -> list[Delivery]:
    """Deliveries matching every filter given, oldest first."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("customer_id", customer_id), ("run_id", run_id), ("journey", journey),
                          ("channel", channel)):
        if value is not None:
            if not isinstance(value, str):
                raise ValidationError("expected a string", field=column, value=value)
            where.append(f"{column} = ?")
            params.append(value)
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        for s in statuses:
            if s not in DELIVERY_STATUSES:
                raise ValidationError(f"expected one of {', '.join(DELIVERY_STATUSES)}", field="status", value=s)
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        params.extend(statuses)
    sql = f"SELECT {DELIVERY_COLUMNS} FROM deliveries"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at, id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return decode_rows(tx, "deliveries", tx.query(sql, params), delivery_from_row)
