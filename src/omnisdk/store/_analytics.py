"""Read-only queries behind KPIs, funnels, attribution and timelines.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations
