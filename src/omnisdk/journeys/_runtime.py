"""The journey runtime: routes touchpoints to runs, claims due runs with leases, replays them.

One `tick()` does three batches, each in its own transaction:

1. route: unrouted touchpoints start runs (triggers), end runs (`exit_on` goals) and wake runs
   waiting for that event; then they are marked routed. One router at a time (an advisory lock on
   PostgreSQL, the single writer on SQLite) keeps each customer's events in order.
2. merges: when two profiles merged, two active runs of one journey become one (the older wins).
3. runs: claim due runs (`FOR UPDATE SKIP LOCKED` on PostgreSQL) by writing this worker's lease,
   then replay them in one transaction: their messages, step memos and new states are written
   set-based, one statement each for the whole batch. A run's writes are kept only if this worker
   still holds its lease when it stores the new state; if one does not (or a run fails), the
   batch is redone run by run, each in a savepoint.

Every statement is in `omnisdk.store._runs` (and the repositories of the other tables it reads).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from .._clock import Clock
from .._errors import ConfigError, JourneyError, NonDeterminismError, ValidationError
from .._identity import register_customer_table
from .._logging import get_logger
from .._telemetry import NO_TELEMETRY, Telemetry
from ..delivery import cancel_run_deliveries
from ..experiments._assign import GlobalControl
from ..sendtime import SendTime
from ..store import DECODE_ERRORS, SQLStore, Transaction, quarantine_row, touchpoint_json
from ..store import _runs as runs_db
from ..store._deliveries import set_traceparent
from ..store._identities import merges_after
from ..store._runs import ACTIVE, ClaimedRun, KnownRun, NewRun, RoutableTouchpoint, RunOutcome, StepRecord
from ._bandits import BanditShares
from ._context import JourneyContext, SendCheck, Suspend
from ._decorator import Journey
from ._sends import BatchedSends, DirectSends, Sends, TracedSends

__all__ = ["ACTIVE", "JourneySettings", "JourneyRuntime", "end_run"]

log = get_logger("omnisdk.journeys")

register_customer_table("journey_runs")

_CHUNK: Final = 500
#: Run ids are hex with letters for digits: long digit runs look like phone numbers to the log redactor.
_LETTERS_FOR_DIGITS: Final = str.maketrans("0123456789", "ghijklmnop")


def _run_id() -> str:
    return "run_" + uuid.uuid4().hex.translate(_LETTERS_FOR_DIGITS)


def end_run(tx: Transaction, run_id: str, status: str, reason: str, now: float) -> bool:
    """End an active run and cancel what it queued but has not sent. False if it was not active."""
    ended = runs_db.end_run(tx, run_id, status, reason, now)
    if ended:
        cancel_run_deliveries(tx, run_id, reason=reason, now=now)
    return ended


@attrs.frozen(kw_only=True)
class JourneySettings:
    """The `[journeys]` config section: runs per claimed batch, touchpoints per routing batch, how
    long a claim holds, how often a failing run is retried, and the worker's polling interval
    (None: 1 s on SQLite, 5 s on PostgreSQL, where new work also wakes it)."""

    batch_size: int = 500
    route_batch_size: int = 1000
    lease_seconds: float = 300.0
    max_attempts: int = 5
    poll_interval: float | None = None

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> JourneySettings:
        section = section or {}
        try:
            return cls(
                batch_size=int(section.get("batch_size", 500)),
                route_batch_size=int(section.get("route_batch_size", 1000)),
                lease_seconds=float(section.get("lease_seconds", 300)),
                max_attempts=int(section.get("max_attempts", 5)),
                poll_interval=None if section.get("poll_interval") is None else float(section["poll_interval"]),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc), field="journeys") from None


class _UnreadableRun(Exception):
    """A claimed run whose stored trigger does not decode: quarantined instead of replayed."""


class _RedoCarefully(Exception):
    """A fast batch hit a failing run, a lost lease or a taken delivery key: redo it run by run."""


class JourneyRuntime:
    """A `Worker` of the core: the store it works in, the clock, the send-time optimiser that
    `ctx.send(..., at="best_time")` asks, and the global control group `ctx.experiment` leaves out."""

    def __init__(
        self, store: SQLStore, clock: Clock, settings: JourneySettings | None = None, *,
        sendtime: SendTime | None = None, global_control: GlobalControl | None = None,
        check_send: SendCheck | None = None,
        telemetry: Telemetry = NO_TELEMETRY,
    ) -> None:
        self.telemetry = telemetry
        self.store = store
        #: Checks a send's topic and content (the core's `check_send`): at registration for declarative
        #: journeys, at `ctx.send` for code.
        self.check_send = check_send
        self.clock = clock
        self.sendtime = sendtime
        #: Members are not exposed to marketing experiments (they receive no marketing at all).
        self.global_control = global_control
        self.bandits = BanditShares()  # the shares of bandit experiments, refreshed hourly
        self.settings = settings or JourneySettings()
        self.batch_size = self.settings.batch_size
        self.route_batch_size = self.settings.route_batch_size
        self.lease_seconds = self.settings.lease_seconds
        self.max_attempts = self.settings.max_attempts
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.journeys: dict[str, dict[str, Journey]] = {}
        self.current: dict[str, Journey] = {}
        self._triggers: dict[str, list[str]] = {}
        self._goals: set[str] = set()

    # -- registration
    def register(self, journey: Journey) -> Journey:
        """Add a journey version; the version registered last is the one new runs start on."""
        if not isinstance(journey, Journey):
            raise ValidationError("expected a journey (from @journey, omnisdk.journeys.from_dict or from_yaml)",
                                  field="journey", value=journey)
        if self.check_send is not None and journey.graph is not None:
            for node_id, spec in (journey.graph.get("nodes") or {}).items():
                if isinstance(spec, Mapping) and "send" in spec:
                    self.check_send(spec["send"], spec.get("purpose", "marketing"), spec.get("topic"), spec.get("data"),
                                    f"{journey.id}.nodes.{node_id}.topic")
        self.journeys.setdefault(journey.id, {})[journey.version] = journey
        self.current[journey.id] = journey
        self._triggers = {}
        for current in self.current.values():
            for event in current.trigger:
                self._triggers.setdefault(event, []).append(current.id)
        self._goals = {g for versions in self.journeys.values() for j in versions.values() for g in j.exit_on}
        return journey

    def version(self, journey_id: str, version: str) -> Journey:
        found = self.journeys.get(journey_id, {}).get(version)
        if found is None:
            known = ", ".join(self.journeys.get(journey_id, {})) or "none"
            raise JourneyError(
                f"journey {journey_id!r} version {version!r} is not registered (registered versions: {known}); "
                "migrate the run to a registered version or cancel it"
            )
        return found

    # -- the Worker protocol
    async def tick(self) -> int:
        if not self.journeys:
            return 0
        return self.route() + self.reconcile_merges() + await self.run_due()

    def next_due(self) -> float | None:
        if not self.journeys:
            return None
        with self.store.transaction(immediate=False) as tx:
            if runs_db.has_unrouted(tx) or merges_after(tx, runs_db.merge_cursor(tx), 1):
                return self.clock.timestamp()
            return runs_db.next_run_due(tx, list(self.journeys))

    # -- 1. routing
    def route(self) -> int:
        now = self.clock.timestamp()
        with self.store.transaction() as tx:
            if not runs_db.try_router_lock(tx):
                return 0
            seqs, events = runs_db.unrouted_touchpoints(tx, self.route_batch_size)
            if not seqs:
                return 0
            known = runs_db.runs_of_customers(tx, list(dict.fromkeys(e.customer_id for e in events)))
            waiting = {cid for cid, runs in known.items() if any(r.active for r in runs)}
            starts: list[NewRun] = []
            for event in events:
                runs = known.setdefault(event.customer_id, [])
                if event.name in self._goals:
                    self._reach_goal(tx, runs, event, starts, now)
                for journey_id in self._triggers.get(event.name, ()):
                    journey = self.current[journey_id]
                    if self._may_enter(journey, runs) and self._matches(journey, event):
                        starts.append(self._new_run(journey, event))
                        runs.append(KnownRun(starts[-1].id, journey_id, journey.version, event.seq, active=True))
            runs_db.insert_runs(tx, starts, now)
            runs_db.wake_runs(tx, list(dict.fromkeys((e.customer_id, e.name) for e in events
                                                     if e.customer_id in waiting)), now)
            runs_db.mark_routed(tx, seqs)
        return len(seqs)

    @staticmethod
    def _may_enter(journey: Journey, runs: Sequence[KnownRun]) -> bool:
        if journey.reentry == "always":
            return True
        mine = [r for r in runs if r.journey == journey.id]
        return not mine if journey.reentry == "never" else not any(r.active for r in mine)

    @staticmethod
    def _matches(journey: Journey, event: RoutableTouchpoint) -> bool:
        if not journey.trigger_where:
            return True
        return all(event.properties.get(k) == v for k, v in journey.trigger_where.items())

    @staticmethod
    def _new_run(journey: Journey, event: RoutableTouchpoint) -> NewRun:
        return NewRun(_run_id(), journey.id, journey.version, event.customer_id,
                      None if journey.reentry == "always" else event.customer_id, event.as_trigger(), event.seq)

    def _reach_goal(
        self, tx: Transaction, runs: Sequence[KnownRun], event: RoutableTouchpoint, starts: list[NewRun], now: float
    ) -> None:
        for run in runs:
            if not run.active or run.trigger_seq >= event.seq:
                continue
            definition = self.journeys.get(run.journey, {}).get(run.version) or self.current.get(run.journey)
            if definition is not None and event.name in definition.exit_on:
                if starts:  # the run may have started in this batch: store it before ending it
                    runs_db.insert_runs(tx, starts, now)
                    starts.clear()
                end_run(tx, run.id, "exited", f"goal reached: {event.name}", now)
                run.active = False

    # -- 2. merged profiles
    def reconcile_merges(self) -> int:
        """Two active runs of one journey on a merged profile: the older continues, the other is cancelled."""
        now = self.clock.timestamp()
        with self.store.transaction() as tx:
            merges = merges_after(tx, runs_db.merge_cursor(tx), _CHUNK)
            if not merges:
                return 0
            for winner in dict.fromkeys(w for _, w in merges):
                kept: dict[str, str] = {}
                for run_id, journey_id in runs_db.active_runs_of(tx, winner):
                    if journey_id not in kept:
                        kept[journey_id] = run_id
                    else:
                        end_run(tx, run_id, "cancelled",
                                f"profiles merged into {winner}: run {kept[journey_id]} continues", now)
            runs_db.set_merge_cursor(tx, merges[-1][0])
        return len(merges)

    # -- 3. due runs
    def claim(self) -> list[ClaimedRun]:
        """Lease a batch of due runs to this worker; a lease that runs out makes them due again.

        A run that does not decode is quarantined."""
        now = self.clock.timestamp()
        with self.store.transaction() as tx:
            return runs_db.claim_runs(tx, list(self.journeys), now=now, owner=self.worker_id,
                                      until=now + self.lease_seconds, limit=self.batch_size)

    async def run_due(self) -> int:
        """Replay a batch of due runs. Fast path: one transaction, writes set-based across runs.
        If any run fails or lost its lease, that transaction is rolled back and the batch is
        redone run by run, each in a savepoint, so one run's trouble never costs another's work."""
        runs = self.claim()
        if not runs:
            return 0
        now = self.clock.timestamp()
        try:
            with self.store.transaction() as tx:
                await self._run_batch(tx, runs, now)
        except _RedoCarefully:
            with self.store.transaction() as tx:
                steps, kept = self._load_steps(tx, runs)
                sends = DirectSends()
                for run in kept:
                    await self._advance(tx, run, steps.get(run.id, {}), sends, now)
        return len(runs)

    def _load_steps(
        self, tx: Transaction, runs: Sequence[ClaimedRun]
    ) -> tuple[dict[str, dict[str, StepRecord]], list[ClaimedRun]]:
        """The step logs of `runs`, and the runs to replay: a run with an unreadable step is
        quarantined with it (replaying it would redo that step)."""
        steps, broken = runs_db.load_steps(tx, [r.id for r in runs])
        for run_id in broken:
            quarantine_row(tx, "journey_runs", (run_id,), JourneyError("an entry of its step log is quarantined"))
            steps.pop(run_id, None)
        return steps, [r for r in runs if r.id not in broken]

    async def _replay(
        self, tx: Transaction, run: ClaimedRun, steps: dict[str, StepRecord], sends: Sends, now: float
    ) -> RunOutcome:
        """Run the journey function from the top; returns where it suspended, or that it finished."""
        definition = self.version(run.journey, run.version)
        try:  # decoded here, where it is used, and not in the claim: the batch holds no decoded triggers
            decoded = touchpoint_json(run.trigger)
        except DECODE_ERRORS as exc:
            raise _UnreadableRun(exc) from exc
        traced = TracedSends(sends) if self.telemetry.enabled else None
        ctx = JourneyContext(
            tx=tx, run_id=run.id, journey_id=run.journey, version=run.version, customer_id=run.customer_id,
            trigger=decoded or {}, trigger_seq=run.trigger_seq, now=now, steps=steps,
            sends=sends if traced is None else traced,
            sendtime=self.sendtime, global_control=self.global_control, bandits=self.bandits,
            check_send=self.check_send,
        )
        if traced is not None:
            return await self._traced_replay(tx, run, definition.fn, ctx, traced)
        try:
            await definition.fn(ctx)
        except Suspend as suspended:
            return RunOutcome(run.id, completed=False, step=suspended.step, wait_event=suspended.wait_event,
                              due_at=suspended.due_at)
        return RunOutcome(run.id, completed=True)

    async def _traced_replay(
        self, tx: Transaction, run: ClaimedRun, fn: Any, ctx: JourneyContext, traced: TracedSends
    ) -> RunOutcome:
        """`_replay` under a `omnisdk.journey.step` span; the messages it queues keep its trace context,
        so their `omnisdk.deliver` spans join this trace."""
        t = self.telemetry
        span = t.start("omnisdk.journey.step", {"omnisdk.run_id": run.id, "omnisdk.journey": run.journey,
                                                "omnisdk.customer_id": run.customer_id})
        try:
            with t.current(span):
                await fn(ctx)
        except Suspend as suspended:
            t.end(span, {"omnisdk.step": suspended.step or "", "omnisdk.status": "waiting"})
            return RunOutcome(run.id, completed=False, step=suspended.step, wait_event=suspended.wait_event,
                              due_at=suspended.due_at)
        except Exception as exc:
            t.end(span, error=type(exc).__name__)
            raise
        finally:
            traceparent = t.traceparent(span)
            if traced.ids and traceparent:
                ids = list(traced.ids)
                tx.before_commit(lambda: set_traceparent(tx, ids, traceparent))
        t.end(span, {"omnisdk.status": "completed"})
        return RunOutcome(run.id, completed=True)

    async def _run_batch(self, tx: Transaction, runs: Sequence[ClaimedRun], now: float) -> None:
        steps, runs = self._load_steps(tx, runs)
        sends = BatchedSends()
        outcomes = []
        for run in runs:
            try:
                outcomes.append(await self._replay(tx, run, steps.setdefault(run.id, {}), sends, now))
            except Exception as exc:
                raise _RedoCarefully from exc
        if not sends.flush(tx, now):
            raise _RedoCarefully
        new, changed = self._step_rows([(o.run_id, steps[o.run_id]) for o in outcomes])
        runs_db.insert_steps(tx, new, now)
        runs_db.update_steps(tx, changed, now)
        if runs_db.store_outcomes(tx, outcomes, owner=self.worker_id, now=now) != len(outcomes):
            raise _RedoCarefully  # some lease was lost meanwhile

    async def _advance(
        self, tx: Transaction, run: ClaimedRun, steps: dict[str, StepRecord], sends: Sends, now: float
    ) -> None:
        with runs_db.run_savepoint(tx) as savepoint:
            try:
                outcome = await self._replay(tx, run, steps, sends, now)
                new, changed = self._step_rows([(run.id, steps)])
                runs_db.insert_steps(tx, new, now)
                runs_db.update_steps(tx, changed, now)
                stored = runs_db.store_outcomes(tx, [outcome], owner=self.worker_id, now=now)
            except _UnreadableRun as exc:  # a row no replay can read: set aside, not retried
                savepoint.discard()
                quarantine_row(tx, "journey_runs", (run.id,), exc.__cause__ or exc)
            except Exception as exc:  # the journey's bug must not take the runner down
                savepoint.discard()
                self._failed(tx, run, exc, now)
            else:
                if not stored:  # the lease was lost (woken, exited, or claimed by another worker): discard
                    savepoint.discard()

    @staticmethod
    def _step_rows(
        logs: Sequence[tuple[str, dict[str, StepRecord]]],
    ) -> tuple[list[tuple[str, str, StepRecord]], list[tuple[str, str, StepRecord]]]:
        """What to write to the step logs: new steps, and steps whose result changed (a wait resolved)."""
        new = [(run_id, name, r) for run_id, steps in logs for name, r in steps.items() if r.new]
        changed = [(run_id, name, r) for run_id, steps in logs for name, r in steps.items() if r.dirty and not r.new]
        return new, changed

    def _failed(self, tx: Transaction, run: ClaimedRun, exc: Exception, now: float) -> None:
        """Retry with backoff; a definition problem (changed code, missing version) fails at once."""
        attempts = run.attempts + 1
        permanent = isinstance(exc, JourneyError | NonDeterminismError) or attempts >= self.max_attempts
        runs_db.fail_run(tx, run.id, owner=self.worker_id, reason=f"{type(exc).__name__}: {exc}", attempts=attempts,
                         now=now, retry_at=None if permanent else now + min(3600.0, 30.0 * 2**attempts))
        log.warning("journey_run_failed" if permanent else "journey_run_retry", run_id=run.id, journey=run.journey,
                    attempts=attempts, error_type=type(exc).__name__)
