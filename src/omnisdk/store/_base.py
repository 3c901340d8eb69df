"""One SQL implementation for every store; a `Dialect` holds what SQLite and PostgreSQL spell differently.

Code above the store writes portable SQL with `?` placeholders and runs it in a `Transaction`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources
from typing import Any, ClassVar, Protocol

from .._errors import StoreError

__all__ = ["Dialect", "SQLStore", "Store", "StoreActivity", "Transaction", "dumps", "loads"]

Row = tuple[Any, ...]


# One encoder and one decoder, reused: json.dumps with options builds a new encoder on every call,
# and json.loads checks its argument's type and encoding before it decodes (a hot path).
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
_decoder = json.JSONDecoder()
#: What most JSON columns hold (no data, no decisions yet), decided without the parser; each call
#: makes a new object, as the parser would, since callers may change what they get.
_EMPTY: dict[str, Callable[[], Any]] = {"[]": list, "{}": dict, "null": lambda: None}


def dumps(value: Any) -> str:
    return _encode(value)


def loads(value: Any) -> Any:
    """JSON columns come back as text from SQLite and already decoded from PostgreSQL."""
    if value is None or not isinstance(value, str | bytes):
        return value
    if isinstance(value, bytes):
        return json.loads(value)
    empty = _EMPTY.get(value)
    if empty is not None:
        return empty()
    try:  # text as `dumps` writes it, one value and nothing around it: no whitespace scans (half the time)
        decoded, end = _decoder.raw_decode(value)
        if end == len(value):
            return decoded
    except ValueError:
        pass
    return _decoder.decode(value)  # whitespace around the value, or not JSON: decode accepts it or says why


class Dialect:
    """What differs between databases, as data and small SQL fragments."""

    name: ClassVar[str] = "sql"
    types: ClassVar[dict[str, str]] = {}
    #: Appended to a claiming SELECT (`FOR UPDATE SKIP LOCKED` where the database has it).
    skip_locked: ClassVar[str] = ""

    def sql(self, statement: str) -> str:
        return statement

    def render(self, ddl: str) -> str:
        """A migration with its type placeholders (`{pk}`, `{json}`, `{bytes}`, `{bigint}`) filled in,
        and its `{sqlite} ... {end}` / `{postgresql} ... {end}` sections kept for this database only
        (statements that read JSON, which the two spell differently).

        Only those are replaced, so literals such as `DEFAULT '{}'` stay as written."""
        ddl = re.sub(r"\{(sqlite|postgresql)\}(.*?)\{end\}", lambda m: m[2] if m[1] == self.name else "", ddl,
                     flags=re.DOTALL)
        return re.sub(r"\{(pk|json|bytes|bigint)\}", lambda m: self.types[m[1]], ddl)

    def json_text(self, column: str, key: str) -> str:
        """SQL for `column[key]` as text."""
        raise NotImplementedError

    def json_number(self, column: str, key: str) -> str:
        """SQL for `column[key]` as a number (NULL when absent)."""
        raise NotImplementedError


class StoreActivity:
    """How much a store has been asked to do: SQL statements run (an `executemany` counts one per
    row, as the database runs it once per row) and transactions committed or rolled back. The
    benchmarks report them per message and per journey run, where round trips are the cost."""

    __slots__ = ("statements", "transactions")

    def __init__(self) -> None:
        self.statements = 0
        self.transactions = 0

    def __repr__(self) -> str:
        return f"StoreActivity(statements={self.statements}, transactions={self.transactions})"


class Transaction:
    """A DB-API cursor inside one transaction, speaking portable SQL."""

    def __init__(self, cursor: Any, dialect: Dialect, activity: StoreActivity | None = None) -> None:
        self.cursor = cursor
        self.dialect = dialect
        self.activity = activity if activity is not None else StoreActivity()
        #: Called once the transaction has committed (never on rollback): announcements of what it
        #: stored, so listeners only ever hear of rows that exist.
        self.committed: list[Callable[[], None]] = []
        #: Called inside the transaction just before it commits: writes that must come last (the
        #: event stream's rows take their commit-ordered sequence there).
        self.committing: list[Callable[[], None]] = []

    def before_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` in this transaction, after the caller's statements and before it commits."""
        self.committing.append(callback)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` after this transaction commits; dropped if it rolls back."""
        self.committed.append(callback)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.activity.statements += 1
        self.cursor.execute(self.dialect.sql(sql), params)
        return int(self.cursor.rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run `sql` once per row; returns the rows affected in all (sqlite3 and psycopg both sum them)."""
        rows = list(rows)
        if not rows:
            return 0
        self.activity.statements += len(rows)
        self.cursor.executemany(self.dialect.sql(sql), rows)
        return int(self.cursor.rowcount)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self.activity.statements += 1
        self.cursor.execute(self.dialect.sql(sql), params)
        return [tuple(r) for r in self.cursor.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        self.activity.statements += 1
        self.cursor.execute(self.dialect.sql(sql), params)
        row = self.cursor.fetchone()
        return tuple(row) if row is not None else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.one(sql, params)
        return row[0] if row else None


class Store(Protocol):
    """Where omnisdk keeps everything. `SQLiteStore` and `PostgresStore` implement it."""

    url: str
    dialect: Dialect

    def transaction(self) -> Any:
        """A context manager yielding a `Transaction`; commits on success, rolls back on error."""
        ...

    def migrate(self) -> list[int]: ...

    def schema_version(self) -> int: ...

    def close(self) -> None: ...


@lru_cache(maxsize=1)
def _migration_files() -> tuple[tuple[int, str, str], ...]:
    found = []
    for entry in resources.files("omnisdk.store").joinpath("migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return tuple(sorted(found))


def migrations() -> tuple[tuple[int, str, str], ...]:
    """(version, name, sql) for every migration shipped, in order."""
    return _migration_files()


class SQLStore:
    """Shared behaviour: a connection guarded by a lock, transactions, versioned migrations."""

    dialect: Dialect

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.RLock()
        self._closed = False
        #: Statements and transactions so far (see `StoreActivity`).
        self.activity = StoreActivity()

    # -- to implement per database
    def _cursor(self) -> Any:
        raise NotImplementedError

    def _begin(self, cursor: Any, *, immediate: bool) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def _migration_lock(self, tx: Transaction) -> None:
        """Serialise migrators across processes."""

    def _close(self) -> None:
        raise NotImplementedError

    # -- shared
    @contextmanager
    def transaction(self, *, immediate: bool = True) -> Iterator[Transaction]:
        if self._closed:
            raise StoreError(f"the store {self.redacted_url} is closed")
        with self._lock:
            cursor = self._cursor()
            self._begin(cursor, immediate=immediate)
            self.activity.transactions += 1
            tx = Transaction(cursor, self.dialect, self.activity)
            try:
                yield tx
                for write in tx.committing:
                    write()
            except BaseException:
                self._rollback()
                raise
            else:
                self._commit()
        for callback in tx.committed:  # outside the lock: a listener may open its own transaction
            callback()

    @property
    def redacted_url(self) -> str:
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.url)

    def schema_version(self) -> int:
        with self.transaction(immediate=False) as tx:
            exists = tx.scalar(self._table_exists_sql(), ("schema_migrations",))
            if not exists:
                return 0
            return int(tx.scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") or 0)

    def _table_exists_sql(self) -> str:
        raise NotImplementedError

    def migrate(self) -> list[int]:
        """Apply the migrations this store has not seen, each in its own transaction. Idempotent."""
        applied: list[int] = []
        for version, name, sql in migrations():
            with self.transaction() as tx:
                self._migration_lock(tx)
                tx.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
                )
                if tx.scalar("SELECT 1 FROM schema_migrations WHERE version = ?", (version,)):
                    continue
                for statement in _split(self.dialect.render(sql)):
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, time.time()),
                )
                applied.append(version)
        return applied

    def reclaim(self) -> None:
        """Make deleted rows unrecoverable from the database's own files where the database keeps
        them (SQLite's free pages and WAL); a no-op where it does not."""

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.redacted_url}>"


def _split(script: str) -> list[str]:
    """Split a migration into statements (they contain no semicolons inside literals)."""
    without_comments = "\n".join(line for line in script.splitlines() if not line.strip().startswith("--"))
    return [s.strip() for s in without_comments.split(";") if s.strip()]


def json_table(tx: Transaction, kinds: str) -> tuple[str, list[str]]:
    """A table over one JSON parameter (an array of arrays): its FROM item (with one `?`) and its
    columns, one per letter of `kinds`: t text, f double, i bigint, j JSON (as the column's JSON
    type). Set-based writes send a whole batch of rows as that one parameter: one statement."""
    if tx.dialect.name == "postgresql":
        casts = {"t": "(r.value ->> {i})", "f": "CAST(r.value ->> {i} AS DOUBLE PRECISION)",
                 "i": "CAST(r.value ->> {i} AS BIGINT)", "j": "(r.value -> {i})"}
        source = "jsonb_array_elements(CAST(? AS JSONB)) AS r"
    else:
        casts = dict.fromkeys("tfij", "json_extract(r.value, '$[{i}]')")
        source = "json_each(?) AS r"
    return source, [casts[kind].format(i=i) for i, kind in enumerate(kinds)]
