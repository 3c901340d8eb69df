"""Deliveries: the outbox rows, their claims, leases and statuses.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations
