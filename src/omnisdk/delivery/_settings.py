"""`[delivery]` in the config: batch sizes, leases, retries, breakers, timeouts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .._errors import ConfigError
from ._providers import HTTP_TRANSPORTS

__all__ = ["DeliverySettings"]


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
