"""How far a broadcast has got: recipients queued, and its deliveries counted by status. Cancelling."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from .._clock import to_datetime
from .._errors import ValidationError
from ..store import Transaction
from ..store._broadcasts import (
    BroadcastProgress,
    broadcast_progress,
    cancel_broadcast_row,
    list_broadcast_progress,
)
from ..store._deliveries import broadcast_delivery_counts, cancel_broadcast_deliveries

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


def _status(tx: Transaction, progress: BroadcastProgress) -> BroadcastStatus:
    counts = dict.fromkeys(("queued", "deferred", "sending", *_SETTLED), 0)
    counts.update(broadcast_delivery_counts(tx, progress.id))
    state = progress.state
    if state == "enqueued" and not any(counts[s] for s in (*_WAITING, "sending")):
        state = "done"
    return BroadcastStatus(
        id=progress.id, name=progress.name, template=progress.template, state=state, audience=progress.audience,
        enqueued=progress.enqueued, queued=counts["queued"] + counts["deferred"], sending=counts["sending"],
        sent=counts["sent"], delivered=counts["delivered"], skipped=counts["skipped"], failed=counts["failed"],
        cancelled=counts["cancelled"], error=progress.error, starts_at=to_datetime(progress.start_at),
        created_at=to_datetime(progress.created_at),
        enqueued_at=to_datetime(progress.enqueued_at) if progress.enqueued_at else None,
    )


def _check_id(broadcast_id: Any) -> str:
    if not isinstance(broadcast_id, str) or not broadcast_id:
        raise ValidationError("expected a broadcast id", field="broadcast_id", value=broadcast_id)
    return broadcast_id


def broadcast_status(tx: Transaction, broadcast_id: str) -> BroadcastStatus:
    return _status(tx, broadcast_progress(tx, _check_id(broadcast_id)))


def list_broadcasts(tx: Transaction, *, limit: int = 100) -> list[BroadcastStatus]:
    """The latest broadcasts first."""
    return [_status(tx, p) for p in list_broadcast_progress(tx, limit=limit)]


def cancel_broadcast(tx: Transaction, broadcast_id: str, now: float) -> BroadcastStatus:
    """Stop queueing, and cancel what is queued but not yet being sent. Cancelling twice is harmless."""
    status = broadcast_status(tx, broadcast_id)
    if status.state != "cancelled":
        cancel_broadcast_row(tx, broadcast_id, now)
        cancel_broadcast_deliveries(tx, broadcast_id, now)
    return broadcast_status(tx, broadcast_id)
