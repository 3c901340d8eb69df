"""`BroadcastWorker`: streams each due broadcast's segment a page at a time into the outbox.

Per page, one transaction: renew the lease, read the next page of customer ids after the stored
cursor (keyset over customers.id), work out each recipient's due time, queue the deliveries (key
`broadcast:{id}:{customer_id}`, existing keys left alone) and move the cursor. Memory holds one
page; a crash rolls back at most the page in flight, and whoever takes the lease next resumes
from the cursor. The dispatcher then sends them like any other delivery: same policies, same
channel choice.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .._clock import Clock
from .._errors import ConfigError
from .._logging import get_logger
from ..delivery._outbox import enqueue_deliveries
from ..sendtime import SendTime, local_zone
from ..store import SQLStore, Transaction
from ..store import _broadcasts as broadcasts_db
from ..store._broadcasts import ClaimedBroadcast
from ._plan import Broadcast, broadcast_from_plan

__all__ = ["BroadcastSettings", "BroadcastWorker"]

log = get_logger("omnisdk.broadcasts")


@attrs.frozen(kw_only=True)
class BroadcastSettings:
    """`[analytics]` keys: `broadcast_page_size` (recipients per transaction), `broadcast_pages_per_tick`
    (pages before other workers get a turn), `broadcast_lease_seconds` (how long a silent worker keeps
    a broadcast before another takes over)."""

    page_size: int = 2000
    pages_per_tick: int = 25
    lease_seconds: float = 120.0

    @classmethod
    def from_config(cls, analytics: Mapping[str, Any]) -> BroadcastSettings:
        kwargs: dict[str, Any] = {}
        for key, name, kind in (("broadcast_page_size", "page_size", int),
                                ("broadcast_pages_per_tick", "pages_per_tick", int),
                                ("broadcast_lease_seconds", "lease_seconds", float)):
            if key in analytics:
                value = analytics[key]
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 1:
                    raise ConfigError("expected a number of at least 1", field=f"analytics.{key}")
                kwargs[name] = kind(value)
        return cls(**kwargs)


@attrs.define
class _Streaming:
    """A claimed broadcast: its plan (as the public `Broadcast`) and its segment's page source."""

    broadcast: Broadcast
    claimed: ClaimedBroadcast

    @property
    def audience(self) -> int | None:
        return self.claimed.audience


class BroadcastWorker:
    """A `Worker` of the core, ticked after the segment watcher and before journeys and dispatch.

    `default_timezone` places recipients without one (local-time broadcasts); `sendtime` picks
    best times."""

    def __init__(
        self, store: SQLStore, clock: Clock, sendtime: SendTime, *, default_timezone: str,
        settings: BroadcastSettings | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.sendtime = sendtime
        self.default_timezone = default_timezone
        self.settings = settings or BroadcastSettings()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"  # one per client

    def next_due(self) -> float | None:
        with self.store.transaction(immediate=False) as tx:
            return broadcasts_db.next_broadcast_due(tx, self.owner)

    async def tick(self) -> int:
        """Queue up to `pages_per_tick` pages of due broadcasts; returns how many recipients were
        streamed (plus broadcasts finished), so a page already queued still counts as progress."""
        done = 0
        pages = self.settings.pages_per_tick
        while pages > 0:
            now = self.clock.timestamp()
            claimed = self._claim(now)
            if claimed is None:
                break
            try:
                if claimed.audience is None:
                    self._count_audience(claimed, now)
                while pages > 0:
                    pages -= 1
                    streamed, more = self._page(claimed, now)
                    done += streamed + (0 if more else 1)
                    if not more:
                        break
                    now = self.clock.timestamp()
            except Exception as exc:  # a broken broadcast must not stop the others, nor the worker
                self._failed(claimed.broadcast.id, exc, now)
                done += 1
        return done

    # -- claiming
    def _claim(self, now: float) -> _Streaming | None:
        """Take the lease of the next due broadcast (ours first); fix "now" of its segment on the first claim."""
        with self.store.transaction() as tx:
            claimed = broadcasts_db.claim_broadcast(tx, now=now, owner=self.owner,
                                                    until=now + self.settings.lease_seconds)
        return None if claimed is None else _Streaming(broadcast_from_plan(claimed.plan), claimed)

    def _count_audience(self, streaming: _Streaming, now: float) -> None:
        """The segment's size when streaming starts: the denominator of progress (read-only, no lock held)."""
        with self.store.transaction(immediate=False) as tx:
            audience = broadcasts_db.count_audience(tx, streaming.claimed)
        with self.store.transaction() as tx:
            broadcasts_db.set_audience(tx, streaming.broadcast.id, audience, now)
        streaming.claimed.audience = audience
        log.info("broadcast_started", broadcast=streaming.broadcast.id, audience=audience)

    # -- one page
    def _page(self, streaming: _Streaming, now: float) -> tuple[int, bool]:
        """Queue the next page; returns (recipients streamed, whether more pages may follow)."""
        broadcast = streaming.broadcast
        size = self.settings.page_size
        with self.store.transaction() as tx:
            if not broadcasts_db.renew_broadcast_lease(tx, broadcast.id, owner=self.owner,
                                                       until=now + self.settings.lease_seconds):
                return 0, False  # cancelled, or another worker took over after our lease ran out
            after = broadcasts_db.broadcast_cursor(tx, broadcast.id)
            recipients = broadcasts_db.audience_page(tx, streaming.claimed, after=after, limit=size)
            due = self._due_times(tx, broadcast, recipients, now)
            queued = enqueue_deliveries(
                tx, [(f"broadcast:{broadcast.id}:{cid}", cid, due[i]) for i, (cid, _) in enumerate(recipients)],
                template=broadcast.template, channels=broadcast.channels, now=now, purpose=broadcast.purpose,
                data=broadcast.data, broadcast_id=broadcast.id,
            )
            more = len(recipients) == size
            broadcasts_db.record_page(tx, broadcast.id, after=recipients[-1][0] if recipients else after,
                                      queued=queued, now=now)
            if not more:
                broadcasts_db.finish_enqueueing(tx, broadcast.id, now)
        if not more:
            log.info("broadcast_enqueued", broadcast=broadcast.id)
        return len(recipients), more

    def _due_times(
        self, tx: Transaction, broadcast: Broadcast, recipients: Sequence[tuple[str, str | None]], now: float
    ) -> list[float]:
        timing = broadcast.timing
        if timing.mode == "at":
            return [timing.send_at] * len(recipients)
        if timing.mode == "local_time":
            by_zone: dict[str | None, float] = {}
            for _, tz in recipients:
                if tz not in by_zone:
                    by_zone[tz] = timing.local_due(local_zone(tz, self.default_timezone), now)
            return [by_zone[tz] for _, tz in recipients]
        best = self.sendtime.best_times(
            tx, recipients, channel=broadcast.channels[0] if broadcast.channels else None,
            now=max(now, timing.send_at), within=timing.within or 86400.0, purpose=broadcast.purpose,
        )
        return [best[cid] for cid, _ in recipients]

    def _failed(self, broadcast_id: str, exc: Exception, now: float) -> None:
        """Record why, and let the broadcast be tried again after a lease period (by any worker)."""
        log.error("broadcast_page_failed", broadcast=broadcast_id, error=exc)
        with self.store.transaction() as tx:
            broadcasts_db.record_broadcast_failure(tx, broadcast_id, error=f"{type(exc).__name__}: {exc}",
                                                   retry_at=now + self.settings.lease_seconds, now=now)
