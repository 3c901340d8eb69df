"""Health: `/healthz` and `/readyz` for the ASGI apps, and the checks behind `omnisdk doctor`."""

from ._app import with_health
from ._doctor import Finding, diagnose
from ._probes import latest_migration, liveness, readiness

__all__ = ["Finding", "diagnose", "latest_migration", "liveness", "readiness", "with_health"]
