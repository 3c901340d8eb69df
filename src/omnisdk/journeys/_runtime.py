"""The journey runtime: routes touchpoints to runs, claims due runs with leases, replays them.

One `tick()` does three batches, each in its own transaction:

1. route: unrouted touchpoints start runs (triggers), end runs (`exit_on` goals) and wake runs
   waiting for that event; then they are marked routed. One router at a time (an advisory lock on
   PostgreSQL, the single writer on SQLite) keeps each customer's events in order.
2. merges: when two profiles merged, two active runs of one journey become one (the older wins).
3. runs: claim due runs (`FOR UPDATE SKIP LOCKED` on PostgreSQL) by writing this worker's lease,
   then replay each in a savepoint of one transaction. A run's writes (step log, deliveries, new
   state) are kept only if this worker still holds its lease when it stores the new state.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs

from .._errors import JourneyError, NonDeterminismError, ValidationError
from .._identity import register_customer_table
from .._logging import get_logger
from .._touchpoints import CHANNELS
from ..delivery import cancel_run_deliveries
from ..store import (
    DECODE_ERRORS,
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
    TOUCHPOINT_COLUMNS,
    Transaction,
    decode_rows,
    integer,
    json_object,
    loads,
    quarantine_row,
    text,
    timestamp,
    touchpoint_json,
)
from ..store import channel as channel_name
from ._context import JourneyContext, StepRecord, Suspend
from ._decorator import Journey

if TYPE_CHECKING:
    from .._core import Core

__all__ = ["ACTIVE", "JourneyRuntime", "end_run"]

log = get_logger("omnisdk.journeys")

register_customer_table("journey_runs")

ACTIVE: Final = ("running", "waiting")
_ACTIVE_SQL: Final = "status IN ('running', 'waiting')"
#: One router per schema: keyed by the schema too, so apps on separate schemas of one database
#: route independently.
ROUTER_LOCK_SQL: Final = "SELECT pg_try_advisory_xact_lock(7206312, hashtext(current_schema()))"
_CHUNK: Final = 500
_CHANNELS: Final = frozenset(CHANNELS)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


#: Run ids are hex with letters for digits: long digit runs look like phone numbers to the log redactor.
_LETTERS_FOR_DIGITS: Final = str.maketrans("0123456789", "ghijklmnop")
#: One encoder for the step log (json.dumps builds a new one per call when given options).
_encode: Final = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _run_id() -> str:
    return "run_" + uuid.uuid4().hex.translate(_LETTERS_FOR_DIGITS)


def _marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items))


def end_run(tx: Transaction, run_id: str, status: str, reason: str, now: float) -> bool:
    """End an active run and cancel what it queued but has not sent. False if it was not active."""
    ended = tx.execute(
        "UPDATE journey_runs SET status = ?, reason = ?, active_key = NULL, wait_event = NULL, due_at = NULL, "
        f"lease_owner = NULL, ended_at = ?, updated_at = ? WHERE id = ? AND {_ACTIVE_SQL}",
        (status, reason, now, now, run_id),
    )
    if ended:
        cancel_run_deliveries(tx, run_id, reason=reason, now=now)
    return bool(ended)


_INSERT_STEP: Final = (
    "INSERT INTO journey_steps (run_id, step, kind, args, result, done, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_STEP: Final = "UPDATE journey_steps SET result = ?, done = ?, recorded_at = ? WHERE run_id = ? AND step = ?"
_SUSPEND_RUN: Final = (
    "UPDATE journey_runs SET status = 'waiting', step = ?, wait_event = ?, due_at = ?, lease_owner = NULL, "
    "attempts = 0, updated_at = ? WHERE id = ? AND lease_owner = ?"
)
_COMPLETE_RUN: Final = (
    "UPDATE journey_runs SET status = 'completed', active_key = NULL, step = NULL, wait_event = NULL, due_at = NULL, "
    "lease_owner = NULL, ended_at = ?, updated_at = ? WHERE id = ? AND lease_owner = ?"
)


_INSERT_RUN: Final = (
    "INSERT INTO journey_runs (id, journey, version, customer_id, active_key, status, trigger, trigger_seq, due_at, "
    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)


@attrs.define
class _KnownRun:
    """What routing needs to know of a customer's run."""

    id: str
    journey: str
    version: str
    trigger_seq: int
    active: bool


class _UnreadableRun(Exception):
    """A claimed run whose stored trigger does not decode: quarantined instead of replayed."""


