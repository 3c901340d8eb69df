"""Liveness and readiness: what a load balancer or Kubernetes asks before sending traffic or work.

Liveness touches nothing (the process answers); readiness checks the store answers and its schema
is the one this omnisdk expects. omnisdk records no worker heartbeat, so readiness reports how far
due work lags instead (informational: an app without a worker is still ready to take requests)."""

from __future__ import annotations

from typing import Any

from ..store import SQLStore, migrations
from ..store._operations import work_lag

__all__ = ["latest_migration", "liveness", "readiness"]


def latest_migration() -> int:
    return max(version for version, _, _ in migrations())


def liveness() -> dict[str, Any]:
    return {"status": "alive"}


def readiness(store: SQLStore, now: float) -> tuple[bool, dict[str, Any]]:
    """(ready, body): the store reachable, migrations current, and the lag of due work."""
    latest = latest_migration()
    checks: dict[str, Any] = {}
    try:
        version = store.schema_version()
    except Exception as exc:
        checks["store"] = {"ok": False, "error": f"{type(exc).__name__}: the store did not answer"}
        return False, {"status": "not ready", "checks": checks}
    checks["store"] = {"ok": True}
    current = version == latest
    checks["migrations"] = {"ok": current, "version": version, "latest": latest}
    if not current:
        checks["migrations"]["error"] = (f"the store's schema is at version {version}, this omnisdk expects {latest}"
                                         if version < latest else
                                         f"the store's schema ({version}) is newer than this omnisdk ({latest})")
    if current:
        with store.transaction(immediate=False) as tx:
            runs, deliveries = work_lag(tx, now)
        checks["work"] = {"ok": True, "overdue_run_seconds": runs, "overdue_delivery_seconds": deliveries,
                          "note": "no worker heartbeat is recorded; this is how late the most overdue work is"}
    ready = all(check["ok"] for check in checks.values())
    return ready, {"status": "ready" if ready else "not ready", "checks": checks}
