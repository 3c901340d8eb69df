"""A signed token reused until it is due for renewal: APNs and VAPID tokens are costly to sign per request."""

from __future__ import annotations

from collections.abc import Callable

import attrs

__all__ = ["TokenCache"]


@attrs.define
class TokenCache:
    """Keeps one token per key (an APNs team, a push service origin) for `lifetime` seconds."""

    lifetime: float
    _tokens: dict[str, tuple[str, float]] = attrs.field(factory=dict, init=False)

    def get(self, key: str, now: float, make: Callable[[float], str]) -> str:
        """The cached token, or a new one from `make(issued_at)` once the old one is `lifetime` old."""
        cached = self._tokens.get(key)
        if cached is not None and now - cached[1] < self.lifetime:
            return cached[0]
        token = make(now)
        self._tokens[key] = (token, now)
        return token

    def issued_at(self, key: str) -> float | None:
        cached = self._tokens.get(key)
        return cached[1] if cached else None

    def forget(self, key: str) -> None:
        self._tokens.pop(key, None)
