"""What the dispatcher's steps hand each other: deliveries a worker holds, and the writes they end in.

A claim turns due rows into `Claimed` deliveries (leased to this worker, to send); a row left
`sending` past its lease becomes a `Doubt` (its call's outcome unknown). Both are `Held`: a
delivery of one waterfall, on one channel, through one provider. Every step ends in `Writes`:
the rows' changes, their decision-log entries and touchpoints, written together, set-based, in
the step's one transaction (`Writes.flush`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from .._recorder import Recorder
from .._touchpoints import Events
from ..policies import PastDelivery, RecentActivity, SendDecision, SendRequest
from ..providers import Outgoing
from ..store import Transaction, dumps
from ..store._decisions import LogEntry, append_decisions
from ..store._deliveries import Change, apply_changes
from ._providers import ConfiguredProvider

__all__ = ["Blocked", "Claimed", "Doubt", "Gone", "Held", "InFlight", "Writes", "entry", "policy_entry",
           "rest_of_waterfall", "sent_touchpoint"]


def rest_of_waterfall(channels: Sequence[str], channel: str | None, failed: Sequence[str]) -> list[str]:
    """The waterfall's channels after `channel`, minus those that already failed."""
    order = list(channels)
    rest = order[order.index(channel) + 1 :] if channel is not None and channel in order else []
    return [c for c in rest if c not in failed]


def entry(delivery_id: str, at: float, outcome: str, channel: str | None, reason: str) -> LogEntry:
    """A dispatcher's decision-log entry."""
    return LogEntry(delivery_id=delivery_id, at=at, outcome=outcome, channel=channel, reason=reason)


def policy_entry(
    delivery_id: str, decision: SendDecision, at: float, *, cache: dict[SendDecision, str] | None = None,
    outcome: str | None = None, reason: str | None = None,
) -> LogEntry:
    """The entry for the policies' `decision`: which policy stopped it (for a skip or a defer), and
    every check it made (encoded once per claim for equal decisions, in `cache`)."""
    checks = _encoded_checks(decision, cache)
    policy = next((c.policy for c in decision.checks if not c.passed), None) if decision.action != "send" else None
    return LogEntry(delivery_id=delivery_id, at=at, outcome=outcome or decision.action, channel=decision.channel,
                    reason=str(decision.reason) if reason is None else reason, policy=policy,
                    until=decision.until, checks=checks)


def _encoded_checks(decision: SendDecision, cache: dict[SendDecision, str] | None) -> str | None:
    if not decision.checks:
        return None
    if cache is None:
        return dumps([c.as_dict() for c in decision.checks])
    try:
        found = cache.get(decision)
        if found is None:
            found = cache[decision] = dumps([c.as_dict() for c in decision.checks])
        return found
    except TypeError:  # a plugin policy's detail that is not hashable
        return dumps([c.as_dict() for c in decision.checks])


def sent_touchpoint(held: Held, *, provider_message_id: str, at: float) -> tuple[Any, ...]:
    """The "Message Sent" touchpoint row of a delivery the provider took (its id makes it once only)."""
    properties = {"delivery_id": held.id, "template": held.template, "journey": held.journey, "step": held.step,
                  "provider": held.provider.name, "provider_message_id": provider_message_id}
    return (f"sent_{held.id}", held.customer_id, held.channel, Events.MESSAGE_SENT, dumps(properties), at, at)


@attrs.define(eq=False, kw_only=True)
class Held:
    """A delivery this worker holds, on one channel of its waterfall, through one provider."""

    id: str
    customer_id: str
    template: str
    channel: str
    channels: list[str]
    failed_channels: list[str]
    provider: ConfiguredProvider
    purpose: str
    journey: str | None
    step: str | None
    run_id: str | None
    fallback_after: float | None

    def fallback_due(self, since: float) -> float | None:
        """When the waterfall's next channel is due if this one is not delivered (`fallback_after`)."""
        if self.fallback_after and rest_of_waterfall(self.channels, self.channel, self.failed_channels):
            return since + self.fallback_after
        return None


@attrs.define(eq=False, kw_only=True)
class Claimed(Held):
    """A delivery claimed, decided, rendered and leased to this worker to send."""

    attempts: int
    outgoing: Outgoing
    #: The policies' question at the claim, asked again right before the call (`stop_revoked`).
    request: SendRequest
    claimed_at: float
    #: Claim order in this worker: earlier unrecorded sends count for a later one's caps.
    seq: int
    #: Sends logged on this channel so far, this one included (`max_attempts`).
    tries: int = 1
    #: Its provider call has started: cut off now, its outcome is unknown.
    calling: bool = False

    def past(self) -> PastDelivery:
        """This send as the policies count it until its outcome is recorded (caps, dedupe)."""
        topic = self.request.data.get("topic")
        return PastDelivery(self.id, self.template, self.channel, self.purpose, self.claimed_at, self.run_id,
                            self.step, topic if isinstance(topic, str) else None)


