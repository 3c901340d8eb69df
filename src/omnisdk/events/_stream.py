"""`omni.events(after=cursor)`: the ordered, resumable feed of touchpoints and delivery changes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from .._clock import to_datetime
from .._errors import ValidationError
from ..store import SQLStore
from ..store._events import EVENT_KINDS, StoredEvent, read_events

__all__ = ["Event", "EventPage", "check_kinds", "event_from_stored", "page_of_events"]

#: The most events one page holds.
MAX_PAGE = 10_000


@attrs.frozen(kw_only=True)
class Event:
    """One entry of the stream: a touchpoint recorded (`kind="touchpoint"`, `name` its event name)
    or a delivery's new status (`kind="delivery"`, `name` the status). `id` is stable: a receiver
    that sees it twice (webhooks are at-least-once) keeps one."""

    id: str
    seq: int
    kind: str
    subject_id: str
    customer_id: str | None
    name: str
    channel: str | None
    data: dict[str, Any]
    occurred_at: datetime
    recorded_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The event as the webhooks post it."""
        return {"id": self.id, "seq": self.seq, "kind": self.kind, "subject_id": self.subject_id,
                "customer_id": self.customer_id, "name": self.name, "channel": self.channel, "data": self.data,
                "occurred_at": self.occurred_at.isoformat(), "recorded_at": self.recorded_at.isoformat()}


@attrs.frozen
class EventPage:
    """A page of events and the cursor to pass as `after=` for the next one (the same cursor when
    the page is empty: nothing new yet)."""

    events: list[Event]
    cursor: str


def event_from_stored(row: StoredEvent) -> Event:
    return Event(id=f"evt_{row.seq}", seq=row.seq, kind=row.kind, subject_id=row.subject_id,
                 customer_id=row.customer_id, name=row.name, channel=row.channel, data=row.data,
                 occurred_at=to_datetime(row.occurred_at), recorded_at=to_datetime(row.recorded_at))


def check_kinds(kinds: Sequence[str] | None, field: str = "kinds") -> tuple[str, ...]:
    if kinds is None:
        return ()
    if isinstance(kinds, str) or not all(isinstance(k, str) for k in kinds):
        raise ValidationError("expected a list of event kinds", field=field, value=kinds)
    for kind in kinds:
        if kind not in EVENT_KINDS:
            raise ValidationError(f"unknown event kind; expected one of {', '.join(EVENT_KINDS)}", field=field,
                                  value=kind)
    return tuple(kinds)


def _cursor(after: str | int | None) -> int:
    if after is None:
        return 0
    if isinstance(after, int) and not isinstance(after, bool) and after >= 0:
        return after
    if isinstance(after, str) and after.isascii() and after.isdigit() and len(after) <= 19:
        return int(after)
    raise ValidationError("expected a cursor from a previous EventPage", field="after", value=after)


def page_of_events(
    store: SQLStore, *, after: str | int | None, limit: int, kinds: Sequence[str] | None
) -> EventPage:
    """The events after `after` (oldest first, up to `limit`), read in one transaction."""
    start = _cursor(after)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"expected a whole number from 1 to {MAX_PAGE}", field="limit", value=limit)
    wanted = check_kinds(kinds)
    with store.transaction(immediate=False) as tx:
        rows = read_events(tx, after=start, limit=limit, kinds=wanted)
    events = [event_from_stored(row) for row in rows]
    return EventPage(events, str(events[-1].seq if events else start))
