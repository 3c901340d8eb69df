"""The retention worker: rows older than each `[retention]` rule's period are removed, in batches,
once per `interval`, on the worker loop like the other periodic jobs."""

from __future__ import annotations

from typing import Final

import attrs

from .._clock import Clock
from .._logging import get_logger
from ..store import SQLStore
from ..store._retention import apply_rule, eligible, record_run, retention_runs
from ._settings import RetentionSettings

__all__ = ["RetentionStatus", "RetentionWorker"]

log = get_logger("omnisdk.privacy")

#: Batches one rule may run per tick, so one long backlog does not hold up journeys and deliveries.
_BATCHES_PER_TICK: Final = 20


@attrs.frozen
class RetentionStatus:
    """One rule as `omnisdk retention` shows it."""

    rule: str
    period_seconds: float
    eligible: int
    last_run_at: float | None
    removed: int


class RetentionWorker:
    def __init__(self, store: SQLStore, clock: Clock, settings: RetentionSettings) -> None:
        self.store, self.clock, self.settings = store, clock, settings
        self._next: float | None = None
        self._backlog = False

    async def tick(self) -> int:
        return self.run() if self.settings.periods and self._due() else 0

    def _due(self) -> bool:
        now = self.clock.timestamp()
        if self._next is None:
            with self.store.transaction(immediate=False) as tx:
                runs = retention_runs(tx)
            last = min((runs[r].last_run_at for r in self.settings.periods if r in runs), default=None)
            self._next = now if last is None else last + self.settings.interval
        return self._backlog or now >= self._next

    def run(self) -> int:
        """One pass: each rule's batches (a bounded number; the rest next tick). Rows removed."""
        now = self.clock.timestamp()
        total = 0
        backlog = False
        for rule, period in self.settings.periods.items():
            cutoff = now - period
            removed = 0
            for _ in range(_BATCHES_PER_TICK):
                with self.store.transaction() as tx:
                    done = apply_rule(tx, rule, cutoff, self.settings.batch_size)
                    removed += done
                    if done < self.settings.batch_size:
                        record_run(tx, rule, now, removed)
                        break
            else:
                backlog = True
                with self.store.transaction() as tx:
                    record_run(tx, rule, now, removed)
            if removed:
                log.info("retention_applied", rule=rule, removed=removed)
            total += removed
        self._backlog = backlog
        self._next = now + self.settings.interval
        return total

    def next_due(self) -> float | None:
        return self._next if self.settings.periods else None

    def status(self) -> list[RetentionStatus]:
        now = self.clock.timestamp()
        with self.store.transaction(immediate=False) as tx:
            runs = retention_runs(tx)
            return [RetentionStatus(rule, period, eligible(tx, rule, now - period),
                                    runs[rule].last_run_at if rule in runs else None,
                                    runs[rule].removed if rule in runs else 0)
                    for rule, period in self.settings.periods.items()]
