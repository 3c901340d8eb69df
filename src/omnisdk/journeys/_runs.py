"""Run administration: list runs, cancel, retry and migrate them (API and `omnisdk journeys`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import attrs

from .._clock import to_datetime
from .._errors import JourneyError, ValidationError
from .._identity import load_customer
from ..store import SQLStore, Transaction
from ..store import _runs as runs_db
from ..store._runs import ACTIVE, RunRecord
from ._runtime import JourneyRuntime, end_run

__all__ = ["RUN_STATUSES", "JourneyRun", "RunAdmin"]

RUN_STATUSES = ("running", "waiting", "completed", "exited", "failed", "cancelled")

@attrs.frozen(kw_only=True)
class JourneyRun:
    """One customer's pass through one version of a journey.

    `status`: running (due or being replayed), waiting (asleep or in `wait_for`), completed,
    exited (an `exit_on` goal), failed (see `reason`), cancelled.
    """

    id: str
    journey: str
    version: str
    customer_id: str
    status: str
    step: str | None
    wait_event: str | None
    due_at: datetime | None
    attempts: int
    reason: str | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None


def _run(record: RunRecord) -> JourneyRun:
    return JourneyRun(
        id=record.id, journey=record.journey, version=record.version, customer_id=record.customer_id,
        status=record.status, step=record.step, wait_event=record.wait_event, due_at=_at(record.due_at),
        attempts=record.attempts, reason=record.reason, created_at=to_datetime(record.created_at),
        updated_at=to_datetime(record.updated_at), ended_at=_at(record.ended_at),
    )


def _at(seconds: float | None) -> datetime | None:
    return None if seconds is None else to_datetime(seconds)


class RunAdmin:
    def __init__(self, store: SQLStore, runtime: JourneyRuntime) -> None:
        self.store = store
        self.runtime = runtime

    def runs(
        self,
        *,
        journey: str | None = None,
        customer_id: str | None = None,
        status: str | Sequence[str] | None = None,
        limit: int = 100,
    ) -> list[JourneyRun]:
        """Runs, newest first."""
        wanted = None
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            for s in wanted:
                if s not in RUN_STATUSES:
                    raise ValidationError(f"expected one of {', '.join(RUN_STATUSES)}", field="status", value=s)
        with self.store.transaction(immediate=False) as tx:
            if customer_id is not None:
                customer_id = load_customer(tx, customer_id).id
            records = runs_db.list_runs(tx, journey=journey, customer_id=customer_id, statuses=wanted, limit=limit)
            return [_run(r) for r in records]

    def run(self, run_id: str) -> JourneyRun:
        with self.store.transaction(immediate=False) as tx:
            return _run(runs_db.load_run(tx, run_id))

    def cancel(self, run_id: str, *, now: float, reason: str = "cancelled") -> JourneyRun:
        """End an active run now; messages it queued but did not send are cancelled."""
        with self.store.transaction() as tx:
            record = runs_db.load_run(tx, run_id)
            if record.status not in ACTIVE:
                raise JourneyError(f"run {run_id} is {record.status}, only running or waiting runs can be cancelled")
            end_run(tx, run_id, "cancelled", reason, now)
            return _run(runs_db.load_run(tx, run_id))

    def retry(self, run_id: str, *, now: float, version: str | None = None) -> JourneyRun:
        """Resume a failed run from its step log (on `version` if given)."""
        with self.store.transaction() as tx:
            record = runs_db.load_run(tx, run_id)
            if record.status != "failed":
                raise JourneyError(f"run {run_id} is {record.status}, only failed runs can be retried")
            self._resume(tx, record, version or record.version, now)
            return _run(runs_db.load_run(tx, run_id))

    def migrate(self, run_id: str, version: str, *, now: float) -> JourneyRun:
        """Move a run to another registered version; steps are matched by name, so the new version
        replays what the run already did and does its new steps. A failed run is resumed."""
        with self.store.transaction() as tx:
            record = runs_db.load_run(tx, run_id)
            if record.status == "failed":
                self._resume(tx, record, version, now)
            elif record.status in ACTIVE:
                self.runtime.version(record.journey, version)
                runs_db.set_run_version(tx, run_id, version, now)
            else:
                raise JourneyError(f"run {run_id} is {record.status}; only active or failed runs can be migrated")
            return _run(runs_db.load_run(tx, run_id))

    def _resume(self, tx: Transaction, record: RunRecord, version: str, now: float) -> None:
        definition = self.runtime.version(record.journey, version)
        if definition.reentry != "always":
            other = runs_db.other_active_run(tx, record.journey, record.customer_id)
            if other:
                raise JourneyError(f"run {record.id}: the customer has another active run {other} of "
                                   f"{record.journey!r}; cancel it first")
        runs_db.resume_run(tx, record.id, version=version,
                           active_key=None if definition.reentry == "always" else record.customer_id, now=now)
