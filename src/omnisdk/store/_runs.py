"""Journey runs and their memoised steps: creation, claiming, leases, routing of touchpoints.

Every SQL statement about `journey_runs`, `journey_steps`, `journey_cursors` and the routing of
touchpoints lives here. Rows become attrs objects on the way out. Writes that a batch of runs
makes together (new runs, step memos, suspended and completed runs) travel as one JSON
parameter: one statement for the whole batch, whatever its size, on both databases.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import attrs

from .._errors import StoreError
from .._touchpoints import CHANNELS, Touchpoint
from ._base import SQLStore, Transaction, dumps, json_table, loads
from ._quarantine import decode_found, decode_rows
from ._rows import (
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
    TOUCHPOINT_COLUMNS,
    channel,
    integer,
    json_object,
    optional_timestamp,
    text,
    timestamp,
    touchpoint_from_json,
    touchpoint_json,
)

__all__ = [
    "ACTIVE",
    "ROUTER_LOCK_SQL",
    "ClaimedRun",
    "KnownRun",
    "NewRun",
    "RoutableTouchpoint",
    "RunOutcome",
    "RunRecord",
    "RunSavepoint",
    "StepRecord",
    "WORK_CHANNEL",
    "WorkListener",
    "active_runs_of",
    "claim_runs",
    "end_run",
    "fail_run",
    "has_unrouted",
    "insert_runs",
    "insert_steps",
    "install_notify_triggers",
    "list_runs",
    "load_run",
    "load_steps",
    "mark_routed",
    "merge_cursor",
    "next_run_due",
    "other_active_run",
    "resume_run",
    "run_triggers",
    "run_savepoint",
    "runs_of_customers",
    "set_merge_cursor",
    "set_run_version",
    "store_outcomes",
    "try_router_lock",
    "unrouted_touchpoints",
    "update_steps",
    "wake_runs",
]

ACTIVE: Final = ("running", "waiting")
_ACTIVE_SQL: Final = "status IN ('running', 'waiting')"
#: One router per schema: keyed by the schema too, so apps on separate schemas of one database
#: route independently.
ROUTER_LOCK_SQL: Final = "SELECT pg_try_advisory_xact_lock(7206312, hashtext(current_schema()))"
_CHUNK: Final = 500
_CHANNELS: Final = frozenset(CHANNELS)
_RUN_COLUMNS: Final = ("id, journey, version, customer_id, status, step, wait_event, due_at, attempts, reason, "
                       "created_at, updated_at, ended_at")


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items))


# -- rows
@attrs.frozen(slots=True)
class RoutableTouchpoint:
    """An unrouted touchpoint, checked, with its properties decoded."""

    seq: int
    id: str
    customer_id: str
    channel: str
    name: str
    properties: dict[str, Any]
    occurred_at: float

    def as_trigger(self) -> dict[str, Any]:
        """The run's stored trigger (what `touchpoint_json` reads back)."""
        return {"seq": self.seq, "id": self.id, "customer_id": self.customer_id, "channel": self.channel,
                "name": self.name, "properties": self.properties, "occurred_at": self.occurred_at}


@attrs.define(slots=True)
class KnownRun:
    """What routing needs to know of a customer's run."""

    id: str
    journey: str
    version: str
    trigger_seq: int
    active: bool


@attrs.frozen(slots=True)
class NewRun:
    """A run the router starts: `active_key` is the customer id unless its journey re-enters always."""

    id: str
    journey: str
    version: str
    customer_id: str
    active_key: str | None
    trigger: Mapping[str, Any]
    trigger_seq: int


@attrs.frozen(slots=True)
class ClaimedRun:
    """A run leased to this worker; its trigger stays as stored until the replay decodes it."""

    id: str
    journey: str
    version: str
    customer_id: str
    trigger: Any
    trigger_seq: int
    attempts: int


@attrs.define(slots=True)
class StepRecord:
    """One entry of a run's step log. `args` identify the step, to detect changed code on replay;
    `new` and `dirty` say what a replay must write back."""

    kind: str
    args: dict[str, Any]
    result: Any
    done: bool
    new: bool = False
    dirty: bool = False


@attrs.frozen(slots=True)
class RunOutcome:
    """How a replay left a run: suspended at `step` (until `due_at` and/or `wait_event`), or completed."""

    run_id: str
    completed: bool
    step: str | None = None
    wait_event: str | None = None
    due_at: float | None = None


@attrs.frozen(kw_only=True, slots=True)
class RunRecord:
    """A run as stored (times in epoch seconds; `due_at` only while it waits)."""

    id: str
    journey: str
    version: str
    customer_id: str
    status: str
    step: str | None
    wait_event: str | None
    due_at: float | None
    attempts: int
    reason: str | None
    created_at: float
    updated_at: float
    ended_at: float | None


def _routable(row: Sequence[Any]) -> RoutableTouchpoint:
    seq, tp_id, customer_id, chan, name, props, occurred = row
    properties = loads(props)
    if (type(properties) is not dict or type(tp_id) is not str or type(customer_id) is not str
            or type(name) is not str or chan not in _CHANNELS or type(occurred) is not float
            or not MIN_TIMESTAMP <= occurred <= MAX_TIMESTAMP):  # inlined: every event is routed once
        properties, occurred = json_object(props), timestamp(occurred)
        text(tp_id), text(customer_id), text(name), channel(chan)  # {} for NULL, else raises
    return RoutableTouchpoint(seq, tp_id, customer_id, chan, name, properties, occurred)


def _known_run(row: Sequence[Any]) -> tuple[str, KnownRun]:
    run_id, customer_id, journey_id, version, trigger_seq, status = row
    return customer_id, KnownRun(run_id, journey_id, version, int(trigger_seq), active=status in ACTIVE)


def _claimed_run(row: Sequence[Any]) -> ClaimedRun:
    run_id, journey_id, version, customer_id, trigger, trigger_seq, attempts = row
    if (type(run_id) is not str or type(journey_id) is not str or type(version) is not str
            or type(customer_id) is not str or type(trigger_seq) is not int or type(attempts) is not int):
        text(run_id), text(journey_id), text(version), text(customer_id), integer(trigger_seq), integer(attempts)
    return ClaimedRun(run_id, journey_id, version, customer_id, trigger, int(trigger_seq), int(attempts))


def _step(row: Sequence[Any]) -> tuple[str, str, StepRecord]:
    run_id, step, kind, args, result, done = row
    return run_id, step, StepRecord(text(kind), json_object(args), json_object(result)["v"], bool(done))


def _run_record(row: Sequence[Any]) -> RunRecord:
    rid, journey, version, cid, status, step, wait_event, due, attempts, reason, created, updated, ended = row
    return RunRecord(
        id=text(rid), journey=text(journey), version=text(version), customer_id=text(cid), status=text(status),
        step=step, wait_event=wait_event,
        due_at=timestamp(due) if due is not None and status == "waiting" else None,
        attempts=int(attempts), reason=reason, created_at=timestamp(created), updated_at=timestamp(updated),
        ended_at=optional_timestamp(ended),
    )


# -- routing touchpoints
def try_router_lock(tx: Transaction) -> bool:
    """Become this schema's router for the transaction (PostgreSQL); SQLite's single writer already is."""
    return tx.dialect.name != "postgresql" or bool(tx.scalar(ROUTER_LOCK_SQL))


def has_unrouted(tx: Transaction) -> bool:
    return bool(tx.scalar("SELECT 1 FROM touchpoints WHERE routed = 0 LIMIT 1"))


def unrouted_touchpoints(tx: Transaction, limit: int) -> tuple[list[int], list[RoutableTouchpoint]]:
    """The oldest unrouted touchpoints: every seq read (to mark routed) and the readable ones
    (an unreadable one is quarantined)."""
    rows = tx.query(
        f"SELECT {TOUCHPOINT_COLUMNS} FROM touchpoints WHERE routed = 0 ORDER BY seq LIMIT ?{tx.dialect.skip_locked}",
        (limit,),
    )
    return [r[0] for r in rows], decode_rows(tx, "touchpoints", rows, _routable)


def mark_routed(tx: Transaction, seqs: Sequence[int]) -> None:
    for chunk in _chunks(seqs):
        tx.execute(f"UPDATE touchpoints SET routed = 1 WHERE seq IN ({_marks(chunk)})", chunk)


def runs_of_customers(tx: Transaction, customers: Sequence[str]) -> dict[str, list[KnownRun]]:
    """Every run of these customers, to apply re-entry rules and goals without a query per event."""
    known: dict[str, list[KnownRun]] = {}
    for chunk in _chunks(customers):
        rows = tx.query(
            "SELECT id, customer_id, journey, version, trigger_seq, status FROM journey_runs "
            f"WHERE customer_id IN ({_marks(chunk)})",
            chunk,
        )
        for customer_id, run in decode_rows(tx, "journey_runs", rows, _known_run):
            known.setdefault(customer_id, []).append(run)
    return known


def insert_runs(tx: Transaction, runs: Sequence[NewRun], now: float) -> int:
    """Start runs (due now); one already active for its customer and journey is left out. Returns
    how many started."""
    if not runs:
        return 0
    source, (rid, journey, version, cid, key, trigger, seq) = json_table(tx, "tttttji")
    return tx.execute(
        "INSERT INTO journey_runs (id, journey, version, customer_id, active_key, status, trigger, trigger_seq, "
        f"due_at, created_at, updated_at) SELECT {rid}, {journey}, {version}, {cid}, {key}, 'running', {trigger}, "
        f"{seq}, ?, ?, ? FROM {source} WHERE TRUE ON CONFLICT DO NOTHING",
        (now, now, now, dumps([[r.id, r.journey, r.version, r.customer_id, r.active_key, r.trigger, r.trigger_seq]
                               for r in runs])),
    )


def wake_runs(tx: Transaction, events: Sequence[tuple[str, str]], now: float) -> None:
    """Make due the active runs of each (customer, event) that wait for that event; a run being
    replayed right now loses its lease, so its replay is discarded and redone with the event."""
    tx.executemany(
        "UPDATE journey_runs SET due_at = ?, lease_owner = NULL "
        f"WHERE customer_id = ? AND {_ACTIVE_SQL} AND (wait_event = ? OR lease_owner IS NOT NULL)",
        [(now, customer_id, event) for customer_id, event in events],
    )


def end_run(tx: Transaction, run_id: str, status: str, reason: str, now: float) -> bool:
    """End an active run; False if it was not active."""
    return bool(tx.execute(
        "UPDATE journey_runs SET status = ?, reason = ?, active_key = NULL, wait_event = NULL, due_at = NULL, "
        f"lease_owner = NULL, ended_at = ?, updated_at = ? WHERE id = ? AND {_ACTIVE_SQL}",
        (status, reason, now, now, run_id),
    ))


# -- merged profiles
def merge_cursor(tx: Transaction) -> int:
    """How far the runtime has reconciled the merges feed."""
    return int(tx.scalar("SELECT position FROM journey_cursors WHERE name = 'merges'") or 0)


def set_merge_cursor(tx: Transaction, position: int) -> None:
    tx.execute(
        "INSERT INTO journey_cursors (name, position) VALUES ('merges', ?) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        (position,),
    )


def active_runs_of(tx: Transaction, customer_id: str) -> list[tuple[str, str]]:
    """(run id, journey) of the customer's active runs that hold an active key, oldest first."""
    return [(str(r[0]), str(r[1])) for r in tx.query(
        f"SELECT id, journey FROM journey_runs WHERE customer_id = ? AND {_ACTIVE_SQL} "
        "AND active_key IS NOT NULL ORDER BY created_at, id",
        (customer_id,),
    )]


# -- due runs
def next_run_due(tx: Transaction, journeys: Sequence[str]) -> float | None:
    due = tx.scalar(
        f"SELECT MIN(due_at) FROM journey_runs WHERE {_ACTIVE_SQL} AND journey IN ({_marks(journeys)})", journeys
    )
    return float(due) if due is not None else None


def claim_runs(
    tx: Transaction, journeys: Sequence[str], *, now: float, owner: str, until: float, limit: int
) -> list[ClaimedRun]:
    """Lease up to `limit` due runs of `journeys` to `owner` until `until` (a lease that runs out
    makes them due again). A run that does not decode is quarantined."""
    rows = tx.query(
        "SELECT id, journey, version, customer_id, trigger, trigger_seq, attempts FROM journey_runs "
        f"WHERE {_ACTIVE_SQL} AND due_at <= ? AND journey IN ({_marks(journeys)}) "
        f"ORDER BY due_at LIMIT ?{tx.dialect.skip_locked}",
        (now, *journeys, limit),
    )
    runs = decode_rows(tx, "journey_runs", rows, _claimed_run)
    for chunk in _chunks([r.id for r in runs]):
        tx.execute(f"UPDATE journey_runs SET lease_owner = ?, due_at = ? WHERE id IN ({_marks(chunk)})",
                   (owner, until, *chunk))
    return runs


def load_steps(tx: Transaction, run_ids: Sequence[str]) -> tuple[dict[str, dict[str, StepRecord]], set[str]]:
    """The step logs of these runs, and the runs with an unreadable step (that step is quarantined)."""
    steps: dict[str, dict[str, StepRecord]] = {}
    broken: set[str] = set()
    for chunk in _chunks(run_ids):
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
    return steps, broken


def insert_steps(tx: Transaction, steps: Sequence[tuple[str, str, StepRecord]], now: float) -> None:
    """Record new steps (run id, step name, record), all in one statement."""
    if not steps:
        return
    source, (run_id, step, kind, args, result, done) = json_table(tx, "tttjji")
    tx.execute(
        "INSERT INTO journey_steps (run_id, step, kind, args, result, done, recorded_at) "
        f"SELECT {run_id}, {step}, {kind}, {args}, {result}, {done}, ? FROM {source}",
        (now, dumps([[rid, name, r.kind, r.args, {"v": r.result}, int(r.done)] for rid, name, r in steps])),
    )


def update_steps(tx: Transaction, steps: Sequence[tuple[str, str, StepRecord]], now: float) -> None:
    """Store the new result of steps already recorded (a wait that resolved)."""
    tx.executemany(
        "UPDATE journey_steps SET result = ?, done = ?, recorded_at = ? WHERE run_id = ? AND step = ?",
        [(dumps({"v": r.result}), int(r.done), now, rid, name) for rid, name, r in steps],
    )


def store_outcomes(tx: Transaction, outcomes: Sequence[RunOutcome], *, owner: str, now: float) -> int:
    """Store how replays left their runs, all in one statement, where `owner` still holds the
    lease; returns how many were stored (fewer: some lease was lost meanwhile)."""
    if not outcomes:
        return 0
    source, (rid, done, step, event, due) = json_table(tx, "tittf")
    rows = [[o.run_id, int(o.completed), o.step, o.wait_event, o.due_at] for o in outcomes]
    return tx.execute(
        f"UPDATE journey_runs SET status = CASE WHEN o.done = 1 THEN 'completed' ELSE 'waiting' END, "
        "step = o.step, wait_event = o.wait_event, due_at = o.due_at, lease_owner = NULL, "
        "attempts = CASE WHEN o.done = 1 THEN journey_runs.attempts ELSE 0 END, "
        "active_key = CASE WHEN o.done = 1 THEN NULL ELSE journey_runs.active_key END, "
        "ended_at = CASE WHEN o.done = 1 THEN ? ELSE journey_runs.ended_at END, updated_at = ? "
        f"FROM (SELECT {rid} AS id, {done} AS done, {step} AS step, {event} AS wait_event, {due} AS due_at "
        f"FROM {source}) AS o WHERE journey_runs.id = o.id AND journey_runs.lease_owner = ?",
        (now, now, dumps(rows), owner),
    )


def fail_run(
    tx: Transaction, run_id: str, *, owner: str, reason: str, attempts: int, now: float, retry_at: float | None
) -> None:
    """A replay failed: retry at `retry_at`, or (None) the run has failed for good."""
    if retry_at is None:
        tx.execute(
            "UPDATE journey_runs SET status = 'failed', reason = ?, attempts = ?, active_key = NULL, "
            "due_at = NULL, lease_owner = NULL, ended_at = ?, updated_at = ? WHERE id = ? AND lease_owner = ?",
            (reason, attempts, now, now, run_id, owner),
        )
    else:
        tx.execute(
            "UPDATE journey_runs SET reason = ?, attempts = ?, due_at = ?, lease_owner = NULL, updated_at = ? "
            "WHERE id = ? AND lease_owner = ?",
            (reason, attempts, retry_at, now, run_id, owner),
        )


class RunSavepoint:
    """One run's writes inside a batch's transaction: `discard()` undoes them, the rest stays."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    def discard(self) -> None:
        self.tx.execute("ROLLBACK TO SAVEPOINT journey_run")


@contextlib.contextmanager
def run_savepoint(tx: Transaction) -> Iterator[RunSavepoint]:
    tx.execute("SAVEPOINT journey_run")
    yield RunSavepoint(tx)
    tx.execute("RELEASE SAVEPOINT journey_run")


# -- administration
def list_runs(
    tx: Transaction, *, journey: str | None, customer_id: str | None, statuses: Sequence[str] | None, limit: int
) -> list[RunRecord]:
    """Runs, newest first (unreadable ones are quarantined)."""
    sql, params = f"SELECT {_RUN_COLUMNS} FROM journey_runs WHERE 1 = 1", list[Any]()
    if journey is not None:
        sql += " AND journey = ?"
        params.append(journey)
    if customer_id is not None:
        sql += " AND customer_id = ?"
        params.append(customer_id)
    if statuses is not None:
        sql += f" AND status IN ({_marks(statuses)})"
        params.extend(statuses)
    sql += " ORDER BY created_at DESC, id LIMIT ?"
    params.append(int(limit))
    return decode_rows(tx, "journey_runs", tx.query(sql, params), _run_record)


def load_run(tx: Transaction, run_id: str) -> RunRecord:
    row = tx.one(f"SELECT {_RUN_COLUMNS} FROM journey_runs WHERE id = ?", (run_id,))
    return decode_found(tx, "journey_runs", row, _run_record, missing=f"no journey run with id {run_id!r}",
                        name=f"journey run {run_id!r}")


def set_run_version(tx: Transaction, run_id: str, version: str, now: float) -> None:
    tx.execute("UPDATE journey_runs SET version = ?, updated_at = ? WHERE id = ?", (version, now, run_id))


def other_active_run(tx: Transaction, journey: str, customer_id: str) -> str | None:
    """An active run of `journey` for the customer, if any."""
    found = tx.scalar(
        f"SELECT id FROM journey_runs WHERE journey = ? AND customer_id = ? AND {_ACTIVE_SQL}", (journey, customer_id)
    )
    return None if found is None else str(found)


def resume_run(tx: Transaction, run_id: str, *, version: str, active_key: str | None, now: float) -> None:
    """Make an ended run running again, due now, on `version`."""
    tx.execute(
        "UPDATE journey_runs SET status = 'running', version = ?, active_key = ?, due_at = ?, attempts = 0, "
        "reason = NULL, ended_at = NULL, lease_owner = NULL, updated_at = ? WHERE id = ?",
        (version, active_key, now, now, run_id),
    )


# -- waking idle workers (PostgreSQL LISTEN/NOTIFY)
WORK_CHANNEL: Final = "omnisdk_work"

_NOTIFY_SQL: Final = (
    "CREATE OR REPLACE FUNCTION omnisdk_notify_work() RETURNS trigger LANGUAGE plpgsql AS "
    f"$$ BEGIN PERFORM pg_notify('{WORK_CHANNEL}', TG_TABLE_NAME); RETURN NULL; END $$",
    "CREATE OR REPLACE TRIGGER omnisdk_touchpoints_work AFTER INSERT ON touchpoints "
    "FOR EACH STATEMENT EXECUTE FUNCTION omnisdk_notify_work()",
    "CREATE OR REPLACE TRIGGER omnisdk_journey_runs_work AFTER INSERT ON journey_runs "
    "FOR EACH STATEMENT EXECUTE FUNCTION omnisdk_notify_work()",
)


def install_notify_triggers(store: SQLStore) -> None:
    """PostgreSQL only: make inserts of touchpoints and runs wake idle workers."""
    with store.transaction() as tx:
        tx.execute("SELECT pg_advisory_xact_lock(7206313)")
        for statement in _NOTIFY_SQL:
            tx.execute(statement)


class WorkListener:
    """A second PostgreSQL connection in LISTEN for new work (see `install_notify_triggers`)."""

    def __init__(self, store: SQLStore) -> None:
        import psycopg

        install_notify_triggers(store)
        self._errors = psycopg.Error
        self._conn = psycopg.connect(getattr(store, "dsn"), autocommit=True)  # noqa: B009  (PostgresStore only)
        self._conn.execute(f"LISTEN {WORK_CHANNEL}")

    def wait(self, timeout: float) -> bool:
        """Whether work was announced within `timeout` seconds; raises StoreError if the connection fails."""
        try:
            return any(True for _ in self._conn.notifies(timeout=timeout, stop_after=1))
        except self._errors as exc:
            raise StoreError(f"listening for work failed: {type(exc).__name__}") from exc

    def close(self) -> None:
        self._conn.close()


# -- read by the dispatcher: the triggers its templates show
def run_triggers(tx: Transaction, run_ids: Sequence[str]) -> dict[str, Touchpoint]:
    """The touchpoint that started each journey run (templates read it as `trigger` and `event`)."""
    def decode(row: Sequence[Any]) -> tuple[str, Touchpoint | None]:
        data = touchpoint_json(row[1])
        return row[0], touchpoint_from_json(data) if data else None

    rows = tx.query(f"SELECT id, trigger FROM journey_runs WHERE id IN ({','.join('?' * len(run_ids))})", run_ids)
    return {run_id: trigger for run_id, trigger in decode_rows(tx, "journey_runs", rows, decode) if trigger}
