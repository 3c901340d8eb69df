"""How far a broadcast has got: recipients queued, and its deliveries counted by status. Cancelling."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from .._clock import to_datetime
from .._errors import NotFoundError, ValidationError
from ..store import Transaction, decode_row, decode_rows, timestamp

__all__ = ["BROADCAST_STATES", "BroadcastStatus", "broadcast_status", "cancel_broadcast", "list_broadcasts"]

#: Stored states; a broadcast whose every delivery is settled reports "done".
BROADCAST_STATES = ("scheduled", "enqueueing", "enqueued", "cancelled", "done")
_WAITING = ("queued", "deferred")
_SETTLED = ("sent", "delivered", "skipped", "failed", "cancelled")


@attrs.frozen(kw_only=True)
class BroadcastStatus:
    """Progress: `audience` is the segment's size when streaming started; `enqueued` the deliveries
    queued so far; the other counts are those deliveries by status (`queued` includes deferred)."""

    id: str
    name: str | None
    template: str
    state: str
    audience: int | None
    enqueued: int
    queued: int
    sending: int
    sent: int
    delivered: int
    skipped: int
    failed: int
    cancelled: int
    error: str | None
    starts_at: datetime
    created_at: datetime
    enqueued_at: datetime | None

    @property
    def percent_enqueued(self) -> float:
        """Share of the audience queued so far (100 once every page is queued)."""
        if self.state in ("enqueued", "done"):
            return 100.0
        return min(100.0, 100.0 * self.enqueued / self.audience) if self.audience else 0.0

    @property
    def percent(self) -> float:
        """Share of the recipients whose delivery is settled (sent, delivered, skipped, failed or cancelled)."""
        total = self.enqueued if self.state in ("enqueued", "done", "cancelled") else max(self.audience or 0,
                                                                                          self.enqueued)
        settled = self.sent + self.delivered + self.skipped + self.failed + self.cancelled
        if not total:
            return 100.0 if self.state == "done" else 0.0
        return 100.0 * settled / total


_COLUMNS = "id, name, template, status, audience, enqueued, error, start_at, created_at, enqueued_at"


def _status(tx: Transaction, row: Sequence[Any]) -> BroadcastStatus:
    bid, name, template, state, audience, enqueued, error, start_at, created_at, enqueued_at = row
    counts = dict.fromkeys(("queued", "deferred", "sending", *_SETTLED), 0)
    for status, n in tx.query("SELECT status, COUNT(*) FROM deliveries WHERE broadcast_id = ? GROUP BY status",
                              (bid,)):
        counts[status] = int(n)
    if state == "enqueued" and not any(counts[s] for s in (*_WAITING, "sending")):
        state = "done"
    return BroadcastStatus(
        id=bid, name=name, template=template, state=state, audience=None if audience is None else int(audience),
        enqueued=int(enqueued), queued=counts["queued"] + counts["deferred"], sending=counts["sending"],
        sent=counts["sent"], delivered=counts["delivered"], skipped=counts["skipped"], failed=counts["failed"],
        cancelled=counts["cancelled"], error=error, starts_at=to_datetime(timestamp(start_at)),
        created_at=to_datetime(timestamp(created_at)),
        enqueued_at=to_datetime(timestamp(enqueued_at)) if enqueued_at else None,
    )


def _check_id(broadcast_id: Any) -> str:
    if not isinstance(broadcast_id, str) or not broadcast_id:
        raise ValidationError("expected a broadcast id", field="broadcast_id", value=broadcast_id)
    return broadcast_id


def broadcast_status(tx: Transaction, broadcast_id: str) -> BroadcastStatus:
    row = tx.one(f"SELECT {_COLUMNS} FROM broadcasts WHERE id = ?", (_check_id(broadcast_id),))
    if row is None:
        raise NotFoundError(f"no broadcast {broadcast_id!r}")
    status = decode_row(tx, "broadcasts", row, lambda r: _status(tx, r))
    if status is None:
        raise NotFoundError(f"broadcast {broadcast_id!r} cannot be read and is quarantined (omnisdk quarantine list)")
    return status


def list_broadcasts(tx: Transaction, *, limit: int = 100) -> list[BroadcastStatus]:
    """The latest broadcasts first."""
    rows = tx.query(f"SELECT {_COLUMNS} FROM broadcasts ORDER BY created_at DESC, id DESC LIMIT ?", (int(limit),))
    return decode_rows(tx, "broadcasts", rows, lambda r: _status(tx, r))


def cancel_broadcast(tx: Transaction, broadcast_id: str, now: float) -> BroadcastStatus:
    """Stop queueing, and cancel what is queued but not yet being sent. Cancelling twice is harmless."""
    status = broadcast_status(tx, broadcast_id)
    if status.state != "cancelled":
        tx.execute("UPDATE broadcasts SET status = 'cancelled', lease_owner = NULL, lease_until = NULL, "
                   "updated_at = ? WHERE id = ?", (now, broadcast_id))
        tx.execute("UPDATE deliveries SET status = 'cancelled', error = 'broadcast cancelled', updated_at = ? "
                   "WHERE broadcast_id = ? AND status IN ('queued', 'deferred')", (now, broadcast_id))
    return broadcast_status(tx, broadcast_id)