@attrs.define(eq=False, kw_only=True)
class Doubt(Held):
    """A `sending` delivery whose outcome is unknown, leased to this worker to look up."""

    attempted_at: float
    lookups: int
    #: What its provider is asked (None when it cannot be asked: settled by the crash policy).
    lookup: Any = None


class InFlight:
    """This worker's sends claimed but not yet recorded, per customer: the policies count them (caps,
    dedupe) while the next batch is claimed, and the re-check counts the earlier ones."""

    def __init__(self) -> None:
        self._by_customer: dict[str, dict[str, Claimed]] = {}

    def add(self, items: Sequence[Claimed]) -> None:
        for item in items:
            self._by_customer.setdefault(item.customer_id, {})[item.id] = item

    def forget(self, items: Sequence[Held]) -> None:
        for item in items:
            pasts = self._by_customer.get(item.customer_id)
            if pasts is not None:
                pasts.pop(item.id, None)
                if not pasts:
                    del self._by_customer[item.customer_id]

    def holds(self, customer_id: str, delivery_id: str) -> bool:
        """Whether this worker claimed the delivery and has not recorded it yet."""
        found = self._by_customer.get(customer_id)
        return found is not None and delivery_id in found

    def of(self, customer_id: str) -> Sequence[Claimed]:
        found = self._by_customer.get(customer_id)
        return list(found.values()) if found else []

    def counted(
        self, recent: dict[str, RecentActivity], before: Mapping[str, int] | None = None
    ) -> dict[str, RecentActivity]:
        """`recent` plus the unrecorded sends of each customer (with `before`, only those claimed
        before the customer's `before[customer_id]` claim order)."""
        for cid, activity in recent.items():
            unrecorded = self._by_customer.get(cid)
            if not unrecorded:
                continue
            limit = None if before is None else before.get(cid, -1)
            known = {d.delivery_id for d in activity.deliveries}
            for did, item in unrecorded.items():
                if did not in known and (limit is None or item.seq < limit):
                    activity = activity.with_delivery(item.past())
            recent[cid] = activity
        return recent


class Blocked:
    """Not sent: the provider's circuit opened while the batch waited."""


class Gone(Blocked):
    """Not sent: the row was cancelled (its journey exited, its broadcast was cancelled) after the claim."""


@attrs.define
class Writes:
    """One step's writes: changes to deliveries (each with its log entries and touchpoints, written
    only if the change applied), written set-based in one transaction."""

    changes: list[Change] = attrs.Factory(list)
    entries: dict[str, list[LogEntry]] = attrs.Factory(dict)
    touchpoints: dict[str, list[tuple[Any, ...]]] = attrs.Factory(dict)
    #: Changes `delivery_updated` does not hear of (a lease: the delivery's status stays).
    quiet: set[str] = attrs.Factory(set)

    def change(
        self, change: Change, *entries: LogEntry, touchpoint: tuple[Any, ...] | None = None, announce: bool = True
    ) -> None:
        self.changes.append(change)
        self.log(*entries)
        if touchpoint is not None:
            self.touchpoints.setdefault(change.id, []).append(touchpoint)
        if not announce:
            self.quiet.add(change.id)

    def log(self, *entries: LogEntry) -> None:
        """Entries of a delivery changed in this step (kept when its change applies)."""
        for item in entries:
            self.entries.setdefault(item.delivery_id, []).append(item)

    def flush(self, tx: Transaction, recorder: Recorder, load: Callable[[Sequence[str]], Sequence[Any]]) -> set[str]:
        """Write everything in `tx`; the ids changed, announced (`delivery_updated`) once `tx` commits."""
        changed = apply_changes(tx, self.changes)
        append_decisions(tx, [e for did, entries in self.entries.items() if did in changed for e in entries])
        rows = [row for did, rows in self.touchpoints.items() if did in changed for row in rows]
        if rows:
            recorder.touchpoints(tx, rows)
        ids = [change.id for change in self.changes if change.id in changed and change.id not in self.quiet]
        if ids:
            ids = list(dict.fromkeys(ids))
            recorder.deliveries(tx, ids, lambda: load(ids))
        return changed