class _RedoCarefully(Exception):
    """A fast batch hit a failing run or a lost lease: redo the batch run by run."""


class JourneyRuntime:
    """A `Worker` of the core. Settings come from the `[journeys]` config section."""

    def __init__(self, core: Core) -> None:
        self.core = core
        settings: Mapping[str, Any] = core.config.raw.get("journeys", {}) or {}
        self.batch_size = int(settings.get("batch_size", 500))
        self.route_batch_size = int(settings.get("route_batch_size", 1000))
        self.lease_seconds = float(settings.get("lease_seconds", 300))
        self.max_attempts = int(settings.get("max_attempts", 5))
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
        with self.core.store.transaction(immediate=False) as tx:
            if tx.scalar("SELECT 1 FROM touchpoints WHERE routed = 0 LIMIT 1"):
                return self.core.clock.timestamp()
            if self._merges_after(tx, self._merge_cursor(tx), 1):
                return self.core.clock.timestamp()
            names = list(self.journeys)
            due = tx.scalar(
                f"SELECT MIN(due_at) FROM journey_runs WHERE {_ACTIVE_SQL} AND journey IN ({_marks(names)})", names
            )
        return float(due) if due is not None else None

    # -- 1. routing
    def route(self) -> int:
        now = self.core.clock.timestamp()
        with self.core.store.transaction() as tx:
            postgres = tx.dialect.name == "postgresql"
            if postgres and not tx.scalar(ROUTER_LOCK_SQL):
                return 0
            rows = tx.query(
                f"SELECT {TOUCHPOINT_COLUMNS} FROM touchpoints "
                f"WHERE routed = 0 ORDER BY seq LIMIT ?{tx.dialect.skip_locked}",
                (self.route_batch_size,),
            )
            if not rows:
                return 0
            fetched, rows = len(rows), decode_rows(tx, "touchpoints", rows, _routable)
            known = self._runs_of(tx, list(dict.fromkeys(r[2] for r in rows)))
            waiting = {cid for cid, runs in known.items() if any(r.active for r in runs)}
            starts: list[tuple[Any, ...]] = []
            for row in rows:
                seq, customer_id, name = row[0], row[2], row[4]
                runs = known.setdefault(customer_id, [])
                if name in self._goals:
                    self._reach_goal(tx, runs, name, seq, starts, now)
                for journey_id in self._triggers.get(name, ()):
                    journey = self.current[journey_id]
                    if self._may_enter(journey, runs) and self._matches(journey, row):
                        starts.append(self._start_row(journey, row, now))
                        runs.append(_KnownRun(starts[-1][0], journey_id, journey.version, seq, active=True))
            tx.executemany(_INSERT_RUN, starts)
            # Wake runs waiting for these events; a run being replayed right now loses its lease, so
            # its replay is discarded and redone with the new event in its inbox.
            tx.executemany(
                "UPDATE journey_runs SET due_at = ?, lease_owner = NULL "
                f"WHERE customer_id = ? AND {_ACTIVE_SQL} AND (wait_event = ? OR lease_owner IS NOT NULL)",
                list(dict.fromkeys((now, r[2], r[4]) for r in rows if r[2] in waiting)),
            )
            for chunk in _chunks([r[0] for r in rows]):
                tx.execute(f"UPDATE touchpoints SET routed = 1 WHERE seq IN ({_marks(chunk)})", chunk)
        return fetched

    def _runs_of(self, tx: Transaction, customers: Sequence[str]) -> dict[str, list[_KnownRun]]:
        """Every run of these customers, to apply re-entry rules and goals without a query per event."""
        known: dict[str, list[_KnownRun]] = {}
        for chunk in _chunks(customers):
            rows = tx.query(
                "SELECT id, customer_id, journey, version, trigger_seq, status FROM journey_runs "
                f"WHERE customer_id IN ({_marks(chunk)})",
                chunk,
            )
            for customer_id, run in decode_rows(tx, "journey_runs", rows, _known_run):
                known.setdefault(customer_id, []).append(run)
        return known

    @staticmethod
    def _may_enter(journey: Journey, runs: Sequence[_KnownRun]) -> bool:
        if journey.reentry == "always":
            return True
        mine = [r for r in runs if r.journey == journey.id]
        return not mine if journey.reentry == "never" else not any(r.active for r in mine)

    @staticmethod
    def _matches(journey: Journey, row: Sequence[Any]) -> bool:
        if not journey.trigger_where:
            return True
        properties = row[5]
        return all(properties.get(k) == v for k, v in journey.trigger_where.items())

    @staticmethod
    def _start_row(journey: Journey, row: Sequence[Any], now: float) -> tuple[Any, ...]:
        seq, tp_id, customer_id, channel, name, props, occurred = row
        trigger = {
            "seq": seq, "id": tp_id, "customer_id": customer_id, "channel": channel, "name": name,
            "properties": props, "occurred_at": occurred,
        }
        return (_run_id(), journey.id, journey.version, customer_id,
                None if journey.reentry == "always" else customer_id, _encode(trigger), seq, now, now, now)

    def _reach_goal(
        self, tx: Transaction, runs: Sequence[_KnownRun], event: str, seq: int, starts: list[tuple[Any, ...]],
        now: float,
    ) -> None:
        for run in runs:
            if not run.active or run.trigger_seq >= seq:
                continue
            definition = self.journeys.get(run.journey, {}).get(run.version) or self.current.get(run.journey)
            if definition is not None and event in definition.exit_on:
                if starts:  # the run may have started in this batch: store it before ending it
                    tx.executemany(_INSERT_RUN, starts)
                    starts.clear()
                end_run(tx, run.id, "exited", f"goal reached: {event}", now)
                run.active = False

    # -- 2. merged profiles
    def _merge_cursor(self, tx: Transaction) -> int:
        return int(tx.scalar("SELECT position FROM journey_cursors WHERE name = 'merges'") or 0)

    def _merges_after(self, tx: Transaction, cursor: int, limit: int) -> list[tuple[Any, ...]]:
        return tx.query("SELECT id, winner_id FROM merges WHERE id > ? ORDER BY id LIMIT ?", (cursor, limit))

    def reconcile_merges(self) -> int:
        """Two active runs of one journey on a merged profile: the older continues, the other is cancelled."""
        now = self.core.clock.timestamp()
        with self.core.store.transaction() as tx:
            merges = self._merges_after(tx, self._merge_cursor(tx), _CHUNK)
            if not merges:
                return 0
            for winner in dict.fromkeys(w for _, w in merges):
                kept: dict[str, str] = {}
                for run_id, journey_id in tx.query(
                    f"SELECT id, journey FROM journey_runs WHERE customer_id = ? AND {_ACTIVE_SQL} "
                    "AND active_key IS NOT NULL ORDER BY created_at, id",
                    (winner,),
                ):
                    if journey_id not in kept:
                        kept[journey_id] = run_id
                    else:
                        end_run(tx, run_id, "cancelled",
                                f"profiles merged into {winner}: run {kept[journey_id]} continues", now)
            tx.execute(
                "INSERT INTO journey_cursors (name, position) VALUES ('merges', ?) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (merges[-1][0],),
            )
        return len(merges)

    # -- 3. due runs
    def claim(self) -> list[tuple[Any, ...]]:
        """Lease a batch of due runs to this worker; a lease that runs out makes them due again.

        Each run comes with its trigger decoded; a run that does not decode is quarantined."""
        now = self.core.clock.timestamp()
        names = list(self.journeys)
        with self.core.store.transaction() as tx:
            runs = tx.query(
                "SELECT id, journey, version, customer_id, trigger, trigger_seq, attempts FROM journey_runs "
                f"WHERE {_ACTIVE_SQL} AND due_at <= ? AND journey IN ({_marks(names)}) "
                f"ORDER BY due_at LIMIT ?{tx.dialect.skip_locked}",
                (now, *names, self.batch_size),
            )
            runs = decode_rows(tx, "journey_runs", runs, _claimed_run)
            for chunk in _chunks([r[0] for r in runs]):
                tx.execute(
                    f"UPDATE journey_runs SET lease_owner = ?, due_at = ? WHERE id IN ({_marks(chunk)})",
                    (self.worker_id, now + self.lease_seconds, *chunk),
                )
        return runs

    async def run_due(self) -> int:
        """Replay a batch of due runs. Fast path: one transaction, writes batched across runs.
        If any run fails or lost its lease, that transaction is rolled back and the batch is
        redone run by run, each in a savepoint, so one run's trouble never costs another's work."""
        runs = self.claim()
        if not runs:
            return 0
        now = self.core.clock.timestamp()
        try:
            with self.core.store.transaction() as tx:
                await self._run_batch(tx, runs, now)
        except _RedoCarefully:
            with self.core.store.transaction() as tx:
                steps, kept = self._load_steps(tx, runs)
                for run in kept:
                    await self._advance(tx, run, steps.get(run[0], {}), now)
        return len(runs)

    def _load_steps(
        self, tx: Transaction, runs: Sequence[Sequence[Any]]
    ) -> tuple[dict[str, dict[str, StepRecord]], list[Sequence[Any]]]:
        """The step logs of `runs`, and the runs to replay: a run with an unreadable step is
        quarantined with it (replaying it would redo that step)."""
        steps: dict[str, dict[str, StepRecord]] = {}
        broken: set[str] = set()
        for chunk in _chunks([r[0] for r in runs]):
            rows = tx.query(
                f"SELECT run_id, step, kind, args, result, done FROM journey_steps WHERE run_id IN ({_marks(chunk)})",
                chunk,
            )
            decoded = decode_rows(tx, "journey_steps", rows, _step, key=lambda r: (r[0], r[1]))
            for run_id, step, record in decoded:
                steps.setdefault(run_id, {})[step] = record
            if len(decoded) != len(rows):
                readable = {(d[0], d[1]) for d in decoded}
                broken.update(r[0] for r in rows if (r[0], r[1]) not in readable)
        for run_id in broken:
            quarantine_row(tx, "journey_runs", (run_id,), JourneyError("an entry of its step log is quarantined"))
            steps.pop(run_id, None)
        return steps, [r for r in runs if r[0] not in broken]

    async def _replay(
        self, tx: Transaction, run: Sequence[Any], steps: dict[str, StepRecord], now: float
    ) -> Suspend | None:
        """Run the journey function from the top; returns where it suspended, None when it finished."""
        run_id, journey_id, version, customer_id, trigger, trigger_seq, _ = run
        definition = self.version(journey_id, version)
        try:  # decoded here, where it is used, and not in the claim: the batch holds no decoded triggers
            decoded = touchpoint_json(trigger)
        except DECODE_ERRORS as exc:
            raise _UnreadableRun(exc) from exc
        ctx = JourneyContext(
            tx=tx, run_id=run_id, journey_id=journey_id, version=version, customer_id=customer_id,
            trigger=decoded or {}, trigger_seq=trigger_seq, now=now, steps=steps,
        )
        try:
            await definition.fn(ctx)
        except Suspend as suspended:
            return suspended
        return None

    async def _run_batch(self, tx: Transaction, runs: Sequence[Sequence[Any]], now: float) -> None:
        steps, runs = self._load_steps(tx, runs)
        outcomes = []
        for run in runs:
            try:
                outcomes.append((run[0], await self._replay(tx, run, steps.setdefault(run[0], {}), now)))
            except Exception as exc:
                raise _RedoCarefully from exc
        inserts, updates = [], []
        for run_id, _ in outcomes:
            new, changed = self._step_rows(run_id, steps[run_id], now)
            inserts += new
            updates += changed
        tx.executemany(_INSERT_STEP, inserts)
        tx.executemany(_UPDATE_STEP, updates)
        stored = 0
        for sql, rows in (
            (_SUSPEND_RUN, [self._suspended(run_id, s, now) for run_id, s in outcomes if s is not None]),
            (_COMPLETE_RUN, [(now, now, run_id, self.worker_id) for run_id, s in outcomes if s is None]),
        ):
            if rows:
                tx.executemany(sql, rows)
                stored += int(tx.cursor.rowcount)
        if stored != len(outcomes):  # some lease was lost meanwhile
            raise _RedoCarefully

    async def _advance(self, tx: Transaction, run: Sequence[Any], steps: dict[str, StepRecord], now: float) -> None:
        run_id, journey_id, _, _, _, _, attempts = run
        tx.execute("SAVEPOINT journey_run")
        try:
            suspended = await self._replay(tx, run, steps, now)
            new, changed = self._step_rows(run_id, steps, now)
            tx.executemany(_INSERT_STEP, new)
            tx.executemany(_UPDATE_STEP, changed)
            if suspended is not None:
                stored = tx.execute(_SUSPEND_RUN, self._suspended(run_id, suspended, now))
            else:
                stored = tx.execute(_COMPLETE_RUN, (now, now, run_id, self.worker_id))
        except _UnreadableRun as exc:  # a row no replay can read: set aside, not retried
            tx.execute("ROLLBACK TO SAVEPOINT journey_run")
            quarantine_row(tx, "journey_runs", (run_id,), exc.__cause__ or exc)
        except Exception as exc:  # the journey's bug must not take the runner down
            tx.execute("ROLLBACK TO SAVEPOINT journey_run")
            self._failed(tx, run_id, journey_id, int(attempts), exc, now)
        else:
            if not stored:  # the lease was lost (woken, exited, or claimed by another worker): discard
                tx.execute("ROLLBACK TO SAVEPOINT journey_run")
        tx.execute("RELEASE SAVEPOINT journey_run")

    def _suspended(self, run_id: str, suspended: Suspend, now: float) -> tuple[Any, ...]:
        return (suspended.step, suspended.wait_event, suspended.due_at, now, run_id, self.worker_id)

    @staticmethod
    def _step_rows(
        run_id: str, steps: dict[str, StepRecord], now: float
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """What to write to the step log: new steps, and steps whose result changed (a wait resolved)."""
        new = [(run_id, name, r.kind, _encode(r.args), _encode({"v": r.result}), int(r.done), now)
               for name, r in steps.items() if r.new]
        changed = [(_encode({"v": r.result}), int(r.done), now, run_id, name)
                   for name, r in steps.items() if r.dirty and not r.new]
        return new, changed

    def _failed(self, tx: Transaction, run_id: str, journey_id: str, attempts: int, exc: Exception, now: float) -> None:
        """Retry with backoff; a definition problem (changed code, missing version) fails at once."""
        attempts += 1
        permanent = isinstance(exc, JourneyError | NonDeterminismError) or attempts >= self.max_attempts
        reason = f"{type(exc).__name__}: {exc}"
        if permanent:
            tx.execute(
                "UPDATE journey_runs SET status = 'failed', reason = ?, attempts = ?, active_key = NULL, "
                "due_at = NULL, lease_owner = NULL, ended_at = ?, updated_at = ? WHERE id = ? AND lease_owner = ?",
                (reason, attempts, now, now, run_id, self.worker_id),
            )
        else:
            tx.execute(
                "UPDATE journey_runs SET reason = ?, attempts = ?, due_at = ?, lease_owner = NULL, updated_at = ? "
                "WHERE id = ? AND lease_owner = ?",
                (reason, attempts, now + min(3600.0, 30.0 * 2**attempts), now, run_id, self.worker_id),
            )
        log.warning("journey_run_failed" if permanent else "journey_run_retry", run_id=run_id, journey=journey_id,
                    attempts=attempts, error_type=type(exc).__name__)


def _routable(row: Sequence[Any]) -> tuple[Any, ...]:
    """An unrouted touchpoint, checked and with its properties decoded."""
    seq, tp_id, customer_id, channel, name, props, occurred = row
    properties = loads(props)
    if (type(properties) is not dict or type(tp_id) is not str or type(customer_id) is not str
            or type(name) is not str or channel not in _CHANNELS or type(occurred) is not float
            or not MIN_TIMESTAMP <= occurred <= MAX_TIMESTAMP):  # inlined: every event is routed once
        properties, occurred = json_object(props), timestamp(occurred)
        text(tp_id), text(customer_id), text(name), channel_name(channel)  # {} for NULL, else raises
    return (seq, tp_id, customer_id, channel, name, properties, occurred)


def _known_run(row: Sequence[Any]) -> tuple[str, _KnownRun]:
    run_id, customer_id, journey_id, version, trigger_seq, status = row
    return customer_id, _KnownRun(run_id, journey_id, version, int(trigger_seq), active=status in ACTIVE)


def _claimed_run(row: Sequence[Any]) -> tuple[Any, ...]:
    run_id, journey_id, version, customer_id, _, trigger_seq, attempts = row
    if (type(run_id) is not str or type(journey_id) is not str or type(version) is not str
            or type(customer_id) is not str or type(trigger_seq) is not int or type(attempts) is not int):
        text(run_id), text(journey_id), text(version), text(customer_id), integer(trigger_seq), integer(attempts)
    return tuple(row)  # its trigger is decoded by the replay (tuple() of a tuple copies nothing)


def _step(row: Sequence[Any]) -> tuple[str, str, StepRecord]:
    run_id, step, kind, args, result, done = row
    return run_id, step, StepRecord(text(kind), json_object(args), json_object(result)["v"], bool(done))
