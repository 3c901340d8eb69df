"""Step 4 of a tick, send: claimed deliveries in, each one's provider outcome out.

Every provider's requests go out `max_concurrency` at a time, in requests of `max_batch_size`,
its token bucket and circuit breaker permitting. A request's rows are marked `sending` right
before it starts, after the policies judged them once more (`_recheck`); the marks of requests
starting together share one transaction (a group commit).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from .._clock import Clock
from .._logging import get_logger
from .._recorder import Recorder
from ..policies import PolicyRules
from ..providers import Accepted, Outcome, PermanentError, RetryableError, transport_error_outcome
from ..store import SQLStore
from ..store._deliveries import mark_sending
from ._held import Blocked, Claimed, Gone, InFlight, Writes
from ._limits import CircuitBreaker, TokenBucket
from ._providers import ConfiguredProvider, ProviderPool
from ._recheck import stop_revoked
from ._settings import DeliverySettings
from ._tracing import DeliveryTracing

__all__ = ["ProviderLimits", "Sender", "SendingMarks"]

log = get_logger("omnisdk.delivery")

_OUTCOMES = (Accepted, RetryableError, PermanentError)
Outcomes = dict[str, Outcome | Blocked]


class ProviderLimits:
    """Each provider's circuit breaker, concurrency slots and token bucket (shared by the claim,
    which avoids a provider whose circuit is open, and the send)."""

    def __init__(self, clock: Clock, settings: DeliverySettings) -> None:
        self.clock = clock
        self.settings = settings
        self.breakers: dict[str, CircuitBreaker] = {}
        self._buckets: dict[str, TokenBucket | None] = {}
        self._semaphores: dict[str, asyncio.Semaphore] = {}

    def breaker(self, provider: ConfiguredProvider) -> CircuitBreaker:
        if provider.key not in self.breakers:
            self.breakers[provider.key] = CircuitBreaker(
                self.clock, threshold=self.settings.breaker_threshold, cooldown=self.settings.breaker_cooldown
            )
        return self.breakers[provider.key]

    def slots(self, provider: ConfiguredProvider) -> tuple[asyncio.Semaphore, TokenBucket | None]:
        if provider.key not in self._semaphores:
            self._semaphores[provider.key] = asyncio.Semaphore(provider.max_concurrency)
            self._buckets[provider.key] = TokenBucket(provider.rate_limit) if provider.rate_limit else None
        return self._semaphores[provider.key], self._buckets[provider.key]


class SendingMarks:
    """Marks rows `sending` right before their call starts; calls that get a slot within two turns of
    the event loop share one transaction (a group commit), so the mark costs one commit per burst.
    Two turns, not one: an answer's task resumes a turn after its bytes arrive, so the answers read
    together join one burst (measured: a quarter fewer mark transactions, the same throughput)."""

    def __init__(self, write: Callable[[list[Claimed]], set[str]]) -> None:
        self._write = write
        self._waiting: list[tuple[list[Claimed], asyncio.Future[set[str]]]] = []

    async def mark(self, items: list[Claimed]) -> set[str]:
        """The ids of `items` now marked `sending` (the others changed since they were claimed)."""
        future: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        self._waiting.append((items, future))
        if len(self._waiting) == 1:
            loop = asyncio.get_running_loop()
            loop.call_soon(loop.call_soon, self._flush)  # two turns: the answers that came in together join
        return await future

    def _flush(self) -> None:
        # A batch cancelled while waiting for its mark is given back by its cut-off: never mark it.
        waiting = [(items, future) for items, future in self._waiting if not future.cancelled()]
        self._waiting = []
        if not waiting:
            return
        try:
            marked = self._write([item for items, _ in waiting for item in items])
        except Exception as exc:
            for _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return
        for _, future in waiting:
            if not future.done():
                future.set_result(marked)


class Sender:
    """Claimed deliveries → provider outcomes (`Blocked`/`Gone` for those never sent)."""

    def __init__(
        self, *, store: SQLStore, clock: Clock, settings: DeliverySettings, pool: ProviderPool,
        limits: ProviderLimits, rules: PolicyRules, owner: str, in_flight: InFlight, recorder: Recorder,
        load: Callable[[Sequence[str]], Sequence[Any]], tracing: DeliveryTracing | None = None,
    ) -> None:
        self.tracing = tracing
        self.store = store
        self.clock = clock
        self.settings = settings
        self.pool = pool
        self.limits = limits
        self.rules = rules
        self.owner = owner
        self.in_flight = in_flight
        self.recorder = recorder
        self.load = load
        self.marks = SendingMarks(self.mark_sending)

    async def send(self, claimed: list[Claimed], answered: asyncio.Event, outcomes: Outcomes) -> None:
        """Every provider's requests, `max_concurrency` at a time: a worker holds one of the provider's
        slots and makes one request after another until the batch has none left, so an older batch's
        requests go first and no coroutine waits per request (a batch's worth would stay alive)."""
        groups: dict[str, list[Claimed]] = defaultdict(list)
        for item in claimed:
            groups[item.provider.key].append(item)

        async def work(provider: ConfiguredProvider, batches: deque[list[Claimed]]) -> None:
            slots, bucket = self.limits.slots(provider)
            breaker = self.limits.breaker(provider)
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

    def mark_sending(self, items: Sequence[Claimed]) -> set[str]:
        """Mark the rows this worker still holds, once the policies passed them again; a row cancelled
        (or re-leased) since the claim, or stopped by the re-check, is not sent."""
        now = self.clock.timestamp()
        writes = Writes()
        with self.store.transaction() as tx:
            stopped = stop_revoked(tx, items, writes, now=now, rules=self.rules, owner=self.owner,
                                   in_flight=self.in_flight)
            ids = [item.id for item in items if item.id not in stopped]
            marked = mark_sending(tx, ids, owner=self.owner, now=now, until=now + self.settings.lease_seconds)
            writes.flush(tx, self.recorder, self.load)
        return marked

    async def _send_batch(
        self, batch: list[Claimed], answered: asyncio.Event, breaker: CircuitBreaker, bucket: TokenBucket | None
    ) -> Outcomes:
        """One provider request (its worker holds a slot and the provider's limits): is marked `sending`,
        then calls the provider."""
        configured = batch[0].provider
        if not breaker.allow():
            return {item.id: Blocked() for item in batch}
        if bucket is not None:
            await bucket.acquire(len(batch))
        marked = await self.marks.mark(batch)
        results: Outcomes = {}
        if not all(item.id in marked for item in batch):
            results = {item.id: Gone() for item in batch if item.id not in marked}
            batch = [item for item in batch if item.id in marked]
            if not batch:
                return results
        for item in batch:
            item.calling = True  # from here on, the request may reach the provider
        started = time.time() if self.tracing is not None else 0.0
        outcomes = await self._call(configured, batch)
        if self.tracing is not None:
            self.tracing.called(batch, started, outcomes)
        answered.set()
        breaker.record(not all(isinstance(o, RetryableError) for o in outcomes))
        results.update(zip([item.id for item in batch], outcomes, strict=True))
        return results

    async def _call(self, configured: ConfiguredProvider, batch: list[Claimed]) -> list[Outcome]:
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
