"""The decision log: append-only rows saying which policy decided what about a delivery, and why.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations
