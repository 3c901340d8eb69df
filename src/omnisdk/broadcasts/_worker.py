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
from typing import TYPE_CHECKING, Any

import attrs

from .._errors import ConfigError
from .._logging import get_logger
from ..delivery._outbox import enqueue_deliveries
from ..sendtime import local_zone
from ..store import Transaction, decode_row, json_array, text, timestamp
from ._plan import BROADCAST_COLUMNS, Broadcast, broadcast_from_row

if TYPE_CHECKING:
    from .._core import Core

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
    """A claimed broadcast: its plan and where its segment is evaluated."""

    broadcast: Broadcast
    where: str
    params: list[Any]
    audience: int | None


class BroadcastWorker:
    """A `Worker` of the core, ticked after the segment watcher and before journeys and dispatch."""

    def __init__(self, core: Core, settings: BroadcastSettings | None = None) -> None:
        self.core = core
        self.settings = settings or BroadcastSettings.from_config(core.config.raw.get("analytics") or {})
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"  # one per client

    def next_due(self) -> float | None:
        with self.core.store.transaction(immediate=False) as tx:
            due = tx.scalar(
                "SELECT MIN(CASE WHEN lease_owner = ? OR lease_until IS NULL OR lease_until < start_at THEN start_at "
                "ELSE lease_until END) FROM broadcasts WHERE status IN ('scheduled', 'enqueueing')",
                (self.owner,),
            )
        return float(due) if due is not None else None

    async def tick(self) -> int:
        """Queue up to `pages_per_tick` pages of due broadcasts; returns how many recipients were
        streamed (plus broadcasts finished), so a page already queued still counts as progress."""
        done = 0
        pages = self.settings.pages_per_tick
        while pages > 0:
            now = self.core.clock.timestamp()
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
                    now = self.core.clock.timestamp()
            except Exception as exc:  # a broken broadcast must not stop the others, nor the worker
                self._failed(claimed.broadcast.id, exc, now)
                done += 1
        return done

    # -- claiming
    def _claim(self, now: float) -> _Streaming | None:
        """Take the lease of the next due broadcast (ours first); fix "now" of its segment on the first claim."""
        with self.core.store.transaction() as tx:
            while True:
                row = tx.one(
                    f"SELECT {BROADCAST_COLUMNS}, segment_sql, segment_params, segment_now, evaluated_at, audience "
                    "FROM broadcasts WHERE status IN ('scheduled', 'enqueueing') AND start_at <= ? "
                    "AND (lease_owner = ? OR lease_until IS NULL OR lease_until < ?) "
                    "ORDER BY CASE WHEN lease_owner = ? THEN 0 ELSE 1 END, start_at LIMIT 1" + tx.dialect.skip_locked,
                    (now, self.owner, now, self.owner),
                )
                if row is None:
                    return None
                streaming = decode_row(tx, "broadcasts", row, lambda r: _streaming(r, now))
                if streaming is not None:
                    break
            tx.execute(
                "UPDATE broadcasts SET status = 'enqueueing', lease_owner = ?, lease_until = ?, "
                "evaluated_at = COALESCE(evaluated_at, ?), updated_at = ? WHERE id = ?",
                (self.owner, now + self.settings.lease_seconds, now, now, streaming.broadcast.id),
            )
        return streaming

    def _count_audience(self, streaming: _Streaming, now: float) -> None:
        """The segment's size when streaming starts: the denominator of progress (read-only, no lock held)."""
        with self.core.store.transaction(immediate=False) as tx:
            audience = int(tx.scalar(f"SELECT COUNT(*) FROM customers c WHERE {streaming.where}", streaming.params))
        with self.core.store.transaction() as tx:
            tx.execute("UPDATE broadcasts SET audience = ?, updated_at = ? WHERE id = ?",
                       (audience, now, streaming.broadcast.id))
        streaming.audience = audience
        log.info("broadcast_started", broadcast=streaming.broadcast.id, audience=audience)

    # -- one page
    def _page(self, streaming: _Streaming, now: float) -> tuple[int, bool]:
        """Queue the next page; returns (recipients streamed, whether more pages may follow)."""
        broadcast = streaming.broadcast
        size = self.settings.page_size
        with self.core.store.transaction() as tx:
            held = tx.execute(
                "UPDATE broadcasts SET lease_until = ? WHERE id = ? AND lease_owner = ? AND status = 'enqueueing'",
                (now + self.settings.lease_seconds, broadcast.id, self.owner),
            )
            if not held:  # cancelled, or another worker took over after our lease ran out
                return 0, False
            after = tx.scalar("SELECT after_customer FROM broadcasts WHERE id = ?", (broadcast.id,))
            recipients: list[tuple[str, str | None]] = [
                (r[0], r[1]) for r in tx.query(
                    f"SELECT c.id, c.timezone FROM customers c WHERE {streaming.where} AND c.id > ? "
                    "ORDER BY c.id LIMIT ?", (*streaming.params, after, size),
                )
            ]
            due = self._due_times(tx, broadcast, recipients, now)
            queued = enqueue_deliveries(
                tx, [(f"broadcast:{broadcast.id}:{cid}", cid, due[i]) for i, (cid, _) in enumerate(recipients)],
                template=broadcast.template, channels=broadcast.channels, now=now, purpose=broadcast.purpose,
                data=broadcast.data, broadcast_id=broadcast.id,
            )
            more = len(recipients) == size
            tx.execute(
                "UPDATE broadcasts SET after_customer = ?, enqueued = enqueued + ?, updated_at = ? WHERE id = ?",
                (recipients[-1][0] if recipients else after, queued, now, broadcast.id),
            )
            if not more:
                tx.execute(
                    "UPDATE broadcasts SET status = 'enqueued', enqueued_at = ?, lease_owner = NULL, "
                    "lease_until = NULL WHERE id = ?", (now, broadcast.id),
                )
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
            default = self.core.policy_rules.default_timezone
            by_zone: dict[str | None, float] = {}
            for _, tz in recipients:
                if tz not in by_zone:
                    by_zone[tz] = timing.local_due(local_zone(tz, default), now)
            return [by_zone[tz] for _, tz in recipients]
        best = self.core.sendtime.best_times(
            tx, recipients, channel=broadcast.channels[0] if broadcast.channels else None,
            now=max(now, timing.send_at), within=timing.within or 86400.0, purpose=broadcast.purpose,
        )
        return [best[cid] for cid, _ in recipients]

    def _failed(self, broadcast_id: str, exc: Exception, now: float) -> None:
        """Record why, and let the broadcast be tried again after a lease period (by any worker)."""
        log.error("broadcast_page_failed", broadcast=broadcast_id, error=exc)
        with self.core.store.transaction() as tx:
            tx.execute(
                "UPDATE broadcasts SET error = ?, lease_owner = NULL, lease_until = ?, updated_at = ? WHERE id = ?",
                (f"{type(exc).__name__}: {exc}"[:500], now + self.settings.lease_seconds, now, broadcast_id),
            )


def _streaming(row: Sequence[Any], now: float) -> _Streaming:
    """A due broadcast's plan; "now" of its segment is when it was first claimed (this claim, if none yet)."""
    *columns, sql, params, now_at, evaluated, audience = row
    values = json_array(params)
    evaluated = now if evaluated is None else timestamp(evaluated)
    for i in json_array(now_at):
        values[i] = evaluated
    return _Streaming(broadcast_from_row(columns), text(sql), values, None if audience is None else int(audience))
