"""Consent history: append-only consent entries and the current state per channel and purpose.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations
