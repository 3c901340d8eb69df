"""The dispatcher: turns due outbox rows into provider calls, exactly once where providers allow it.

One tick, for a batch of due rows:
  1. reconcile rows a crashed worker left `sending` (by the provider's crash policy);
  2. queue timed waterfall fallbacks whose wait is over (push not delivered in N min → SMS);
  3. claim due rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL), decide each with the send-time
     policies, render it, and lease the ones to send, in one transaction;
  4. send per provider in batches of `max_batch_size`, keeping each provider's `max_concurrency`
     calls in flight (token bucket and circuit breaker permitting); a call's rows are marked
     `sending` just before it starts (the marks of calls starting together share a transaction);
  5. record every outcome of the claimed batch in one transaction: sent, a retry scheduled in the
     outbox (`due_at`), failover to the fallback provider, the next channel of the waterfall, or failed.
While one batch is being sent (once its first call is back) the next one is claimed, so the store
work overlaps the HTTP calls; at most two batches are leased at once. A tick's first claim takes only
enough rows to fill the providers' slots, so the first calls go out before a whole batch is rendered.
A crash between 4 and 5 leaves rows `sending`; their lease expires and step 1 settles them. An
ambiguous failure (a timeout after the request went out) is settled the same way at once.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import uuid
from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import httpx

from .._content import Message
from .._customers import Customer
from .._errors import ConfigError, OmniError
from .._identity import load_customers
from .._logging import get_logger
from .._touchpoints import Touchpoint
from ..policies import PastDelivery, RecentActivity, SendDecision, SendRequest, decide_many, load_recent
from ..providers import (
    Accepted,
    Outcome,
    Outgoing,
    PermanentError,
    RetryableError,
    transport_error_outcome,
)
from ..store import Transaction, decode_rows, dumps, json_array, json_object, optional_number, text, timestamp
from ._limits import CircuitBreaker, TokenBucket, retry_delay
from ._providers import HTTP_TRANSPORTS, ConfiguredProvider, ProviderPool
from ._recheck import stop_revoked
from ._reconcile import IN_DOUBT, Reconciler, content_json, resend_safe, sent_touchpoint
from ._sending import HISTORY_NAMES, TRIGGER_NAMES, SendContext

__all__ = ["DeliverySettings", "Dispatcher"]

log = get_logger("omnisdk.delivery")

#: Rows marked `sending` per statement on PostgreSQL.
_MARK_CHUNK = 500
#: Rows claimed per transaction while calls are in flight: about the time the provider takes to
#: answer the calls in flight, so it is not kept waiting (`Dispatcher._claim_batch`).
_CLAIM_CHUNK = 100
#: Turns of the event loop between two such chunks. An answer takes three to become the next call
#: (the task resumes and asks for its mark; the marks are written together; the task sends), and
#: answers keep arriving meanwhile: 8 let those of a chunk's time go out (measured: 4 left 9% of the
#: throughput behind, 16 gave nothing more).
_TURNS_BETWEEN_CHUNKS = 8

_CLAIM_COLUMNS = (
    "id, idempotency_key, customer_id, template, channels, failed_channels, purpose, data, run_id, journey, step, "
    "attempts, provider, channel, decisions, fallback_after, created_at"
)


class _Row:
    """A due outbox row as claimed (columns in `_CLAIM_COLUMNS` order; JSON columns decoded once).

    A plain class: one is built per message, and an attrs class with converters is slower to build."""

    __slots__ = ("attempts", "channel", "channels", "created_at", "customer_id", "data", "decisions",
                 "failed_channels", "fallback_after", "id", "idempotency_key", "journey", "provider", "purpose",
                 "run_id", "step", "template")
    id: str
    idempotency_key: str
    customer_id: str
    template: str
    channels: list[str]
    failed_channels: list[str]
    purpose: str
    data: dict[str, Any]
    run_id: str | None
    journey: str | None
    step: str | None
    attempts: int
    provider: str | None
    channel: str | None
    decisions: list[dict[str, Any]]
    fallback_after: float | None
    created_at: float

    def __init__(self, row: Sequence[Any]) -> None:
        (self.id, self.idempotency_key, self.customer_id, self.template, channels, failed_channels, self.purpose,
         data, self.run_id, self.journey, self.step, self.attempts, self.provider, self.channel, decisions,
         self.fallback_after, self.created_at) = row
        self.channels = json_array(channels)
        self.failed_channels = json_array(failed_channels)
        self.data = json_object(data)
        self.decisions = json_array(decisions)
        for value in (self.id, self.customer_id, self.template, self.purpose):
            text(value)  # raises for a value no send could use: the row is quarantined
        timestamp(self.created_at)

    def entries(self) -> list[dict[str, Any]]:
        return list(self.decisions)

    def settle(
        self, tx: Transaction, now: float, status: str, action: str, channel: str | None, reason: str,
        *, due: float | None = None, log: dict[str, Any] | None = None,
    ) -> None:
        """End this tick for the row without sending: skipped, deferred (until `due`) or failed."""
        entries = self.entries()
        entries.append(log or _entry(now, action, channel, reason))
        tx.execute(
            "UPDATE deliveries SET status = ?, error = ?, due_at = COALESCE(?, due_at), channel = COALESCE(?, "
            "channel), decisions = ?, updated_at = ? WHERE id = ?",
            (status, reason if status == "failed" else None, due, channel, dumps(entries), now, self.id),
        )


@attrs.frozen(kw_only=True)
class DeliverySettings:
    """`[delivery]` in the config."""

    batch_size: int = 500
    #: How long a worker may keep rows `sending` before another worker treats it as crashed.
    lease_seconds: float = 120.0
    #: Attempts on one channel before it counts as failed (and the waterfall moves on).
    max_attempts: int = 8
    #: Retryable failures on the primary provider before the next attempt uses the fallback.
    failover_after: int = 2
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0
    #: Seconds an HTTP call to a provider may take (a timeout is a retryable error).
    http_timeout: float = 15.0
    #: Lookups of one in-doubt delivery (`Provider.reconcile`) before it ends `failed`.
    reconcile_max_lookups: int = 10
    #: Seconds after the attempt during which an in-doubt delivery is looked up, then `failed`.
    reconcile_max_age: float = 86400.0
    #: Seconds a worker told to stop (SIGTERM) lets the calls in flight finish before cutting them off.
    drain_seconds: float = 30.0
    #: What carries provider HTTP calls: "pool" (ours) or "aiohttp" (docs/operations.md compares them).
    http_transport: str = "pool"

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> DeliverySettings:
        known = {f.name: f for f in attrs.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in section.items():
            if key not in known:
                raise ConfigError(f"unknown key; expected one of {', '.join(known)}", field=f"delivery.{key}")
            if key == "http_transport":
                if value not in HTTP_TRANSPORTS:
                    raise ConfigError(f"expected one of {', '.join(HTTP_TRANSPORTS)}", field="delivery.http_transport")
                kwargs[key] = value
                continue
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ConfigError("expected a positive number", field=f"delivery.{key}")
            kwargs[key] = int(value) if known[key].type in ("int", int) else float(value)
        return cls(**kwargs)


@attrs.define(eq=False)
class _Claimed:
    """A row being sent in this tick, with what the record step needs to know about it."""

    id: str
    customer_id: str
    template: str
    channel: str
    channels: list[str]
    failed_channels: list[str]
    attempts: int
    decisions: list[dict[str, Any]]
    #: `decisions` as the lease wrote them (JSON): a send's "sent" entry is appended to this text.
    leased_log: str
    provider: ConfiguredProvider
    outgoing: Outgoing
    journey: str | None
    step: str | None
    fallback_after: float | None
    purpose: str
    run_id: str | None
    claimed_at: float
    #: The policies' question at the claim, asked again right before the call (`stop_revoked`).
    request: SendRequest
    #: Claim order in this worker: earlier unrecorded sends count for a later one's caps.
    seq: int
    #: Its provider call has started: cut off now, its outcome is unknown.
    calling: bool = False

    def past(self) -> PastDelivery:
        """This send as the policies count it until its outcome is recorded (caps, dedupe)."""
        return PastDelivery(self.id, self.template, self.channel, self.purpose, self.claimed_at, self.run_id,
                            self.step)


_OUTCOMES = (Accepted, RetryableError, PermanentError)


class _Blocked:
    """Not sent: the provider's circuit opened while the batch waited."""


class _Gone(_Blocked):
    """Not sent: the row was cancelled (its journey exited, its broadcast was cancelled) after the claim."""


def _entry(now: float, action: str, channel: str | None, reason: str) -> dict[str, Any]:
    return {"at": now, "action": action, "channel": channel, "reason": reason}


class Dispatcher:
    """A `Worker` that sends what the outbox holds. Built by `Core`, after the journey runtime."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self.settings = DeliverySettings.from_config(core.config.delivery)
        self.pool = ProviderPool(
            core.config, core.plugins.providers, core.clock, http_timeout=self.settings.http_timeout,
            http_transport=self.settings.http_transport,
        )
        # Random, not new_id()'s time-ordered prefix: two dispatchers started close together must differ.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.breakers: dict[str, CircuitBreaker] = {}
        self._buckets: dict[str, TokenBucket | None] = {}
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._hook_updates = core.plugins.has_impls("delivery_updated")
        self.send_context = SendContext(core)
        #: Sends claimed but not yet recorded, per customer: the policies count them (caps, dedupe)
        #: while the next batch is claimed.
        self._unrecorded: dict[str, dict[str, _Claimed]] = {}
        self._marks = _SendingMarks(self._mark_sending)
        self._channels: dict[str, tuple[Message, frozenset[str]]] = {}
        self.reconciler = Reconciler(self)
        self._seq = itertools.count()
        #: `drain` was called: no more claims.
        self.draining = False
        self._in_flight: set[asyncio.Future[None]] = set()

    # -- limits per provider
    def breaker(self, provider: ConfiguredProvider) -> CircuitBreaker:
        if provider.key not in self.breakers:
            self.breakers[provider.key] = CircuitBreaker(
                self.core.clock, threshold=self.settings.breaker_threshold, cooldown=self.settings.breaker_cooldown
            )
        return self.breakers[provider.key]

    def _limits(self, provider: ConfiguredProvider) -> tuple[asyncio.Semaphore, TokenBucket | None]:
        if provider.key not in self._semaphores:
            self._semaphores[provider.key] = asyncio.Semaphore(provider.max_concurrency)
            self._buckets[provider.key] = TokenBucket(provider.rate_limit) if provider.rate_limit else None
        return self._semaphores[provider.key], self._buckets[provider.key]

    # -- the Worker protocol
    async def tick(self) -> int:
        if self.draining:
            return 0
        now = self.core.clock.timestamp()
        done = await self.reconciler.run(now) + self._timed_fallbacks(now)
        sending: set[asyncio.Future[None]] = set()
        limit = self._first_claim_size()  # sending starts sooner; full batches follow
        try:
            while not self.draining:
                in_flight = any(not future.done() for future in sending)
                claimed, settled, drained = await self._claim_batch(limit, in_flight=in_flight)
                done += settled + len(claimed)
                if claimed:
                    answered = asyncio.Event()
                    task = asyncio.ensure_future(self._send_and_record(claimed, answered))
                    sending.add(task)
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
                    await _first(task, answered)  # claim the next batch while these calls are in flight
                if drained:
                    break  # nothing more is due
                limit = self.settings.batch_size
                while len(sending) >= 2:
                    finished, sending = await asyncio.wait(sending, return_when=asyncio.FIRST_COMPLETED)
                    _raise_failures(finished)
            if sending:
                await asyncio.wait(sending)
        except BaseException:
            for future in sending:  # cancelled (shutdown) or failed: each batch settles what it cut off
                future.cancel()
            await asyncio.gather(*sending, return_exceptions=True)
            raise
        _raise_failures(sending)
        return done

    async def drain(self, timeout: float | None = None) -> bool:
        """Stop claiming; let the calls in flight finish and be recorded for up to `timeout` seconds
        (`[delivery] drain_seconds`), then cut off the rest, which are left in doubt for the next worker
        to settle (looked up at the provider, or by its crash policy). True when nothing was cut off.
        `tick` does nothing from then on, until `resume`."""
        self.draining = True
        pending = {task for task in self._in_flight if not task.done()}
        if pending:
            wait = self.settings.drain_seconds if timeout is None else timeout
            _, pending = await asyncio.wait(pending, timeout=wait)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            log.warning("dispatcher_drain_cut_off", batches=len(pending))
        return not pending

    def resume(self) -> None:
        """Claim and send again after `drain`."""
        self.draining = False

    async def _send_and_record(self, claimed: list[_Claimed], answered: asyncio.Event) -> None:
        outcomes: dict[str, Outcome | _Blocked] = {}
        try:
            await self._send(claimed, answered, outcomes)
        except BaseException:
            self._cut_off(claimed, outcomes)
            raise
        self._record(claimed, outcomes)

    def _cut_off(self, claimed: list[_Claimed], outcomes: Mapping[str, Outcome | _Blocked]) -> None:
        """The batch was cancelled (shutdown) or failed: record the answers that came back; leave the rows
        whose call had started in doubt (settled by the next tick, here or in another worker); give the
        others back (never sent, so due again at once). A store that fails here leaves them to their lease."""
        now = self.core.clock.timestamp()
        answered = [item for item in claimed if item.id in outcomes]
        rest = [item for item in claimed if item.id not in outcomes]
        try:
            if answered:
                self._record(answered, outcomes)
            reason = "cut off during the provider call (cancelled or shut down); outcome unknown"
            with self.core.store.transaction() as tx:
                for item in rest:
                    if item.calling:
                        item.decisions.append(_entry(now, "in_doubt", item.channel, reason))
                        tx.execute(IN_DOUBT, (reason, dumps(item.decisions), now, now, item.id, self.owner))
                    else:
                        tx.execute(
                            "UPDATE deliveries SET status = 'queued', attempts = ?, lease_owner = NULL, "
                            "lease_until = NULL, updated_at = ? WHERE id = ? AND lease_owner = ? "
                            "AND status IN ('queued', 'deferred', 'sending')",
                            (item.attempts - 1, now, item.id, self.owner),
                        )
        except Exception as exc:
            log.error("dispatcher_cut_off_unrecorded", count=len(rest), error=exc)
        else:
            self._updated([item.id for item in rest])
        finally:
            self._forget(claimed)

    def next_due(self) -> float | None:
        with self.core.store.transaction(immediate=False) as tx:
            row = tx.one(
                "SELECT (SELECT MIN(CASE WHEN lease_until > due_at THEN lease_until ELSE due_at END) "
                "FROM deliveries WHERE status IN ('queued', 'deferred')), "
                "(SELECT MIN(fallback_due) FROM deliveries WHERE fallback_due IS NOT NULL), "
                "(SELECT MIN(lease_until) FROM deliveries WHERE status = 'sending')"
            )
        dues = [float(v) for v in row or () if v is not None]
        return min(dues) if dues else None

    async def aclose(self) -> None:
        await self.pool.aclose()

    # -- 2. the waterfall's timing
    def _timed_fallbacks(self, now: float) -> int:
        """Queue the next channel for messages still not delivered when their `fallback_after` ran out."""
        from ._outbox import enqueue_delivery

        created: list[str] = []
        with self.core.store.transaction() as tx:
            rows = tx.query(
                "SELECT id, idempotency_key, customer_id, template, channels, failed_channels, channel, purpose, data, "
                "run_id, journey, step, status, decisions, fallback_after FROM deliveries "
                "WHERE fallback_due IS NOT NULL AND fallback_due <= ? LIMIT 1000" + tx.dialect.skip_locked,
                (now,),
            )
            for (did, key, cid, template, channels, failed, channel, purpose, data, run_id, journey, step, status,
                 entries, fallback_after) in decode_rows(tx, "deliveries", rows, _fallback_row):
                tx.execute("UPDATE deliveries SET fallback_due = NULL WHERE id = ?", (did,))
                rest = _after(channels, channel, failed)
                if status not in ("sent", "failed") or not rest:
                    continue
                child = enqueue_delivery(
                    tx, key=f"{key}:after:{channel}", customer_id=cid, template=template, channels=rest, now=now,
                    purpose=purpose, data=data, run_id=run_id, journey=journey, step=step,
                    fallback_after=fallback_after,
                )
                tx.execute("UPDATE deliveries SET parent_id = ? WHERE id = ?", (did, child))
                entries.append(_entry(now, "fallback", rest[0],
                                      f"{channel}: {status}, not delivered within {fallback_after:g}s; queued {child}"))
                tx.execute("UPDATE deliveries SET decisions = ?, updated_at = ? WHERE id = ?",
                           (dumps(entries), now, did))
                created.append(child)
        return len(created)

    # -- 3. claim, decide, render
    def _first_claim_size(self) -> int:
        """The first claim of a tick: enough rows to fill every provider's slots (`max_concurrency`
        requests of `max_batch_size` each), so the first calls go out before a whole batch is rendered."""
        providers = (*self.pool.primary.values(), *self.pool.fallback.values())
        fill = sum(p.max_concurrency * max(1, p.capabilities.max_batch_size) for p in providers)
        return max(1, min(self.settings.batch_size, fill))

    async def _claim_batch(self, limit: int, *, in_flight: bool) -> tuple[list[_Claimed], int, bool]:
        """Up to `limit` due rows: those claimed, how many were settled, and whether the outbox ran dry.

        While calls are in flight, rows are claimed `_CLAIM_CHUNK` at a time (a transaction each) and
        the event loop turns between chunks, so the answers that came in meanwhile are recorded as
        such and their slots' next calls start: claiming a whole batch at once kept the provider idle
        for tens of milliseconds. The batch still goes out as one (in requests of `max_batch_size`)."""
        claimed: list[_Claimed] = []
        settled = 0
        try:
            while True:
                wanted = limit - len(claimed) - settled
                if in_flight:
                    wanted = min(wanted, _CLAIM_CHUNK)
                rows, skipped = self._claim(self.core.clock.timestamp(), wanted)
                claimed += rows
                settled += skipped
                if len(rows) + skipped < wanted:
                    return claimed, settled, True
                if len(claimed) + settled >= limit:
                    return claimed, settled, False
                for _ in range(_TURNS_BETWEEN_CHUNKS):
                    await asyncio.sleep(0)
        except BaseException:
            self._forget(claimed)  # cancelled between chunks: those leased rows are due again when it runs out
            raise

    def _claim(self, now: float, limit: int | None = None) -> tuple[list[_Claimed], int]:
        """Due rows → `_Claimed` (leased to this worker, to send) or settled (skipped, deferred, failed).

        A leased row stays `queued`: if this worker dies before sending it, it is simply due again
        when the lease runs out. Only rows whose call is about to start become `sending`."""
        self.send_context.prepare()
        with self.core.store.transaction() as tx:
            due = tx.query(
                f"SELECT {_CLAIM_COLUMNS} FROM deliveries WHERE status IN ('queued', 'deferred') "
                "AND due_at <= ? AND (lease_until IS NULL OR lease_until < ?) ORDER BY due_at LIMIT ?"
                + tx.dialect.skip_locked,
                (now, now, limit or self.settings.batch_size),
            )
            if not due:
                return [], 0
            rows = decode_rows(tx, "deliveries", due, _Row)
            quarantined = len(due) - len(rows)
            customers = load_customers(tx, (r.customer_id for r in rows))
            pending: list[tuple[_Row, Customer, Any, SendRequest]] = []
            for row in rows:
                prepared = self._request(row, customers[row.customer_id], now)
                if isinstance(prepared, str):
                    row.settle(tx, now, "failed", "failed", None, prepared)
                else:
                    pending.append((row, *prepared))
            requests = [p[3] for p in pending]
            rules = self.send_context.rules
            recent = self._with_unrecorded(load_recent(tx, requests, now=now, rules=rules))
            decisions = decide_many(requests, now=now, recent=recent, rules=rules)
            reads = [self.send_context.reads(p[2], str(d.channel)) if d.action == "send" else frozenset()
                     for p, d in zip(pending, decisions, strict=True)]
            history = self.send_context.history(
                tx, [p[1].id for p, names in zip(pending, reads, strict=True) if names & HISTORY_NAMES])
            triggers = self.send_context.triggers(
                tx, (p[0].run_id for p, names in zip(pending, reads, strict=True) if names & TRIGGER_NAMES))
            logged: dict[SendDecision, str] = {}  # a send decision's log entry (JSON): rows decided alike share it
            claimed = [
                item for (row, customer, message, request), decision in zip(pending, decisions, strict=True)
                if (item := self._decided(tx, row, customer, message, request, decision,
                                          history.get(customer.id, ()), triggers.get(row.run_id or ""), now, logged))
            ]
            tx.executemany(
                "UPDATE deliveries SET attempts = ?, channel = ?, provider = ?, address = ?, sent_content = ?, "
                "lease_owner = ?, lease_until = ?, decisions = ?, updated_at = ? WHERE id = ?",
                [(c.attempts, c.channel, c.provider.name, c.outgoing.to,
                  content_json(c.outgoing.content) if c.provider.capabilities.reconcile else None,
                  self.owner, now + self.settings.lease_seconds, c.leased_log, now, c.id) for c in claimed],
            )
        for item in claimed:
            self._unrecorded.setdefault(item.customer_id, {})[item.id] = item
        sent_ids = {c.id for c in claimed}
        settled = [r.id for r in rows if r.id not in sent_ids]
        self._updated(settled)
        return claimed, len(settled) + quarantined

    def _with_unrecorded(self, recent: dict[str, RecentActivity]) -> dict[str, RecentActivity]:
        """Recent activity plus this worker's sends still in flight, so caps and dedupe count them."""
        for cid, activity in recent.items():
            unrecorded = self._unrecorded.get(cid)
            if not unrecorded:
                continue
            known = {d.delivery_id for d in activity.deliveries}
            for did, item in unrecorded.items():
                if did not in known:
                    activity = activity.with_delivery(item.past())
            recent[cid] = activity
        return recent

    def _forget(self, items: Sequence[_Claimed]) -> None:
        for item in items:
            pasts = self._unrecorded.get(item.customer_id)
            if pasts is not None:
                pasts.pop(item.id, None)
                if not pasts:
                    del self._unrecorded[item.customer_id]

    def _request(self, row: _Row, customer: Customer | None, now: float) -> str | tuple[Customer, Any, SendRequest]:
        """The policies' question for one row, or why the row cannot be sent at all."""
        if customer is None:
            return f"customer {row.customer_id!r} does not exist"
        try:
            message = self.send_context.template(row.template)
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
        self, tx: Transaction, row: _Row, customer: Customer, message: Any, request: SendRequest,
        decision: SendDecision, history: Sequence[Any], trigger: Touchpoint | None, now: float,
        logged: dict[SendDecision, str],
    ) -> _Claimed | None:
        """Act on the policies' decision: settle a skip or defer, or render and lease a send (its log
        entry encoded once per claim for equal decisions, in `logged`)."""
        if decision.action == "skip":
            row.settle(tx, now, "skipped", "skip", decision.channel, decision.reason, log=decision.as_log(now))
            return None
        if decision.action == "defer":
            row.settle(tx, now, "deferred", "defer", decision.channel, decision.reason, due=decision.until,
                       log=decision.as_log(now))
            return None
        channel = str(decision.channel)
        entries = row.entries()
        provider = self._pick_provider(channel, row.channel, row.provider, entries, now)
        if provider is None:
            reopens = self.breaker(self.pool.primary[channel]).reopens_at() or now
            row.settle(tx, now, "deferred", "defer", channel, f"circuit open for {self.pool.primary[channel].key}",
                       due=reopens)
            return None
        data = row.data
        try:
            content = self.send_context.render(
                message, channel, customer, history=history, data=data, trigger=trigger,
                delivery_id=row.id, journey=row.journey, step=row.step, run_id=row.run_id,
            )
        except OmniError as exc:
            row.settle(tx, now, "failed", "failed", channel, str(exc))
            return None
        outgoing = self.send_context.outgoing(
            delivery_id=row.id, key=row.idempotency_key, customer=customer, channel=channel, content=content,
            purpose=row.purpose, history=history, template=row.template, journey=row.journey, step=row.step,
            run_id=row.run_id,
        )
        if outgoing is None:
            row.settle(tx, now, "failed", "failed", channel, f"no {channel} address")
            return None
        entry = decision.as_log(now)
        leased_log = _appended(dumps(entries) if entries else "[]", _encoded(decision, entry, logged))
        entries.append(entry)
        return _Claimed(
            id=row.id, customer_id=customer.id, template=row.template, channel=channel,
            channels=row.channels, failed_channels=row.failed_channels, attempts=int(row.attempts) + 1,
            decisions=entries, leased_log=leased_log, provider=provider, outgoing=outgoing,
            journey=row.journey, step=row.step, fallback_after=row.fallback_after, purpose=row.purpose,
            run_id=row.run_id, claimed_at=now, request=request, seq=next(self._seq),
        )

    def _pick_provider(
        self, channel: str, last_channel: str | None, last_provider: str | None, entries: list[dict[str, Any]],
        now: float,
    ) -> ConfiguredProvider | None:
        """The primary provider, or the fallback when the primary's circuit is open or it keeps failing."""
        primary = self.pool.primary[channel]
        fallback = self.pool.fallback.get(channel)
        primary_open = self.breaker(primary).state == "open"
        if fallback is None:
            return None if primary_open else primary
        retries_here = sum(1 for e in entries if e["action"] == "retry" and e["channel"] == channel)
        if primary_open or retries_here >= self.settings.failover_after:
            if self.breaker(fallback).state == "open":
                return None if primary_open else primary
            if last_provider != fallback.name or last_channel != channel:
                why = "circuit open" if primary_open else f"{retries_here} retryable failures"
                entries.append(_entry(now, "failover", channel, f"{primary.name} → {fallback.name} ({why})"))
            return fallback
        return primary

    # -- 4. send
    async def _send(
        self, claimed: list[_Claimed], answered: asyncio.Event, outcomes: dict[str, Outcome | _Blocked]
    ) -> None:
        """Every provider's requests, `max_concurrency` at a time: a worker holds one of the provider's
        slots and makes one request after another until the batch has none left, so an older batch's
        requests go first and no coroutine waits per request (a batch's worth would stay alive)."""
        groups: dict[str, list[_Claimed]] = defaultdict(list)
        for item in claimed:
            groups[item.provider.key].append(item)

        async def work(provider: ConfiguredProvider, batches: deque[list[_Claimed]]) -> None:
            slots, bucket = self._limits(provider)
            breaker = self.breaker(provider)
            async with slots:
                while batches:
                    outcomes.update(await self._send_batch(batches.popleft(), answered, breaker, bucket))

        workers = []
        for items in groups.values():
            provider = items[0].provider
            size = max(1, provider.capabilities.max_batch_size)
            batches = deque(items[i : i + size] for i in range(0, len(items), size))
            workers += [work(provider, batches) for _ in range(min(len(batches), provider.max_concurrency))]
        await asyncio.gather(*workers)

    def _mark_sending(self, items: Sequence[_Claimed]) -> set[str]:
        """Mark the rows this worker still holds; a row cancelled (or re-leased) since the claim is not sent.

        On SQLite, one statement per row, by its key: its row count says whether it marked the row, and
        it costs less than one statement for the burst, whose `IN` list and `RETURNING` each build a
        temporary b-tree (a burst is a few rows). PostgreSQL takes one statement per 500 rows, saving
        round trips, and `RETURNING` says which rows it marked."""
        now = self.core.clock.timestamp()
        until = now + self.settings.lease_seconds
        ids = [item.id for item in items]
        mark = ("UPDATE deliveries SET status = 'sending', lease_until = ?, updated_at = ?, attempted_at = ?, "
                "lookups = 0 WHERE")
        held = "AND status IN ('queued', 'deferred') AND lease_owner = ?"
        with self.core.store.transaction() as tx:
            stopped = stop_revoked(tx, items, now=now, rules=self.send_context.rules, owner=self.owner,
                                   in_flight=lambda cid: self._unrecorded.get(cid, {}).values())
            if stopped:
                ids = [did for did in ids if did not in stopped]
            if tx.dialect.name == "sqlite":
                return {did for did in ids if tx.execute(f"{mark} id = ? {held}", (until, now, now, did, self.owner))}
            marked: set[str] = set()
            for start in range(0, len(ids), _MARK_CHUNK):
                chunk = ids[start : start + _MARK_CHUNK]
                rows = tx.query(f"{mark} id IN ({','.join('?' * len(chunk))}) {held} RETURNING id",
                                (until, now, now, *chunk, self.owner))
                marked.update(did for (did,) in rows)
        return marked

    async def _send_batch(
        self, batch: list[_Claimed], answered: asyncio.Event, breaker: CircuitBreaker, bucket: TokenBucket | None
    ) -> dict[str, Outcome | _Blocked]:
        """One provider request (its worker holds a slot and the provider's limits): is marked `sending`,
        then calls the provider."""
        configured = batch[0].provider
        if not breaker.allow():
            return {item.id: _Blocked() for item in batch}
        if bucket is not None:
            await bucket.acquire(len(batch))
        marked = await self._marks.mark(batch)
        results: dict[str, Outcome | _Blocked] = {}
        if not all(item.id in marked for item in batch):
            results = {item.id: _Gone() for item in batch if item.id not in marked}
            batch = [item for item in batch if item.id in marked]
            if not batch:
                return results
        for item in batch:
            item.calling = True  # from here on, the request may reach the provider
        outcomes = await self._call(configured, batch)
        answered.set()
        breaker.record(not all(isinstance(o, RetryableError) for o in outcomes))
        results.update(zip([item.id for item in batch], outcomes, strict=True))
        return results

    async def _call(self, configured: ConfiguredProvider, batch: list[_Claimed]) -> list[Outcome]:
        """The provider's `send`; whatever a plugin does wrong becomes a retryable error, never a crash."""
        try:
            provider = self.pool.instance(configured)
            outcomes = list(await provider.send([item.outgoing for item in batch]))
        except Exception as exc:
            log.warning("provider_send_raised", provider=configured.key, error=exc)
            if isinstance(exc, httpx.TransportError | OSError):  # a network failure the plugin let through
                return [transport_error_outcome(exc)] * len(batch)
            # The request may have gone out before the plugin failed: as unknown as a crash mid-call.
            reason = f"{configured.name} raised {type(exc).__name__}: {exc}"
            return [RetryableError(reason=reason, ambiguous=True)] * len(batch)
        if len(outcomes) != len(batch) or not all(isinstance(o, _OUTCOMES) for o in outcomes):
            reason = f"{configured.name} returned {len(outcomes)} outcomes for {len(batch)} messages"
            log.error("provider_bad_outcomes", provider=configured.key, reason=reason)
            return [RetryableError(reason=reason)] * len(batch)
        return outcomes

    # -- 5. record
    def _record(self, claimed: list[_Claimed], outcomes: Mapping[str, Outcome | _Blocked]) -> None:
        now = self.core.clock.timestamp()
        sent, touchpoints = [], []
        sent_entries: dict[tuple[str, str], str] = {}
        with self.core.store.transaction() as tx:
            for item in claimed:
                outcome = outcomes[item.id]
                if isinstance(outcome, Accepted):
                    sent.append(self._accepted(item, outcome, now, sent_entries))
                    touchpoints.append(self._sent_touchpoint(item, outcome, now))
                elif isinstance(outcome, RetryableError):
                    self._retryable(tx, item, outcome, now)
                elif isinstance(outcome, PermanentError):
                    self._permanent(tx, item, outcome, now)
                elif isinstance(outcome, _Gone):
                    continue  # its row already says why (cancelled); nothing was sent
                else:
                    reopens = self.breaker(item.provider).reopens_at() or now
                    item.decisions.append(_entry(now, "defer", item.channel, f"circuit open for {item.provider.key}"))
                    self._requeue(tx, item, reopens, attempts=item.attempts - 1)
            tx.executemany(
                "UPDATE deliveries SET status = 'sent', provider_message_id = ?, cost = ?, segments = ?, error = NULL, "
                "sent_at = ?, fallback_due = ?, lease_owner = NULL, lease_until = NULL, decisions = ?, updated_at = ? "
                "WHERE id = ?",
                sent,
            )
            tx.executemany(
                "INSERT INTO touchpoints (id, customer_id, channel, name, properties, occurred_at, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                touchpoints,
            )
        self._forget(claimed)
        self._updated([item.id for item in claimed])

    def _accepted(
        self, item: _Claimed, outcome: Accepted, now: float, encoded: dict[tuple[str, str], str]
    ) -> tuple[Any, ...]:
        """The `sent` row's new values (written for the whole batch in one statement). Its log entry is
        the same for every row sent on one channel by one provider in the batch: `encoded` keeps its JSON."""
        segments = outcome.details.get("segments")
        entry = _entry(now, "sent", item.channel, f"accepted by {item.provider.name}")
        item.decisions.append(entry)
        key = (item.channel, item.provider.name)
        if key not in encoded:
            encoded[key] = dumps(entry)
        fallback_due = None
        if item.fallback_after and _after(item.channels, item.channel, item.failed_channels):
            fallback_due = now + item.fallback_after
        return (outcome.provider_message_id, outcome.cost, int(segments) if isinstance(segments, int) else None, now,
                fallback_due, _appended(item.leased_log, encoded[key]), now, item.id)

    def _sent_touchpoint(self, item: _Claimed, outcome: Accepted, now: float) -> tuple[Any, ...]:
        return sent_touchpoint(delivery_id=item.id, customer_id=item.customer_id, channel=item.channel,
                               template=item.template, journey=item.journey, step=item.step,
                               provider=item.provider.name, provider_message_id=outcome.provider_message_id, at=now)

    def _retryable(self, tx: Transaction, item: _Claimed, outcome: RetryableError, now: float) -> None:
        if outcome.ambiguous and item.provider.capabilities.reconcile:
            reason = f"outcome unknown, to be looked up at {item.provider.name}: {outcome.reason}"
            item.decisions.append(_entry(now, "in_doubt", item.channel, reason))
            tx.execute(IN_DOUBT, (reason, dumps(item.decisions), now, now, item.id, self.owner))
            return
        if outcome.ambiguous and not resend_safe(item.provider.capabilities):
            reason = f"outcome unknown, not sent again (at_most_once): {outcome.reason}"
            item.decisions.append(_entry(now, "failed", item.channel, reason))
            self._finish_failed(tx, item, reason, now)
            return
        tries = sum(1 for e in item.decisions if e["action"] == "send" and e["channel"] == item.channel)
        if tries >= self.settings.max_attempts:
            reason = f"gave up after {tries} attempts on {item.channel}: {outcome.reason}"
            self._channel_failed(tx, item, reason, now, fallback=True)
            return
        delay = retry_delay(tries, outcome.retry_after)
        item.decisions.append(_entry(now, "retry", item.channel, f"{outcome.reason}; retry in {delay:.1f}s"))
        self._requeue(tx, item, now + delay, error=outcome.reason)

    def _permanent(self, tx: Transaction, item: _Claimed, outcome: PermanentError, now: float) -> None:
        if outcome.forget_address:
            forgotten = tx.execute(
                "DELETE FROM identities WHERE customer_id = ? AND value = ? AND kind <> 'user_id'",
                (item.customer_id, item.outgoing.to),
            )
            if forgotten:
                item.decisions.append(_entry(now, "forget_address", item.channel, "the provider says it is dead"))
        self._channel_failed(tx, item, outcome.reason, now, fallback=outcome.fallback)

    def _channel_failed(self, tx: Transaction, item: _Claimed, reason: str, now: float, *, fallback: bool) -> None:
        """This channel is done for this message: try the waterfall's next channel, or fail."""
        item.failed_channels.append(item.channel)
        remaining = [c for c in item.channels if c not in item.failed_channels]
        if fallback and remaining:
            item.decisions.append(_entry(now, "fallback", remaining[0], f"{item.channel} failed: {reason}"))
            tx.execute("UPDATE deliveries SET failed_channels = ? WHERE id = ?", (dumps(item.failed_channels), item.id))
            self._requeue(tx, item, now, error=reason)
            return
        item.decisions.append(_entry(now, "failed", item.channel, reason))
        self._finish_failed(tx, item, reason, now)

    def _finish_failed(self, tx: Transaction, item: _Claimed, reason: str, now: float) -> None:
        tx.execute(
            "UPDATE deliveries SET status = 'failed', error = ?, failed_channels = ?, lease_owner = NULL, "
            "lease_until = NULL, decisions = ?, updated_at = ? WHERE id = ?",
            (reason, dumps(item.failed_channels), dumps(item.decisions), now, item.id),
        )

    def _requeue(
        self, tx: Transaction, item: _Claimed, due: float, *, error: str | None = None, attempts: int | None = None
    ) -> None:
        tx.execute(
            "UPDATE deliveries SET status = 'queued', due_at = ?, error = ?, attempts = ?, lease_owner = NULL, "
            "lease_until = NULL, decisions = ?, updated_at = ? WHERE id = ?",
            (due, error, item.attempts if attempts is None else attempts, dumps(item.decisions),
             self.core.clock.timestamp(), item.id),
        )

    def _updated(self, ids: Sequence[str]) -> None:
        """Tell `delivery_updated` plugins; a plugin's failure is logged, never raised."""
        if not ids or not self._hook_updates:
            return
        from ._records import DELIVERY_COLUMNS, delivery_from_row

        with self.core.store.transaction(immediate=False) as tx:
            marks = ",".join("?" * len(ids))
            rows = tx.query(f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id IN ({marks})", list(ids))
            deliveries = decode_rows(tx, "deliveries", rows, delivery_from_row)
        for delivery in deliveries:
            try:
                self.core.plugins.pm.hook.delivery_updated(delivery=delivery, omni=self.core.facade)
            except Exception as exc:
                log.error("delivery_hook_failed", error=exc)


def _decisions_last(row: Sequence[Any]) -> tuple[Any, ...]:
    """A row with its last column, the decision log, decoded."""
    return (*row[:-1], json_array(row[-1]))


def _fallback_row(row: Sequence[Any]) -> tuple[Any, ...]:
    """A `_timed_fallbacks` row with its JSON columns decoded."""
    (did, key, cid, template, channels, failed, channel, purpose, data, run_id, journey, step, status, decisions,
     fallback_after) = row
    return (did, key, cid, template, json_array(channels), json_array(failed), channel, purpose, json_object(data),
            run_id, journey, step, status, json_array(decisions), optional_number(fallback_after))


def _after(channels: Sequence[str], channel: str | None, failed: Sequence[str]) -> list[str]:
    """The waterfall's channels after `channel`, minus those that already failed."""
    order = list(channels)
    rest = order[order.index(channel) + 1 :] if channel is not None and channel in order else []
    return [c for c in rest if c not in failed]


def _encoded(decision: SendDecision, entry: dict[str, Any], logged: dict[SendDecision, str]) -> str:
    """`entry`, the log entry of `decision`, as JSON: encoded once per claim for equal decisions."""
    try:
        if decision not in logged:
            logged[decision] = dumps(entry)
        return logged[decision]
    except TypeError:  # a plugin policy's reason that is not a string, and not hashable either
        return dumps(entry)


def _appended(array: str, value: str) -> str:
    """The JSON array `array` with the JSON `value` added at the end, both as `dumps` writes them:
    the same text as `dumps` of the whole list, without encoding the rest again."""
    return f"{array[:-1]},{value}]" if array != "[]" else f"[{value}]"


def _raise_failures(futures: set[asyncio.Future[None]]) -> None:
    """A batch's failure (a store error) ends the tick; a batch cancelled by `drain` is already settled."""
    for future in futures:
        if not future.cancelled():
            future.result()


async def _first(task: asyncio.Future[None], answered: asyncio.Event) -> None:
    """Wait until the batch's first call has come back, its connection up and the others in flight
    (or until the batch ended without any call)."""
    waiter = asyncio.ensure_future(answered.wait())
    either: set[asyncio.Future[Any]] = {task, waiter}
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


class _SendingMarks:
    """Marks rows `sending` right before their call starts; calls that get a slot in the same turn of
    the event loop share one transaction (a group commit), so the mark costs one commit per burst."""

    def __init__(self, write: Any) -> None:
        self._write = write
        self._waiting: list[tuple[list[_Claimed], asyncio.Future[set[str]]]] = []

    async def mark(self, items: list[_Claimed]) -> set[str]:
        """The ids of `items` now marked `sending` (the others changed since they were claimed)."""
        future: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        self._waiting.append((items, future))
        if len(self._waiting) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        # A batch cancelled while waiting for its mark is given back by its `_cut_off`: never mark it.
        waiting = [(items, future) for items, future in self._waiting if not future.cancelled()]
        self._waiting = []
        if not waiting:
            return
        try:
            marked: set[str] = self._write([item for items, _ in waiting for item in items])
        except Exception as exc:
            for _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        for _, future in waiting:
            if not future.done():
                future.set_result(marked)
