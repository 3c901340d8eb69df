"""Customer profiles: reading, creating and updating customers rows.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations
