"""Deliveries whose send outcome is unknown ("in doubt"), settled before anything else happens to them.

A delivery is in doubt when its call may have reached the provider and no answer says what became
of it: a dropped connection after the request was written, a read timeout, a plugin that raised
mid-call, a worker that crashed or was cancelled while the row was `sending`. It stays `sending`,
its lease expired (at once for what this worker saw, after `lease_seconds` for a crash), and the
next tick settles it here:

* a provider with `Capabilities.reconcile` is asked first (`Provider.reconcile`): `Accepted` → `sent`
  with the provider's id; `NotSent` → queued again (the only way such a row is resent); `StillUnknown`
  → asked again later, at most `reconcile_max_lookups` times and until `reconcile_max_age` seconds
  after the attempt, then `failed` with the reason;
* any other provider keeps its declared crash policy: resent when it dedupes on the idempotency key
  or declares `at_least_once`, otherwise `failed` (never a duplicate).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .._clock import Clock
from .._identity import load_customers
from .._logging import get_logger
from .._recorder import Recorder
from ..providers import Accepted, InDoubt, NotSent, Outgoing, Reconciliation, StillUnknown
from ..store import SQLStore
from ..store._deliveries import HELD_SENDING, Change, DoubtRow, content_from_json, lease_for_lookup, take_in_doubt
from ._held import Doubt, Writes, entry, sent_touchpoint
from ._limits import retry_delay
from ._outcomes import resend_safe
from ._providers import ConfiguredProvider, ProviderPool
from ._settings import DeliverySettings

__all__ = ["Reconciler"]

log = get_logger("omnisdk.delivery")

#: In-doubt rows taken per tick, and deliveries per `Provider.reconcile` call.
_TAKE = 1000
_LOOKUP_BATCH = 100


class Reconciler:
    """Step 1 of a tick: settle the rows left in doubt (by this worker, or by one that died)."""

    def __init__(
        self, *, store: SQLStore, clock: Clock, settings: DeliverySettings, pool: ProviderPool, owner: str,
        recorder: Recorder, load: Callable[[Sequence[str]], Sequence[Any]],
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.pool = pool
        self.owner = owner
        self.recorder = recorder
        self.load = load

    async def run(self, now: float) -> int:
        """Settle what is in doubt now; how many rows were settled or looked up."""
        doubts, settled = self._take(now)
        if doubts:
            answers = await self._lookups(doubts)
            self._record(doubts, answers)
        count = settled + len(doubts)
        if count:
            log.warning("deliveries_reconciled", count=count, looked_up=len(doubts))
        return count

    def _take(self, now: float) -> tuple[list[Doubt], int]:
        """Rows `sending` past their lease: those a provider can be asked about (leased to this worker
        for the lookup) and how many were settled at once by their provider's crash policy."""
        doubts: list[Doubt] = []
        writes = Writes()
        with self.store.transaction() as tx:
            rows = take_in_doubt(tx, now, _TAKE)
            if not rows:
                return [], 0
            customers = load_customers(tx, {r.customer_id for r in rows if r.sent_content is not None})
            for row in rows:
                configured = self.pool.find(row.channel, row.provider) if row.provider else None
                content = content_from_json(row.sent_content)
                customer = customers.get(row.customer_id)
                if (configured is None or not configured.capabilities.reconcile or content is None
                        or customer is None or row.address is None):
                    self._by_policy(writes, row, configured, now)
                    continue
                outgoing = Outgoing(
                    delivery_id=row.id, idempotency_key=f"{row.idempotency_key}:{row.channel}",
                    customer_id=customer.id, to=row.address, content=content, purpose=row.purpose,
                    customer=customer, address=customer.address if row.channel == "direct_mail" else None,
                    metadata={"delivery_id": row.id, "template": row.template, "journey": row.journey,
                              "step": row.step, "run_id": row.run_id},
                    from_profile=True,
                )
                attempted = row.attempted_at if row.attempted_at is not None else now
                lookup = InDoubt(outgoing=outgoing, attempted_at=datetime.fromtimestamp(attempted, UTC),
                                 lookups=row.lookups)
                doubts.append(Doubt(
                    id=row.id, customer_id=row.customer_id, template=row.template, channel=row.channel,
                    channels=row.channels, failed_channels=row.failed_channels, provider=configured,
                    purpose=row.purpose, journey=row.journey, step=row.step, run_id=row.run_id,
                    fallback_after=row.fallback_after, attempted_at=attempted, lookups=row.lookups, lookup=lookup,
                ))
            # leased for the lookup: no other worker asks about them meanwhile
            lease_for_lookup(tx, [d.id for d in doubts], owner=self.owner, until=now + self.settings.lease_seconds)
            writes.flush(tx, self.recorder, self.load)
        return doubts, len(rows) - len(doubts)

    def _by_policy(self, writes: Writes, row: DoubtRow, configured: ConfiguredProvider | None, now: float) -> None:
        """No lookup possible: resend where that cannot duplicate or the policy says so, else fail."""
        caps = configured.capabilities if configured else None
        if caps is not None and resend_safe(caps):
            why = "provider dedupes on the idempotency key" if caps.idempotency_keys else "at_least_once"
            writes.change(
                Change(row.id, {"status": "queued", "due_at": now, "lease_owner": None, "lease_until": None,
                                "updated_at": now}),
                entry(row.id, now, "reconcile", row.channel, f"interrupted mid-send; sent again ({why})"),
            )
            return
        reason = "interrupted mid-send; outcome unknown, not sent again (at_most_once)"
        writes.change(
            Change(row.id, {"status": "failed", "error": reason, "lease_owner": None, "lease_until": None,
                            "updated_at": now}),
            entry(row.id, now, "reconcile", row.channel, reason),
        )

    async def _lookups(self, doubts: list[Doubt]) -> dict[str, Reconciliation]:
        """Every provider asked about its rows, `_LOOKUP_BATCH` at a time, providers side by side."""
        groups: dict[str, list[Doubt]] = defaultdict(list)
        for doubt in doubts:
            groups[doubt.provider.key].append(doubt)
        answers: dict[str, Reconciliation] = {}

        async def ask(items: list[Doubt]) -> None:
            for start in range(0, len(items), _LOOKUP_BATCH):
                chunk = items[start : start + _LOOKUP_BATCH]
                answers.update(zip([d.id for d in chunk], await self._ask(chunk[0].provider, chunk), strict=True))

        await asyncio.gather(*(ask(items) for items in groups.values()))
        return answers

    async def _ask(self, configured: ConfiguredProvider, chunk: list[Doubt]) -> list[Reconciliation]:
        """One `Provider.reconcile` call; whatever goes wrong in it leaves the whole chunk `StillUnknown`."""
        try:
            provider = self.pool.instance(configured)
            answers = list(await provider.reconcile([d.lookup for d in chunk if d.lookup is not None]))
        except Exception as exc:
            log.warning("provider_reconcile_raised", provider=configured.key, error=exc)
            return [StillUnknown(reason=f"lookup raised {type(exc).__name__}")] * len(chunk)
        if len(answers) != len(chunk) or not all(isinstance(a, Accepted | NotSent | StillUnknown) for a in answers):
            reason = f"lookup gave {len(answers)} answers for {len(chunk)} deliveries"
            log.error("provider_bad_reconciliations", provider=configured.key, reason=reason)
            return [StillUnknown(reason=reason)] * len(chunk)
        return answers

    def _record(self, doubts: list[Doubt], answers: Mapping[str, Reconciliation]) -> None:
        now = self.clock.timestamp()
        writes = Writes()
        for doubt in doubts:
            answer = answers[doubt.id]
            name = doubt.provider.name
            if isinstance(answer, Accepted):
                segments = answer.details.get("segments")
                writes.change(
                    self._held(doubt, {
                        "status": "sent", "provider_message_id": answer.provider_message_id, "cost": answer.cost,
                        "segments": int(segments) if isinstance(segments, int) else None, "error": None,
                        "sent_at": doubt.attempted_at, "fallback_due": doubt.fallback_due(doubt.attempted_at),
                        "lease_owner": None, "lease_until": None, "updated_at": now}),
                    entry(doubt.id, now, "sent", doubt.channel, f"looked up at {name}: it took the message"),
                    touchpoint=sent_touchpoint(doubt, provider_message_id=answer.provider_message_id, at=now),
                )
            elif isinstance(answer, NotSent):
                writes.change(
                    self._held(doubt, {"status": "queued", "due_at": now, "lookups": 0, "lease_owner": None,
                                       "lease_until": None, "updated_at": now}),
                    entry(doubt.id, now, "reconcile", doubt.channel,
                          f"looked up at {name}: not sent ({answer.reason}); sending again"),
                )
            else:
                self._still_unknown(writes, doubt, answer, now)
        with self.store.transaction() as tx:
            writes.flush(tx, self.recorder, self.load)

    def _held(self, doubt: Doubt, values: dict[str, Any]) -> Change:
        """A change to `doubt` while this worker still holds it for the lookup."""
        return Change(doubt.id, values, owner=self.owner, statuses=HELD_SENDING)

    def _still_unknown(self, writes: Writes, doubt: Doubt, answer: StillUnknown, now: float) -> None:
        """Ask again later, within the bounds; past them the delivery ends `failed` with the reason."""
        lookups = doubt.lookups + 1
        age = now - doubt.attempted_at
        if lookups >= self.settings.reconcile_max_lookups or age >= self.settings.reconcile_max_age:
            reason = (f"outcome unknown after {lookups} lookups over {age:.0f}s, not sent again: "
                      f"{answer.reason}")
            writes.change(
                self._held(doubt, {"status": "failed", "error": reason, "lookups": lookups, "lease_owner": None,
                                   "lease_until": None, "updated_at": now}),
                entry(doubt.id, now, "failed", doubt.channel, reason),
            )
            return
        delay = min(retry_delay(lookups, answer.retry_after), max(1.0, self.settings.reconcile_max_age - age))
        writes.change(
            self._held(doubt, {"lookups": lookups, "lease_owner": None, "lease_until": now + delay,
                               "error": answer.reason, "updated_at": now}),
            entry(doubt.id, now, "reconcile", doubt.channel,
                  f"still unknown ({answer.reason}); asking again in {delay:.0f}s"),
        )
