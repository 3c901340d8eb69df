"""Protecting providers and ourselves: token buckets, circuit breakers, and retry backoff.

Retries are not slept in a coroutine: the backoff tenacity computes becomes the row's `due_at`
in the outbox, so a crash loses no retry and virtual time drives them in tests.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import tenacity

from .._clock import Clock

__all__ = ["CircuitBreaker", "TokenBucket", "retry_delay"]

#: 1 s, 2 s, 4 s… up to 10 minutes, each plus up to 1 s of jitter (the AWS "exponential backoff
#: and jitter" advice, as tenacity implements it).
_BACKOFF = tenacity.wait_exponential_jitter(initial=1.0, max=600.0, jitter=1.0)


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before attempt `attempt + 1`; never sooner than the provider's `Retry-After`."""
    state: Any = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = max(1, attempt)
    delay = float(_BACKOFF(state))
    return max(delay, retry_after or 0.0)


class TokenBucket:
    """`rate` sends per second on average, bursts up to `burst`; waits (on the real clock) for a token.

    Rate limits protect the provider in real time, so they use the monotonic clock even when the
    journeys run on a virtual one.
    """

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = max(1.0, burst if burst is not None else rate)
        self._tokens = self.capacity
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self, tokens: float = 1.0) -> None:
        tokens = min(tokens, self.capacity)
        async with self._lock:
            self._refill()
            while self._tokens < tokens:
                await asyncio.sleep((tokens - self._tokens) / self.rate)
                self._refill()
            self._tokens -= tokens


class CircuitBreaker:
    """Stop calling a provider that keeps failing; let one probe through after `cooldown` seconds.

    closed → (`threshold` failed requests in a row) → open → (cooldown passed) → half-open: the next
    request is a probe; success closes the circuit, failure opens it again. Time is the Core's
    clock, so a test can walk a breaker through its states with a VirtualClock.
    """

    def __init__(self, clock: Clock, *, threshold: int = 5, cooldown: float = 30.0) -> None:
        self.clock = clock
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock.timestamp() >= self.opened_at + self.cooldown else "open"

    def reopens_at(self) -> float | None:
        return None if self.opened_at is None else self.opened_at + self.cooldown

    def allow(self) -> bool:
        """May a request go out now? In half-open, only one probe at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._probing:
            self._probing = True
            return True
        return False

    def record(self, ok: bool) -> None:
        self._probing = False
        if ok:
            self.failures = 0
            self.opened_at = None
            return
        self.failures += 1
        if self.opened_at is not None or self.failures >= self.threshold:
            self.opened_at = self.clock.timestamp()
