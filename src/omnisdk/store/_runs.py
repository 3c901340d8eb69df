"""Journey runs and their memoised steps: creation, claiming, leases, routing.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations
