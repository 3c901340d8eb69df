"""Step 5 of a tick, record: each claimed delivery's outcome in, its row's new state out.

Sent, a retry scheduled in the outbox (`due_at`), failover to the fallback provider, the next
channel of the waterfall, failed, or in doubt (an ambiguous failure: settled by `_reconcile`).
The whole batch is written in one transaction, set-based (`Writes`), with the "Message Sent"
touchpoints going through the `Recorder` like every other touchpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._clock import Clock
from .._logging import get_logger
from .._recorder import Recorder
from ..providers import Accepted, Capabilities, Outcome, PermanentError, RetryableError
from ..store import SQLStore, dumps
from ..store._deliveries import HELD_SENDING, HELD_TO_SEND, Change
from ..store._identities import forget_address
from ._held import Blocked, Claimed, Gone, InFlight, Writes, entry, sent_touchpoint
from ._limits import retry_delay
from ._send import ProviderLimits
from ._settings import DeliverySettings
from ._tracing import DeliveryTracing

__all__ = ["OutcomeRecorder", "resend_safe"]

log = get_logger("omnisdk.delivery")


def resend_safe(caps: Capabilities) -> bool:
    """May a message whose call may have reached the provider be sent again without asking? (the crash policy)"""
    return caps.idempotency_keys or caps.crash_policy == "at_least_once"


def in_doubt(item: Claimed, reason: str, now: float, owner: str) -> Change:
    """A `sending` row this worker can no longer vouch for (an ambiguous failure, a cancelled call): in
    doubt, its lease over, so the next tick settles it (`_reconcile`)."""
    return Change(item.id, {"error": reason, "lease_owner": None, "lease_until": now, "updated_at": now},
                  owner=owner, statuses=HELD_SENDING)


class OutcomeRecorder:
    """Writes what became of a claimed batch."""

    def __init__(
        self, *, store: SQLStore, clock: Clock, settings: DeliverySettings, limits: ProviderLimits, owner: str,
        in_flight: InFlight, recorder: Recorder, load: Callable[[Sequence[str]], Sequence[Any]],
        tracing: DeliveryTracing | None = None,
    ) -> None:
        self.tracing = tracing
        self.store = store
        self.clock = clock
        self.settings = settings
        self.limits = limits
        self.owner = owner
        self.in_flight = in_flight
        self.recorder = recorder
        self.load = load

    def record(self, claimed: Sequence[Claimed], outcomes: Mapping[str, Outcome | Blocked]) -> None:
        now = self.clock.timestamp()
        writes = Writes()
        forget: list[Claimed] = []
        for item in claimed:
            outcome = outcomes[item.id]
            if isinstance(outcome, Accepted):
                self._accepted(writes, item, outcome, now)
            elif isinstance(outcome, RetryableError):
                self._retryable(writes, item, outcome, now)
            elif isinstance(outcome, PermanentError):
                if outcome.forget_address:
                    forget.append(item)
                self._channel_failed(writes, item, outcome.reason, now, fallback=outcome.fallback)
            elif isinstance(outcome, Gone):
                continue  # its row already says why (cancelled); nothing was sent
            else:
                reopens = self.limits.breaker(item.provider).reopens_at() or now
                why = entry(item.id, now, "defer", item.channel, f"circuit open for {item.provider.key}")
                self._requeue(writes, item, reopens, why, attempts=item.attempts - 1, now=now)
        with self.store.transaction() as tx:
            for item in forget:
                if forget_address(tx, item.customer_id, item.outgoing.to):  # logged before the failure it caused
                    writes.entries.setdefault(item.id, []).insert(
                        0, entry(item.id, now, "forget_address", item.channel, "the provider says it is dead"))
            writes.flush(tx, self.recorder, self.load)
        self.in_flight.forget(claimed)
        if self.tracing is not None:
            self.tracing.recorded(claimed, outcomes)

    def cut_off(self, claimed: Sequence[Claimed], outcomes: Mapping[str, Outcome | Blocked]) -> None:
        """The batch was cancelled (shutdown) or failed: record the answers that came back; leave the rows
        whose call had started in doubt (settled by the next tick, here or in another worker); give the
        others back (never sent, so due again at once). A store that fails here leaves them to their lease."""
        now = self.clock.timestamp()
        answered = [item for item in claimed if item.id in outcomes]
        rest = [item for item in claimed if item.id not in outcomes]
        try:
            if answered:
                self.record(answered, outcomes)
            reason = "cut off during the provider call (cancelled or shut down); outcome unknown"
            writes = Writes()
            for item in rest:
                if item.calling:
                    writes.change(in_doubt(item, reason, now, self.owner),
                                  entry(item.id, now, "in_doubt", item.channel, reason))
                else:
                    writes.change(Change(item.id, {"status": "queued", "attempts": item.attempts - 1,
                                                   "lease_owner": None, "lease_until": None, "updated_at": now},
                                         owner=self.owner, statuses=(*HELD_TO_SEND, *HELD_SENDING)))
            with self.store.transaction() as tx:
                writes.flush(tx, self.recorder, self.load)
        except Exception as exc:
            log.error("dispatcher_cut_off_unrecorded", count=len(rest), error=exc)
        finally:
            self.in_flight.forget(claimed)

    def _accepted(self, writes: Writes, item: Claimed, outcome: Accepted, now: float) -> None:
        segments = outcome.details.get("segments")
        writes.change(
            Change(item.id, {
                "status": "sent", "provider_message_id": outcome.provider_message_id, "cost": outcome.cost,
                "segments": int(segments) if isinstance(segments, int) else None, "error": None, "sent_at": now,
                "fallback_due": item.fallback_due(now), "lease_owner": None, "lease_until": None, "updated_at": now,
            }),
            entry(item.id, now, "sent", item.channel, f"accepted by {item.provider.name}"),
            touchpoint=sent_touchpoint(item, provider_message_id=outcome.provider_message_id, at=now),
        )

    def _retryable(self, writes: Writes, item: Claimed, outcome: RetryableError, now: float) -> None:
        if outcome.ambiguous and item.provider.capabilities.reconcile:
            reason = f"outcome unknown, to be looked up at {item.provider.name}: {outcome.reason}"
            writes.change(in_doubt(item, reason, now, self.owner),
                          entry(item.id, now, "in_doubt", item.channel, reason))
            return
        if outcome.ambiguous and not resend_safe(item.provider.capabilities):
            reason = f"outcome unknown, not sent again (at_most_once): {outcome.reason}"
            self._failed(writes, item, reason, now)
            return
        if item.tries >= self.settings.max_attempts:
            reason = f"gave up after {item.tries} attempts on {item.channel}: {outcome.reason}"
            self._channel_failed(writes, item, reason, now, fallback=True)
            return
        delay = retry_delay(item.tries, outcome.retry_after)
        why = entry(item.id, now, "retry", item.channel, f"{outcome.reason}; retry in {delay:.1f}s")
        self._requeue(writes, item, now + delay, why, error=outcome.reason, now=now)

    def _channel_failed(self, writes: Writes, item: Claimed, reason: str, now: float, *, fallback: bool) -> None:
        """This channel is done for this message: try the waterfall's next channel, or fail."""
        item.failed_channels.append(item.channel)
        remaining = [c for c in item.channels if c not in item.failed_channels]
        if fallback and remaining:
            why = entry(item.id, now, "fallback", remaining[0], f"{item.channel} failed: {reason}")
            self._requeue(writes, item, now, why, error=reason, now=now, failed_channels=item.failed_channels)
            return
        self._failed(writes, item, reason, now)

    def _failed(self, writes: Writes, item: Claimed, reason: str, now: float) -> None:
        writes.change(
            Change(item.id, {"status": "failed", "error": reason, "failed_channels": _json_list(item.failed_channels),
                             "lease_owner": None, "lease_until": None, "updated_at": now}),
            entry(item.id, now, "failed", item.channel, reason),
        )

    def _requeue(
        self, writes: Writes, item: Claimed, due: float, why: Any, *, now: float, error: str | None = None,
        attempts: int | None = None, failed_channels: list[str] | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": "queued", "due_at": due, "error": error,
                                  "attempts": item.attempts if attempts is None else attempts}
        if failed_channels is not None:
            values["failed_channels"] = _json_list(failed_channels)
        values.update(lease_owner=None, lease_until=None, updated_at=now)
        writes.change(Change(item.id, values), why)


def _json_list(values: Sequence[str]) -> str:
    return dumps(list(values))
