"""Step 3 of a tick, claim → decide → render: due outbox rows in, `Claimed` deliveries out.

In one transaction per claim: take due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL), load their
customers and recent activity in batches, let the policies decide every row (`decide_many`),
render the sends, and lease them to this worker; skips, defers and rows that cannot be sent at
all are settled with their reason. A leased row stays `queued`: a worker that dies before sending
it leaves it due again when the lease runs out.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from .._clock import Clock
from .._content import Message
from .._customers import Customer
from .._errors import OmniError
from .._identity import load_customers
from .._recorder import Recorder
from .._touchpoints import Touchpoint
from ..messages import Shop
from ..policies import SendDecision, SendRequest, decide_many, load_recent
from ..store import SQLStore, Transaction
from ..store._decisions import LogEntry, decision_counts
from ..store._deliveries import Change, DueRow, Lease, claim_due, content_json, lease_change
from ._held import Claimed, InFlight, Writes, entry, policy_entry
from ._providers import ConfiguredProvider, ProviderPool
from ._send import ProviderLimits
from ._sending import HISTORY_NAMES, TRIGGER_NAMES, SendContext
from ._settings import DeliverySettings
from ._tracing import DeliveryTracing

__all__ = ["Claimer"]


class Claimer:
    """Due rows → `Claimed` (leased to this worker) or settled (skipped, deferred, failed)."""

    def __init__(
        self, *, store: SQLStore, clock: Clock, settings: DeliverySettings, pool: ProviderPool,
        limits: ProviderLimits, context: SendContext, owner: str, in_flight: InFlight, recorder: Recorder,
        load: Callable[[Sequence[str]], Sequence[Any]], tracing: DeliveryTracing | None = None,
    ) -> None:
        self.tracing = tracing
        self.store = store
        self.clock = clock
        self.settings = settings
        self.pool = pool
        self.limits = limits
        self.context = context
        self.owner = owner
        self.in_flight = in_flight
        self.recorder = recorder
        self.load = load
        self._seq = itertools.count()
        self._channels: dict[str, tuple[Message, frozenset[str]]] = {}

    def claim(self, now: float, limit: int) -> tuple[list[Claimed], int]:
        """Up to `limit` due rows: those leased to send, and how many were settled (or quarantined)."""
        self.context.prepare()
        writes = Writes()
        started = time.time() if self.tracing is not None else 0.0
        with self.store.transaction() as tx:
            rows, quarantined = claim_due(tx, now, limit)
            # A lease that ran out before its call started (a loaded machine) makes the row due again;
            # this worker still holds it, and a second copy would be marked with the first: two calls.
            rows = [row for row in rows if not self.in_flight.holds(row.customer_id, row.id)]
            if not rows:
                return [], quarantined
            customers = load_customers(tx, (r.customer_id for r in rows))
            pending: list[tuple[DueRow, Customer, Message, SendRequest]] = []
            for row in rows:
                prepared = self._request(row, customers.get(row.customer_id), now)
                if isinstance(prepared, str):
                    _settle(writes, row, now, "failed", entry(row.id, now, "failed", None, prepared))
                else:
                    pending.append((row, *prepared))
            claimed = self._decide(tx, pending, writes, now, started) if pending else []
            writes.flush(tx, self.recorder, self.load)
        self.in_flight.add(claimed)
        return claimed, len(rows) - len(claimed) + quarantined

    def _decide(
        self, tx: Transaction, pending: list[tuple[DueRow, Customer, Message, SendRequest]], writes: Writes,
        now: float, started: float = 0.0,
    ) -> list[Claimed]:
        requests = [p[3] for p in pending]
        rules = self.context.rules
        recent = self.in_flight.counted(load_recent(tx, requests, now=now, rules=rules))
        decisions = decide_many(requests, now=now, recent=recent, rules=rules)
        decided_at = time.time() if self.tracing is not None else 0.0
        reads = [self.context.reads(p[2], str(d.channel)) if d.action == "send" else frozenset()
                 for p, d in zip(pending, decisions, strict=True)]
        history = self.context.history(
            tx, [p[1].id for p, names in zip(pending, reads, strict=True) if names & HISTORY_NAMES])
        triggers = self.context.triggers(
            tx, (p[0].run_id for p, names in zip(pending, reads, strict=True) if names & TRIGGER_NAMES))
        # Tries and retries so far, on rows sent before (a row never leased has no channel yet).
        counts = decision_counts(tx, [p[0].id for p in pending if p[0].channel is not None], ("send", "retry"))
        logged: dict[SendDecision, str] = {}  # a decision's checks (JSON): rows decided alike share them
        shop = self.context.shop(tx) if self.context.shop is not None else None  # reads only when a template asks
        claimed = []
        for (row, customer, message, request), decision in zip(pending, decisions, strict=True):
            item = self._decided(writes, row, customer, message, request, decision, history.get(customer.id, ()),
                                 triggers.get(row.run_id or ""), counts.get(row.id, Counter()), now, logged, shop)
            if item is not None:
                claimed.append(item)
        if self.tracing is not None:
            self.tracing.decided(tx, started, decided_at, [(p[0], d) for p, d in zip(pending, decisions, strict=True)],
                                 {item.id for item in claimed})
        return claimed

    def _request(
        self, row: DueRow, customer: Customer | None, now: float
    ) -> str | tuple[Customer, Message, SendRequest]:
        """The policies' question for one row, or why the row cannot be sent at all."""
        if customer is None:
            return f"customer {row.customer_id!r} does not exist"
        try:
            message = self.context.template(row.template)
        except OmniError as exc:
            return str(exc)
        failed = row.failed_channels
        channels = [c for c in row.channels if c not in failed]
        if row.channels and not channels:
            return "every channel of the waterfall failed"
        available = self._sendable(message)
        if failed:
            available = available.difference(failed)
        if channels and available.isdisjoint(channels):
            what = ", ".join(channels)
            return f"{row.template!r} has no rendition with a configured provider among the channels ({what})"
        request = SendRequest(
            customer=customer, template=row.template, channels=tuple(channels), purpose=row.purpose,
            queued_at=row.created_at, data=row.data, journey=row.journey, step=row.step,
            run_id=row.run_id, delivery_id=row.id, available=available,
        )
        return customer, message, request

    def _sendable(self, message: Message) -> frozenset[str]:
        """The channels `message` has a rendition for and a provider is configured on, cached per
        registered message (a replaced message is looked at again)."""
        cached = self._channels.get(message.id)
        if cached is None or cached[0] is not message:
            channels = frozenset(c for c in self.pool.primary if c in message.renditions)
            cached = self._channels[message.id] = (message, channels)
        return cached[1]

    def _decided(
        self, writes: Writes, row: DueRow, customer: Customer, message: Message, request: SendRequest,
        decision: SendDecision, history: Sequence[Touchpoint], trigger: Touchpoint | None,
        counts: Counter[tuple[str, str | None]], now: float, logged: dict[SendDecision, str], shop: Shop | None,
    ) -> Claimed | None:
        """Act on the policies' decision: settle a skip or defer, or render and lease a send."""
        if decision.action == "skip":
            _settle(writes, row, now, "skipped", policy_entry(row.id, decision, now, cache=logged),
                    channel=decision.channel)
            return None
        if decision.action == "defer":
            _settle(writes, row, now, "deferred", policy_entry(row.id, decision, now, cache=logged),
                    channel=decision.channel, due=decision.until)
            return None
        channel = str(decision.channel)
        entries: list[LogEntry] = []
        provider = self._pick_provider(row, channel, counts[("retry", channel)], entries, now)
        if provider is None:
            primary = self.pool.primary[channel]
            reopens = self.limits.breaker(primary).reopens_at() or now
            _settle(writes, row, now, "deferred", entry(row.id, now, "defer", channel,
                                                        f"circuit open for {primary.key}"),
                    channel=channel, due=reopens)
            return None
        try:
            content = self.context.render(
                message, channel, customer, history=history, data=row.data, trigger=trigger,
                delivery_id=row.id, journey=row.journey, step=row.step, run_id=row.run_id, shop=shop,
            )
        except OmniError as exc:
            _settle(writes, row, now, "failed", entry(row.id, now, "failed", channel, str(exc)), channel=channel)
            return None
        outgoing = self.context.outgoing(
            delivery_id=row.id, key=row.idempotency_key, customer=customer, channel=channel, content=content,
            purpose=row.purpose, history=history, template=row.template, journey=row.journey, step=row.step,
            run_id=row.run_id, topic=row.data.get("topic"),
        )
        if outgoing is None:
            _settle(writes, row, now, "failed", entry(row.id, now, "failed", channel, f"no {channel} address"),
                    channel=channel)
            return None
        entries.append(policy_entry(row.id, decision, now, cache=logged))
        leased = Lease(row.id, row.attempts + 1, channel, provider.name, outgoing.to,
                       content_json(content) if provider.capabilities.reconcile else None)
        writes.change(lease_change(leased, owner=self.owner, until=now + self.settings.lease_seconds, now=now),
                      *entries, announce=False)
        return Claimed(
            id=row.id, customer_id=customer.id, template=row.template, channel=channel, channels=row.channels,
            failed_channels=row.failed_channels, provider=provider, purpose=row.purpose, journey=row.journey,
            step=row.step, run_id=row.run_id, fallback_after=row.fallback_after, attempts=row.attempts + 1,
            outgoing=outgoing, request=request, claimed_at=now, seq=next(self._seq),
            tries=counts[("send", channel)] + 1,
        )

    def _pick_provider(
        self, row: DueRow, channel: str, retries_here: int, entries: list[LogEntry], now: float
    ) -> ConfiguredProvider | None:
        """The primary provider, or the fallback when the primary's circuit is open or it keeps failing."""
        primary = self.pool.primary[channel]
        fallback = self.pool.fallback.get(channel)
        primary_open = self.limits.breaker(primary).state == "open"
        if fallback is None:
            return None if primary_open else primary
        if primary_open or retries_here >= self.settings.failover_after:
            if self.limits.breaker(fallback).state == "open":
                return None if primary_open else primary
            if row.provider != fallback.name or row.channel != channel:
                why = "circuit open" if primary_open else f"{retries_here} retryable failures"
                entries.append(entry(row.id, now, "failover", channel, f"{primary.name} → {fallback.name} ({why})"))
            return fallback
        return primary


def _settle(
    writes: Writes, row: DueRow, now: float, status: str, logged: LogEntry, *, channel: str | None = None,
    due: float | None = None,
) -> None:
    """End this tick for the row without sending: skipped, deferred (until `due`) or failed."""
    values: dict[str, Any] = {"status": status, "error": logged.reason if status == "failed" else None}
    if due is not None:
        values["due_at"] = due
    if channel is not None:
        values["channel"] = channel
    values["updated_at"] = now
    writes.change(Change(row.id, values), logged)
