"""Segments: membership snapshots and the queries segment conditions compile to.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations
