"""Run administration: list runs, cancel, retry and migrate them (API and `omnisdk journeys`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from .._clock import to_datetime
from .._errors import JourneyError, NotFoundError, ValidationError
from .._identity import load_customer
from ..store import SQLStore, Transaction, decode_row, decode_rows, optional_timestamp, text, timestamp
from ._runtime import ACTIVE, JourneyRuntime, end_run

__all__ = ["RUN_STATUSES", "JourneyRun", "RunAdmin"]

RUN_STATUSES = ("running", "waiting", "completed", "exited", "failed", "cancelled")

_COLUMNS = ("id, journey, version, customer_id, status, step, wait_event, due_at, attempts, reason, created_at, "
            "updated_at, ended_at")


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


def _run(row: Sequence[Any]) -> JourneyRun:
    rid, journey, version, cid, status, step, wait_event, due, attempts, reason, created, updated, ended = row
    return JourneyRun(
        id=text(rid), journey=text(journey), version=text(version), customer_id=text(cid), status=text(status),
        step=step, wait_event=wait_event,
        due_at=to_datetime(timestamp(due)) if due is not None and status == "waiting" else None,
        attempts=int(attempts), reason=reason, created_at=to_datetime(timestamp(created)),
        updated_at=to_datetime(timestamp(updated)), ended_at=_at(ended),
    )


def _at(value: Any) -> datetime | None:
    seconds = optional_timestamp(value)
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
        sql, params = f"SELECT {_COLUMNS} FROM journey_runs WHERE 1 = 1", list[Any]()
        if journey is not None:
            sql += " AND journey = ?"
            params.append(journey)
        if customer_id is not None:
            with self.store.transaction(immediate=False) as tx:
                customer_id = load_customer(tx, customer_id).id
            sql += " AND customer_id = ?"
            params.append(customer_id)
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            for s in wanted:
                if s not in RUN_STATUSES:
                    raise ValidationError(f"expected one of {', '.join(RUN_STATUSES)}", field="status", value=s)
            sql += f" AND status IN ({','.join('?' * len(wanted))})"
            params.extend(wanted)
        sql += " ORDER BY created_at DESC, id LIMIT ?"
        params.append(int(limit))
        with self.store.transaction(immediate=False) as tx:
            return decode_rows(tx, "journey_runs", tx.query(sql, params), _run)

    def run(self, run_id: str) -> JourneyRun:
        with self.store.transaction(immediate=False) as tx:
            return _run(self._row(tx, run_id))

    def cancel(self, run_id: str, *, now: float, reason: str = "cancelled") -> JourneyRun:
        """End an active run now; messages it queued but did not send are cancelled."""
        with self.store.transaction() as tx:
            row = self._row(tx, run_id)
            if row[4] not in ACTIVE:
                raise JourneyError(f"run {run_id} is {row[4]}, only running or waiting runs can be cancelled")
            end_run(tx, run_id, "cancelled", reason, now)
            return _run(self._row(tx, run_id))

    def retry(self, run_id: str, *, now: float, version: str | None = None) -> JourneyRun:
        """Resume a failed run from its step log (on `version` if given)."""
        with self.store.transaction() as tx:
            row = self._row(tx, run_id)
            if row[4] != "failed":
                raise JourneyError(f"run {run_id} is {row[4]}, only failed runs can be retried")
            self._resume(tx, row, version or row[2], now)
            return _run(self._row(tx, run_id))

    def migrate(self, run_id: str, version: str, *, now: float) -> JourneyRun:
        """Move a run to another registered version; steps are matched by name, so the new version
        replays what the run already did and does its new steps. A failed run is resumed."""
        with self.store.transaction() as tx:
            row = self._row(tx, run_id)
            if row[4] == "failed":
                self._resume(tx, row, version, now)
            elif row[4] in ACTIVE:
                self.runtime.version(row[1], version)
                tx.execute("UPDATE journey_runs SET version = ?, updated_at = ? WHERE id = ?", (version, now, run_id))
            else:
                raise JourneyError(f"run {run_id} is {row[4]}; only active or failed runs can be migrated")
            return _run(self._row(tx, run_id))

    def _resume(self, tx: Transaction, row: Sequence[Any], version: str, now: float) -> None:
        run_id, journey, _, customer_id = row[:4]
        self.runtime.version(journey, version)
        definition = self.runtime.journeys[journey][version]
        if definition.reentry != "always":
            other = tx.scalar(
                "SELECT id FROM journey_runs WHERE journey = ? AND customer_id = ? "
                "AND status IN ('running', 'waiting')",
                (journey, customer_id),
            )
            if other:
                raise JourneyError(f"run {run_id}: the customer has another active run {other} of {journey!r}; "
                                   "cancel it first")
        tx.execute(
            "UPDATE journey_runs SET status = 'running', version = ?, active_key = ?, due_at = ?, attempts = 0, "
            "reason = NULL, ended_at = NULL, lease_owner = NULL, updated_at = ? WHERE id = ?",
            (version, None if definition.reentry == "always" else customer_id, now, now, run_id),
        )

    def _row(self, tx: Transaction, run_id: str) -> tuple[Any, ...]:
        row = tx.one(f"SELECT {_COLUMNS} FROM journey_runs WHERE id = ?", (run_id,))
        if row is None:
            raise NotFoundError(f"no journey run with id {run_id!r}")
        if decode_row(tx, "journey_runs", row, _run) is None:
            raise NotFoundError(f"journey run {run_id!r} cannot be read and is quarantined (omnisdk quarantine list)")
        return row
