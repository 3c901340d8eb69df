"""Identities: the identifiers that point at a customer, and merges.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations
