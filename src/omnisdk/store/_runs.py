"""Journey runs and their memoised steps: creation, claiming, leases, routing.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._touchpoints import Touchpoint
from ._base import Transaction


def run_triggers(tx: Transaction, run_ids: Sequence[str]) -> dict[str, Touchpoint]:
    """The touchpoint that started each journey run (templates read it as `trigger` and `event`)."""
    from ._quarantine import decode_rows
    from ._rows import touchpoint_from_json, touchpoint_json

    def decode(row: Sequence[Any]) -> tuple[str, Touchpoint | None]:
        data = touchpoint_json(row[1])
        return row[0], touchpoint_from_json(data) if data else None

    rows = tx.query(f"SELECT id, trigger FROM journey_runs WHERE id IN ({','.join('?' * len(run_ids))})", run_ids)
    return {run_id: trigger for run_id, trigger in decode_rows(tx, "journey_runs", rows, decode) if trigger}
