"""A broadcast's plan: what to send, to which segment, and when each recipient's message is due.

The plan is checked and stored in one row before anything is queued, so the worker that streams
the segment (`_worker.py`) can be any worker, in any process, after any crash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any, Literal, cast

import attrs

from .._clock import to_datetime
from .._errors import ValidationError
from .._touchpoints import choose_channels, new_id
from ..segments import Condition, Segment
from ..store import Transaction
from ..store._broadcasts import BroadcastPlan, insert_broadcast
from ..store._segments import compile_segment

__all__ = ["Broadcast", "Timing", "broadcast_from_plan", "plan_broadcast"]

#: The easternmost UTC offset in use: a local time arrives there first.
_EARLIEST = timezone(timedelta(hours=14))
#: Start streaming a local-time broadcast this long before the first zone's moment.
_LEAD = 3600.0


@attrs.frozen(kw_only=True)
class Timing:
    """When each recipient's message is due: at `send_at`; at `local_time` on/after `local_date` in
    their zone; or at their best time within `within` seconds from `send_at`."""

    mode: Literal["at", "local_time", "best"]
    send_at: float
    local_time: time | None = None
    local_date: date | None = None
    within: float | None = None

    def local_due(self, zone: tzinfo, now: float) -> float:
        """`local_time` in `zone` on `local_date` (else today there), or the first later day when that has
        passed by `now` (a broadcast queued late sends the next day, at the same local time)."""
        assert self.local_time is not None
        day = self.local_date or datetime.fromtimestamp(now, zone).date()
        due = datetime.combine(day, self.local_time, zone).timestamp()
        while due < now:
            day += timedelta(days=1)
            due = datetime.combine(day, self.local_time, zone).timestamp()
        return due


@attrs.frozen(kw_only=True)
class Broadcast:
    """One message to a segment, as planned. Progress is `omni.broadcast_status(id)`."""

    id: str
    name: str | None
    template: str
    channels: tuple[str, ...]
    purpose: str
    data: Mapping[str, Any]
    timing: Timing
    #: When the worker starts streaming the segment (its windows are evaluated at that moment).
    starts_at: datetime
    created_at: datetime


def broadcast_from_plan(plan: BroadcastPlan) -> Broadcast:
    mode = cast(Literal["at", "local_time", "best"], plan.timing)  # as `_timing` chose it
    timing = Timing(mode=mode, send_at=plan.send_at, local_time=plan.local_time, local_date=plan.local_date,
                    within=plan.within)
    return Broadcast(
        id=plan.id, name=plan.name, template=plan.template, channels=plan.channels, purpose=plan.purpose,
        data=plan.data, timing=timing, starts_at=to_datetime(plan.start_at), created_at=to_datetime(plan.created_at),
    )


def _timing(
    at: Any, local_time: Any, send_time: Any, within: Any, now: float
) -> tuple[Timing, float]:
    """The timing, and when streaming the segment should start."""
    if at is not None and not isinstance(at, datetime):
        raise ValidationError("expected a datetime", field="at", value=at)
    if local_time is not None and not isinstance(local_time, time):
        raise ValidationError("expected a datetime.time (the local clock time)", field="local_time", value=local_time)
    if send_time not in (None, "best"):
        raise ValidationError("expected 'best' (or None)", field="send_time", value=send_time)
    if within is not None and (send_time != "best" or not isinstance(within, timedelta) or within <= timedelta()):
        raise ValidationError("a positive timedelta, with send_time='best'", field="within", value=within)
    if local_time is not None and send_time is not None:
        raise ValidationError("give local_time or send_time='best', not both", field="send_time")
    send_at = now if at is None else (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
    if local_time is not None:
        local_date = at.date() if at is not None else None
        first = datetime.combine(local_date, local_time, _EARLIEST).timestamp() - _LEAD if local_date else now
        return Timing(mode="local_time", send_at=send_at, local_time=local_time, local_date=local_date), max(now, first)
    if send_time == "best":
        seconds = (within or timedelta(hours=24)).total_seconds()
        return Timing(mode="best", send_at=send_at, within=seconds), max(now, send_at)
    return Timing(mode="at", send_at=send_at), max(now, send_at)


def plan_broadcast(
    tx: Transaction,
    *,
    template: str,
    segment: Segment | Condition,
    now: float,
    at: datetime | None = None,
    local_time: time | None = None,
    send_time: str | None = None,
    within: timedelta | None = None,
    channel: str | None = None,
    channels: Sequence[str] | None = None,
    purpose: str = "marketing",
    data: Mapping[str, Any] | None = None,
    name: str | None = None,
) -> Broadcast:
    """Check a broadcast's arguments and store its plan; the worker does the rest."""
    condition = segment.condition if isinstance(segment, Segment) else segment
    if not isinstance(condition, Condition):
        raise ValidationError("expected a segment or a segment condition (did, trait, consented…)", field="segment")
    if purpose not in ("marketing", "transactional"):
        raise ValidationError("expected 'marketing' or 'transactional'", field="purpose", value=purpose)
    if data is not None and not isinstance(data, Mapping):
        raise ValidationError("expected a dict", field="data", value=data)
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValidationError("expected a non-empty string", field="name", value=name)
    chosen = choose_channels(channel, channels, single_field="channels[0]")
    timing, start_at = _timing(at, local_time, send_time, within, now)
    sql, params, now_at = compile_segment(condition, tx.dialect)
    plan = BroadcastPlan(
        id="bc_" + new_id(), name=name, template=template, channels=chosen, purpose=purpose, data=dict(data or {}),
        timing=timing.mode, send_at=timing.send_at, local_time=timing.local_time, local_date=timing.local_date,
        within=timing.within, start_at=start_at, created_at=now,
    )
    insert_broadcast(tx, plan, segment_sql=sql, segment_params=params, segment_now=now_at, now=now)
    return broadcast_from_plan(plan)
