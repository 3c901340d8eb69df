"""`SendTime`: one client's send-time optimiser, with its settings, policies and cached prior."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from .._clock import Clock, to_datetime
from .._errors import ConfigError, ValidationError
from .._identity import load_customer
from .._touchpoints import MESSAGE_CHANNELS, check_channel
from ..policies import PolicyRules, QuietHours
from ..store import SQLStore, Transaction
from ..store._customers import customer_timezone
from ..store._sendtime import prior_weights, save_prior
from ._choose import choose, posterior, shares
from ._learn import ALL, PURCHASES, Counts, load_habits, local_zone, population_counts

__all__ = ["EngagementHours", "SendTime", "SendTimeSettings"]

DAY = 86400.0


@attrs.frozen(kw_only=True)
class SendTimeSettings:
    """`[analytics]` keys: `send_time_lookback_days` (history that counts), `send_time_prior_strength`
    (pseudo-events of the population prior), `send_time_prior_refresh_hours` (how old the prior may get)."""

    lookback: float = 180 * DAY
    prior_strength: float = 8.0
    prior_refresh: float = DAY

    @classmethod
    def from_config(cls, analytics: Any) -> SendTimeSettings:
        if not isinstance(analytics, Mapping):
            raise ConfigError("must be a table", field="analytics")
        keys = {"send_time_lookback_days": ("lookback", DAY), "send_time_prior_strength": ("prior_strength", 1.0),
                "send_time_prior_refresh_hours": ("prior_refresh", 3600.0)}
        kwargs: dict[str, float] = {}
        for key, (name, unit) in keys.items():
            if key in analytics:
                value = analytics[key]
                if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                    raise ConfigError("expected a positive number", field=f"analytics.{key}")
                kwargs[name] = float(value) * unit
        return cls(**kwargs)


@attrs.frozen(kw_only=True)
class EngagementHours:
    """A customer's engagement by local hour (0-23 in `timezone`) on a channel (None: every channel).

    `counts` are their own events in the lookback window; `shares` the smoothed estimate (the
    population's alone for a new customer); `best_hour` the hour with the highest share.
    """

    customer_id: str
    channel: str | None
    timezone: str
    counts: tuple[float, ...]
    shares: tuple[float, ...]

    @property
    def best_hour(self) -> int:
        return max(range(24), key=lambda h: (self.shares[h], -h))

    @property
    def events(self) -> int:
        return int(sum(self.counts))


def _for_channel(counts: Counts, channel: str | None) -> list[float]:
    """A channel's own engagement plus purchases; everything when no channel is named."""
    if channel is None:
        keys: Sequence[str] = [ALL] if ALL in counts else list(counts)
    else:
        keys = (channel, PURCHASES)
    total = [0.0] * 24
    for key in keys:
        for hour, value in enumerate(counts.get(key, ())):
            total[hour] += value
    return total


class SendTime:
    """Chooses each customer's best time to receive a message, within a window and outside quiet hours."""

    def __init__(
        self, store: SQLStore, clock: Clock, rules: PolicyRules, settings: SendTimeSettings | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.rules = rules
        self.settings = settings or SendTimeSettings()
        self._prior: tuple[Counts, float] | None = None

    # -- the population prior
    def prior(self, tx: Transaction, now: float) -> Counts:
        """Everyone's engagement by local hour: from memory, else the store, else recomputed (daily)."""
        fresh_after = now - self.settings.prior_refresh
        if self._prior is not None and self._prior[1] >= fresh_after:
            return self._prior[0]
        counts: Counts = {}
        computed = None
        for stored in prior_weights(tx):
            counts.setdefault(stored.channel, [0.0] * 24)[stored.hour] = stored.weight
            if stored.channel == ALL:
                computed = stored.computed_at
        if computed is None or computed < fresh_after:
            counts = population_counts(tx, since=now - self.settings.lookback,
                                       default_zone=self.rules.default_timezone)
            save_prior(tx, counts, now)
            computed = now
        self._prior = (counts, computed)
        return counts

    # -- per customer
    def _zones(self, recipients: Sequence[tuple[str, str | None]]) -> dict[str, Any]:
        return {cid: local_zone(tz, self.rules.default_timezone) for cid, tz in recipients}

    def _quiet(self, channel: str | None, purpose: str) -> QuietHours | None:
        quiet = self.rules.quiet_hours
        if quiet is None:
            return None
        channels = MESSAGE_CHANNELS if channel is None else (channel,)
        return quiet if any(quiet.applies(purpose, c) for c in channels) else None

    def best_times(
        self, tx: Transaction, recipients: Sequence[tuple[str, str | None]], *, channel: str | None, now: float,
        within: float, purpose: str = "marketing",
    ) -> dict[str, float]:
        """The best send time (epoch seconds) of each (customer id, time zone) within `[now, now + within]`."""
        zones = self._zones(recipients)
        habits = load_habits(tx, zones, since=now - self.settings.lookback)
        prior = shares(_for_channel(self.prior(tx, now), channel))
        quiet = self._quiet(channel, purpose)
        strength = self.settings.prior_strength
        chosen: dict[str, float] = {}
        by_prior: dict[str, float] = {}  # new customers in one zone share one answer
        for cid, zone in zones.items():
            counts = habits.get(cid)
            if counts is None:
                key = zone.key
                if key not in by_prior:
                    by_prior[key] = choose(now, within, zone, prior, quiet)
                chosen[cid] = by_prior[key]
            else:
                chosen[cid] = choose(now, within, zone, posterior(_for_channel(counts, channel), prior, strength),
                                     quiet)
        return chosen

    def best_time(
        self, tx: Transaction, customer_id: str, *, channel: str | None, now: float, within: float,
        purpose: str = "marketing",
    ) -> float:
        return self.best_times(tx, [(customer_id, customer_timezone(tx, customer_id))], channel=channel, now=now,
                               within=within, purpose=purpose)[customer_id]

    def engagement_hours(
        self, tx: Transaction, customer_id: str, *, channel: str | None, now: float
    ) -> EngagementHours:
        zone = local_zone(customer_timezone(tx, customer_id), self.rules.default_timezone)
        counts = _for_channel(load_habits(tx, {customer_id: zone}, since=now - self.settings.lookback).get(
            customer_id, {}), channel)
        prior = shares(_for_channel(self.prior(tx, now), channel))
        return EngagementHours(
            customer_id=customer_id, channel=channel, timezone=zone.key, counts=tuple(counts),
            shares=tuple(posterior(counts, prior, self.settings.prior_strength)),
        )

    # -- for the facade: one customer (merged ids followed), now, in a transaction of its own
    def when(
        self, customer_id: str, *, channel: str | None = None, within: timedelta = timedelta(hours=24),
        purpose: str = "marketing",
    ) -> datetime:
        if not isinstance(within, timedelta) or within <= timedelta():
            raise ValidationError("expected a positive timedelta", field="within", value=within)
        _check_channel(channel)
        now = self.clock.timestamp()
        with self.store.transaction() as tx:
            cid = load_customer(tx, customer_id).id
            return to_datetime(self.best_time(tx, cid, channel=channel, now=now, within=within.total_seconds(),
                                              purpose=purpose))

    def hours(self, customer_id: str, *, channel: str | None = None) -> EngagementHours:
        _check_channel(channel)
        with self.store.transaction() as tx:
            cid = load_customer(tx, customer_id).id
            return self.engagement_hours(tx, cid, channel=channel, now=self.clock.timestamp())


def _check_channel(channel: str | None) -> None:
    if channel is not None:
        check_channel(channel, allowed=MESSAGE_CHANNELS)
