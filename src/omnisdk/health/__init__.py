"""Health: `/healthz` and `/readyz` for the ASGI apps, and the checks behind `omnisdk doctor`."""

from ._app import with_health
from ._probes import latest_migration, liveness, readiness

__all__ = ["latest_migration", "liveness", "readiness", "with_health"]
