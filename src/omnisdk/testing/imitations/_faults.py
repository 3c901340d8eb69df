"""Seeded fault injection, so retry, backoff and failover code meets the failures real providers have."""

from __future__ import annotations

import random
import threading
from collections import deque
from typing import Literal

import attrs

__all__ = ["FaultKind", "Faults", "SendDrop"]

#: "rate_limit": 429 with Retry-After; "server_error": 500; "unavailable": 503; "slow": answered
#: after `delay` seconds; "drop": the connection is closed without an answer. "drop_before_send" and
#: "drop_after_accept" close it too, before the provider acted on the request or after it did.
FaultKind = Literal[
    "rate_limit", "server_error", "unavailable", "slow", "drop", "drop_before_send", "drop_after_accept"
]
#: The two drops a client cannot tell apart, which reconciliation exists for.
SendDrop = Literal["drop_before_send", "drop_after_accept"]


def _every(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"Faults.{attribute.name} is a period (0: off), got {value!r}")


def _probability(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"Faults.{attribute.name} is a probability in [0, 1], got {value!r}")


@attrs.define
class Faults:
    """What goes wrong, and how often: probabilities per request, drawn from a seeded generator.

    `Faults(rate_limit=0.1, retry_after=2, seed=7)` answers about one request in ten with 429 and
    `Retry-After: 2`, the same requests in every run. `fail_next(3, "unavailable")` makes the next
    three requests fail with 503 whatever the probabilities say, for deterministic tests.

    `Faults(drop_before_send=9, drop_after_accept=11)` drops the connection of every 9th sending
    request (POST) before the provider acts on it, and of every 11th after it accepted the message:
    the client sees the same dropped connection both times and cannot tell whether it was sent.
    """

    rate_limit: float = attrs.field(default=0.0, validator=_probability)
    #: 5xx, half 500 and half 503.
    server_error: float = attrs.field(default=0.0, validator=_probability)
    slow: float = attrs.field(default=0.0, validator=_probability)
    drop: float = attrs.field(default=0.0, validator=_probability)
    #: Seconds in the Retry-After header of a 429.
    retry_after: int = 1
    #: Seconds a "slow" response waits before it is answered.
    delay: float = 0.05
    seed: int | None = 0
    #: Period of the drops before the provider acts, over sending requests (0: never).
    drop_before_send: int = attrs.field(default=0, validator=_every)
    #: Period of the drops after the provider accepted (the message is sent, the answer lost).
    drop_after_accept: int = attrs.field(default=0, validator=_every)
    #: Every fault injected so far, in order.
    injected: list[FaultKind] = attrs.field(factory=list, init=False)
    _sends: int = attrs.field(default=0, init=False, repr=False)
    _queue: deque[FaultKind] = attrs.field(factory=deque, init=False, repr=False)
    _rng: random.Random = attrs.field(init=False, repr=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        if self.rate_limit + self.server_error + self.slow + self.drop > 1.0:
            raise ValueError("Faults probabilities add up to more than 1")

    def fail_next(self, n: int, kind: FaultKind = "server_error") -> None:
        """Make the next `n` requests fail with `kind`, before any random fault."""
        with self._lock:
            self._queue.extend([kind] * n)

    def clear(self) -> None:
        """Forget queued faults and the record of injected ones."""
        with self._lock:
            self._queue.clear()
            self.injected.clear()
            self._sends = 0

    def draw(self) -> FaultKind | None:
        """The fault for the request being served, if any (called once per request)."""
        if not self._queue and not (self.rate_limit or self.server_error or self.slow or self.drop):
            return None
        with self._lock:
            kind = self._queue.popleft() if self._queue else self._random()
            if kind is not None:
                self.injected.append(kind)
            return kind

    def draw_send(self) -> SendDrop | None:
        """The drop for the sending request being served, if its place in the pattern has one."""
        if not (self.drop_before_send or self.drop_after_accept):
            return None
        with self._lock:
            self._sends += 1
            kind: SendDrop | None = None
            if self.drop_before_send and self._sends % self.drop_before_send == 0:
                kind = "drop_before_send"
            elif self.drop_after_accept and self._sends % self.drop_after_accept == 0:
                kind = "drop_after_accept"
            if kind is not None:
                self.injected.append(kind)
            return kind

    def _random(self) -> FaultKind | None:
        roll = self._rng.random()
        choices: tuple[tuple[FaultKind, float], ...] = (
            ("drop", self.drop),
            ("rate_limit", self.rate_limit),
            ("slow", self.slow),
        )
        for kind, chance in choices:
            if roll < chance:
                return kind
            roll -= chance
        if roll < self.server_error:
            return "server_error" if self._rng.random() < 0.5 else "unavailable"
        return None
