"""Stores: SQLite (embedded default) and PostgreSQL (scale-out), one SQL code path."""

from __future__ import annotations

from pathlib import Path

from .._errors import StoreError
from ._base import Dialect, SQLStore, Store, StoreActivity, Transaction, dumps, loads, migrations
from ._quarantine import (
    DECODE_ERRORS,
    QuarantinedRow,
    QuarantineRepair,
    decode_row,
    decode_rows,
    drop_quarantined,
    list_quarantined,
    quarantine_row,
    repair_quarantined,
)
from ._rows import (
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
    TABLES,
    TOUCHPOINT_COLUMNS,
    channel,
    integer,
    json_array,
    json_object,
    optional_number,
    optional_object,
    optional_text,
    optional_timestamp,
    text,
    timestamp,
    timezone,
    touchpoint_from_json,
    touchpoint_from_row,
    touchpoint_json,
)
from ._sqlite import SQLiteStore
from ._webhook_requests import remember_request

__all__ = [
    "MAX_TIMESTAMP",
    "MIN_TIMESTAMP",
    "DECODE_ERRORS",
    "DEFAULT_URL",
    "Dialect",
    "QuarantineRepair",
    "QuarantinedRow",
    "SQLStore",
    "TABLES",
    "SQLiteStore",
    "Store",
    "StoreActivity",
    "TOUCHPOINT_COLUMNS",
    "Transaction",
    "channel",
    "decode_row",
    "decode_rows",
    "drop_quarantined",
    "dumps",
    "integer",
    "json_array",
    "json_object",
    "list_quarantined",
    "loads",
    "migrations",
    "open_store",
    "optional_number",
    "optional_object",
    "optional_text",
    "optional_timestamp",
    "quarantine_row",
    "remember_request",
    "repair_quarantined",
    "text",
    "timestamp",
    "timezone",
    "touchpoint_from_json",
    "touchpoint_from_row",
    "touchpoint_json",
]

DEFAULT_URL = "sqlite:///" + str(Path(".omnisdk") / "omnisdk.db")


def open_store(url: str | None = None, *, migrate: bool = True) -> SQLStore:
    """Open (and by default migrate) the store a URL names.

    `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, `sqlite://:memory:`,
    `postgresql://user@host:5432/db[?schema=name]`.
    """
    url = url or DEFAULT_URL
    store: SQLStore
    if url.startswith("sqlite:"):
        rest = url.removeprefix("sqlite:")
        if rest in ("//:memory:", "///:memory:", ":memory:"):
            path = ":memory:"
        elif rest.startswith("///"):
            path = rest[3:]
        else:
            raise StoreError(f"store URL {url!r}: write sqlite:///path/to/file.db or sqlite://:memory:")
        store = SQLiteStore(url, path)
    elif url.startswith(("postgresql://", "postgres://")):
        from ._postgres import PostgresStore

        store = PostgresStore(url)
    else:
        raise StoreError(f"store URL {url!r}: expected sqlite:///… or postgresql://…")
    if migrate:
        store.migrate()
    return store
