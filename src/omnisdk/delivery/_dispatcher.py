"""The dispatcher: turns due outbox rows into provider calls, exactly once where providers allow it.

It only orchestrates; each step is a unit of its own, with typed input and output: `_reconcile`
(in doubt → settled), `_fallbacks`, `_claim` (due rows → `Claimed`), `_send` (`Claimed` →
outcomes), `_outcomes` (outcomes → rows, log entries, touchpoints).

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
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

from .._clock import Clock
from .._logging import get_logger
from .._recorder import Recorder
from .._telemetry import NO_TELEMETRY, Telemetry
from ..providers import Outcome
from ..store import SQLStore
from ..store._deliveries import next_due
from ._claim import Claimer
from ._fallbacks import queue_timed_fallbacks
from ._held import Blocked, Claimed, InFlight
from ._limits import CircuitBreaker
from ._outcomes import OutcomeRecorder
from ._providers import ConfiguredProvider, ProviderPool
from ._reconcile import Reconciler
from ._records import DeliveryReader
from ._send import ProviderLimits, Sender
from ._sending import SendContext
from ._settings import DeliverySettings
from ._tracing import DeliveryTracing

__all__ = ["DeliverySettings", "Dispatcher"]

log = get_logger("omnisdk.delivery")

#: Rows claimed per transaction while calls are in flight: about the time the provider takes to
#: answer the calls in flight, so it is not kept waiting (`Dispatcher._claim_batch`).
_CLAIM_CHUNK = 100
#: Turns of the event loop between two such chunks. An answer takes three to become the next call
#: (the task resumes and asks for its mark; the marks are written together; the task sends), and
#: answers keep arriving meanwhile: 8 let those of a chunk's time go out (measured: 4 left 9% of the
#: throughput behind, 16 gave nothing more).
_TURNS_BETWEEN_CHUNKS = 8


class Dispatcher:
    """A `Worker` that sends what the outbox holds. Built by `Core`, after the journey runtime."""

    def __init__(
        self, *, store: SQLStore, clock: Clock, settings: DeliverySettings, pool: ProviderPool,
        send_context: SendContext, recorder: Recorder, telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.pool = pool
        self.send_context = send_context
        # Random, not new_id()'s time-ordered prefix: two dispatchers started close together must differ.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.limits = ProviderLimits(clock, settings)
        #: Sends claimed but not yet recorded: the policies count them (caps, dedupe) meanwhile.
        self.in_flight = InFlight()
        self.load = DeliveryReader(store)
        self.recorder = recorder
        common: dict[str, Any] = {"store": store, "clock": clock, "settings": settings, "owner": self.owner,
                                  "recorder": recorder, "load": self.load}
        #: Spans and metrics of each delivery, when telemetry is on (None: nothing is done for it).
        self.tracing = DeliveryTracing(telemetry) if telemetry.enabled else None
        self.claimer = Claimer(pool=pool, limits=self.limits, context=send_context, in_flight=self.in_flight,
                               tracing=self.tracing, **common)
        self.sender = Sender(pool=pool, limits=self.limits, rules=send_context.rules, in_flight=self.in_flight,
                             tracing=self.tracing, **common)
        self.outcomes = OutcomeRecorder(limits=self.limits, in_flight=self.in_flight, tracing=self.tracing, **common)
        self.reconciler = Reconciler(pool=pool, **common)
        #: `drain` was called: no more claims.
        self.draining = False
        self._in_flight: set[asyncio.Future[None]] = set()

    @property
    def breakers(self) -> dict[str, CircuitBreaker]:
        return self.limits.breakers

    def breaker(self, provider: ConfiguredProvider) -> CircuitBreaker:
        return self.limits.breaker(provider)

    # -- the Worker protocol
    async def tick(self) -> int:
        if self.draining:
            return 0
        now = self.clock.timestamp()
        done = await self.reconciler.run(now) + queue_timed_fallbacks(self.store, self.recorder, self.load, now)
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

    def next_due(self) -> float | None:
        with self.store.transaction(immediate=False) as tx:
            return next_due(tx)

    async def aclose(self) -> None:
        await self.pool.aclose()

    # -- the steps
    def _claim(self, now: float, limit: int | None = None) -> tuple[list[Claimed], int]:
        """Step 3: due rows → `Claimed` (leased, to send) and how many were settled (`_claim`)."""
        return self.claimer.claim(now, limit or self.settings.batch_size)

    def _mark_sending(self, items: Sequence[Claimed]) -> set[str]:
        """Of step 4: re-check and mark `sending` the rows whose calls start now (`_send`)."""
        return self.sender.mark_sending(items)

    async def _send_and_record(self, claimed: list[Claimed], answered: asyncio.Event) -> None:
        """Steps 4 and 5 for one claimed batch."""
        outcomes: dict[str, Outcome | Blocked] = {}
        try:
            await self.sender.send(claimed, answered, outcomes)
        except BaseException:
            self.outcomes.cut_off(claimed, outcomes)
            raise
        self.outcomes.record(claimed, outcomes)

    def _first_claim_size(self) -> int:
        """The first claim of a tick: enough rows to fill every provider's slots (`max_concurrency`
        requests of `max_batch_size` each), so the first calls go out before a whole batch is rendered."""
        providers = (*self.pool.primary.values(), *self.pool.fallback.values())
        fill = sum(p.max_concurrency * max(1, p.capabilities.max_batch_size) for p in providers)
        return max(1, min(self.settings.batch_size, fill))

    async def _claim_batch(self, limit: int, *, in_flight: bool) -> tuple[list[Claimed], int, bool]:
        """Up to `limit` due rows: those claimed, how many were settled, and whether the outbox ran dry.

        While calls are in flight, rows are claimed `_CLAIM_CHUNK` at a time (a transaction each) and
        the event loop turns between chunks, so the answers that came in meanwhile are recorded as
        such and their slots' next calls start: claiming a whole batch at once kept the provider idle
        for tens of milliseconds. The batch still goes out as one (in requests of `max_batch_size`)."""
        claimed: list[Claimed] = []
        settled = 0
        try:
            while True:
                wanted = limit - len(claimed) - settled
                if in_flight:
                    wanted = min(wanted, _CLAIM_CHUNK)
                rows, skipped = self._claim(self.clock.timestamp(), wanted)
                claimed += rows
                settled += skipped
                if len(rows) + skipped < wanted:
                    return claimed, settled, True
                if len(claimed) + settled >= limit:
                    return claimed, settled, False
                for _ in range(_TURNS_BETWEEN_CHUNKS):
                    await asyncio.sleep(0)
        except BaseException:
            self.in_flight.forget(claimed)  # cancelled between chunks: those leased rows are due again later
            raise


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
