"""The embedded default: SQLite in WAL mode, one writer at a time."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, ClassVar

from .._errors import StoreError
from ._base import Dialect, SQLStore

__all__ = ["SQLiteDialect", "SQLiteStore"]


class SQLiteDialect(Dialect):
    name: ClassVar[str] = "sqlite"
    types: ClassVar[dict[str, str]] = {
        "pk": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "json": "TEXT",
        "bytes": "BLOB",
        "bigint": "INTEGER",
    }

    def json_text(self, column: str, key: str) -> str:
        return f"json_extract({column}, '$.\"{key}\"')"

    def json_number(self, column: str, key: str) -> str:
        path = f"'$.\"{key}\"'"
        numeric = f"json_type({column}, {path}) IN ('integer', 'real')"
        return f"(CASE WHEN {numeric} THEN json_extract({column}, {path}) END)"


class SQLiteStore(SQLStore):
    dialect = SQLiteDialect()

    def __init__(self, url: str, path: str) -> None:
        super().__init__(url)
        self.path = path
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # Transactions are managed explicitly (BEGIN IMMEDIATE), so autocommit mode.
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=30000")
            # A 2 MB default page cache makes index inserts go to disk once the store grows.
            self._conn.execute("PRAGMA cache_size=-65536")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {path!r}: {exc}") from exc

    def _cursor(self) -> Any:
        return self._conn.cursor()

    def _begin(self, cursor: Any, *, immediate: bool) -> None:
        cursor.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")

    def _commit(self) -> None:
        self._conn.execute("COMMIT")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _table_exists_sql(self) -> str:
        return "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"

    def reclaim(self) -> None:
        """VACUUM rewrites the file from its live rows only (deleted rows linger in free pages and in
        cells an update moved), then the WAL, which holds older page images, is checkpointed and
        truncated."""
        if self.path == ":memory:":
            return
        with self._lock:
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _close(self) -> None:
        self._conn.close()
