"""No row can stop the runner: a row that cannot be decoded is moved to the `quarantine` table.

Readers decode through `decode_rows`: the batch decodes at full speed, and only when some row
raises is the batch decoded again row by row, each bad row moved (in a savepoint of the reader's
own transaction) with every column as stored, its key and the error, then skipped. Moving it, not
marking it, keeps it out of every later read and claim at no cost to the hot paths. `repair` puts a
row back once it decodes (after the known fixes: epoch milliseconds, ISO 8601 text, JSON encoded
twice); `drop` deletes an entry for good. A quarantined consent entry leaves a revocation in its
place until it is repaired: a ledger with an unreadable entry fails closed.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import attrs

from .._customers import PURPOSES
from .._errors import NotFoundError, OmniError, ValidationError
from .._logging import get_logger
from .._touchpoints import MESSAGE_CHANNELS
from ._base import SQLStore, Transaction, dumps, loads
from ._rows import JSON_CODECS, MAX_TIMESTAMP, MIN_TIMESTAMP, TABLES, json_any, optional_timestamp, timestamp

__all__ = [
    "DECODE_ERRORS",
    "QuarantineRepair",
    "QuarantinedRow",
    "decode_found",
    "decode_row",
    "decode_rows",
    "drop_quarantined",
    "list_quarantined",
    "quarantine_row",
    "repair_quarantined",
]

log = get_logger("omnisdk.store")

T = TypeVar("T")

#: What decoding a bad value raises (a JSON error is a ValueError, an unknown channel an OmniError).
DECODE_ERRORS: Final = (ArithmeticError, AttributeError, LookupError, RecursionError, TypeError, ValueError,
                        OmniError)


@attrs.frozen(kw_only=True)
class QuarantinedRow:
    """A row a read could not decode, kept aside with everything it held.

    `table` and `key` say where it came from, `values` are its columns as stored, `error` why it
    could not be read (and `repair_error` why the last repair could not put it back)."""

    id: int
    table: str
    key: Mapping[str, Any]
    values: Mapping[str, Any]
    error_type: str
    error: str
    quarantined_at: datetime
    repair_error: str | None = None


@attrs.frozen(kw_only=True)
class QuarantineRepair:
    """What `repair` did: the entries put back into their tables, and why the others were not."""

    repaired: tuple[int, ...] = ()
    failed: Mapping[int, str] = attrs.field(factory=dict)


def _first(row: Sequence[Any]) -> tuple[Any, ...]:
    return (row[0],)


def decode_rows(
    tx: Transaction, table: str, rows: Iterable[Sequence[Any]], decode: Callable[[Sequence[Any]], T],
    key: Callable[[Sequence[Any]], tuple[Any, ...]] = _first,
) -> list[T]:
    """`decode` applied to each row; rows it cannot decode are quarantined and left out.

    `key` gives a row's primary key (`TABLES[table].key` order) from the selected columns."""
    rows = rows if isinstance(rows, list) else list(rows)
    try:
        return [decode(row) for row in rows]
    except DECODE_ERRORS:
        pass
    decoded = []
    for row in rows:
        try:
            decoded.append(decode(row))
        except DECODE_ERRORS as exc:
            quarantine_row(tx, table, key(row), exc)
    return decoded


def decode_row(
    tx: Transaction, table: str, row: Sequence[Any], decode: Callable[[Sequence[Any]], T],
    key: Callable[[Sequence[Any]], tuple[Any, ...]] = _first,
) -> T | None:
    """`decode(row)`, or None once the row is quarantined: for readers that stop at the first match."""
    try:
        return decode(row)
    except DECODE_ERRORS as exc:
        quarantine_row(tx, table, key(row), exc)
        return None


def decode_found(
    tx: Transaction, table: str, row: Sequence[Any] | None, decode: Callable[[Sequence[Any]], T], *,
    missing: str, name: str,
) -> T:
    """The one row a lookup by id found, decoded; `NotFoundError(missing)` when there was none, and
    one naming `name` when it could not be read (it is quarantined then)."""
    if row is None:
        raise NotFoundError(missing)
    decoded = decode_row(tx, table, row, decode)
    if decoded is None:
        raise NotFoundError(f"{name} cannot be read and is quarantined (omnisdk quarantine list)")
    return decoded


def quarantine_row(tx: Transaction, table: str, key: Sequence[Any], error: BaseException) -> int | None:
    """Move one row to the quarantine; its id there, or None if the row was gone or could not be moved."""
    spec = TABLES[table]
    where = " AND ".join(f"{column} = ?" for column in spec.key)
    now = time.time()
    tx.execute("SAVEPOINT quarantine")
    try:
        # DELETE … RETURNING: of two workers that read the row at once, only one gets it to keep.
        tx.cursor.execute(tx.dialect.sql(f"DELETE FROM {table} WHERE {where} RETURNING *"), tuple(key))
        found = tx.cursor.fetchone()
        if found is None:
            tx.execute("RELEASE SAVEPOINT quarantine")
            return None
        names = [d[0] for d in tx.cursor.description]
        values = dict(zip(names, tuple(found), strict=True))
        if tx.dialect.name == "postgresql":  # JSONB comes back decoded: keep it as text, as SQLite does
            values = {k: dumps(v) if v is not None and spec.columns.get(k) in JSON_CODECS else v
                      for k, v in values.items()}
        qid = tx.scalar(
            "INSERT INTO quarantine (origin, row_key, row_values, error_type, error, quarantined_at) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (table, _encode(dict(zip(spec.key, key, strict=True))), _encode(values), type(error).__name__,
             str(error)[:2000], now),
        )
        if table == "consents":
            _revoke_in_place(tx, values, int(qid), now)
        tx.execute("RELEASE SAVEPOINT quarantine")
    except Exception as exc:  # the read goes on without the row; the row stays where it was
        tx.execute("ROLLBACK TO SAVEPOINT quarantine")
        tx.execute("RELEASE SAVEPOINT quarantine")
        log.error("row_quarantine_failed", table=table, error_type=type(error).__name__, cause=type(exc).__name__)
        return None
    fields: dict[str, Any] = {"key": list(key)} if spec.loggable_key else {}
    log.warning("row_quarantined", table=table, quarantine_id=int(qid), error_type=type(error).__name__, **fields)
    return int(qid)


def _revoke_in_place(tx: Transaction, values: Mapping[str, Any], qid: int, now: float) -> None:
    """An unreadable consent entry may have been a revocation: revoke until it is repaired."""
    customer_id = values.get("customer_id")
    if not isinstance(customer_id, str):
        return
    channel = values.get("channel")
    channel = channel if channel in (*MESSAGE_CHANNELS, "all") else "all"
    purpose = values.get("purpose")
    purpose = purpose if purpose in PURPOSES else "marketing"
    at = values.get("recorded_at")
    at = at if type(at) is float and MIN_TIMESTAMP <= at <= MAX_TIMESTAMP else now
    tx.execute(
        "INSERT INTO consents (customer_id, channel, purpose, granted, source, recorded_at) VALUES (?, ?, ?, 0, ?, ?)",
        (customer_id, channel, purpose, f"quarantine:{qid}", at),
    )


# -- administration (`Omni.quarantine`, `omnisdk quarantine`)
_COLUMNS: Final = "id, origin, row_key, row_values, error_type, error, quarantined_at, repair_error"


def _entry(row: Sequence[Any]) -> QuarantinedRow:
    qid, origin, key, values, error_type, error, at, repair_error = row
    return QuarantinedRow(id=int(qid), table=origin, key=_decode(key), values=_decode(values), error_type=error_type,
                          error=error, quarantined_at=datetime.fromtimestamp(at, UTC), repair_error=repair_error)


def _check_table(table: str | None) -> None:
    if table is not None and table not in TABLES:
        raise ValidationError(f"expected one of {', '.join(sorted(TABLES))}", field="table", value=table)


def list_quarantined(store: SQLStore, *, table: str | None = None, limit: int | None = 100) -> list[QuarantinedRow]:
    """Quarantined rows, oldest first."""
    _check_table(table)
    with store.transaction(immediate=False) as tx:
        return _of_table(tx, table, limit)


def _of_table(tx: Transaction, table: str | None, limit: int | None = None) -> list[QuarantinedRow]:
    sql, params = f"SELECT {_COLUMNS} FROM quarantine", list[Any]()
    if table is not None:
        sql += " WHERE origin = ?"
        params.append(table)
    sql += " ORDER BY id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return [_entry(r) for r in tx.query(sql, params)]


def _selected(tx: Transaction, ids: Sequence[int] | None, table: str | None) -> list[QuarantinedRow]:
    if ids is None:
        return _of_table(tx, table)
    found = []
    for qid in ids:
        row = tx.one(f"SELECT {_COLUMNS} FROM quarantine WHERE id = ?", (int(qid),))
        if row is None:
            raise NotFoundError(f"no quarantined row with id {qid}")
        found.append(_entry(row))
    return found


def repair_quarantined(
    store: SQLStore, ids: Sequence[int] | None = None, *, table: str | None = None
) -> QuarantineRepair:
    """Put quarantined rows back once they decode (after `fixed`); the others stay, with the reason."""
    _check_table(table)
    repaired: list[int] = []
    failed: dict[int, str] = {}
    with store.transaction() as tx:
        entries = _selected(tx, ids, table)
    for entry in entries:
        values = fixed(entry.table, entry.values)
        with store.transaction() as tx:
            try:
                TABLES[entry.table].check(values)
                tx.execute("SAVEPOINT repair")
                try:
                    _insert(tx, entry.table, values)
                except Exception as exc:  # the key was taken meanwhile, or the database refuses a value
                    tx.execute("ROLLBACK TO SAVEPOINT repair")
                    raise ValueError(f"cannot put the row back into {entry.table}: {type(exc).__name__}") from exc
                tx.execute("RELEASE SAVEPOINT repair")
            except ValueError as exc:
                failed[entry.id] = str(exc)[:2000]
                tx.execute("UPDATE quarantine SET repair_error = ? WHERE id = ?", (failed[entry.id], entry.id))
                continue
            tx.execute("DELETE FROM quarantine WHERE id = ?", (entry.id,))
            if entry.table == "consents":
                tx.execute("DELETE FROM consents WHERE source = ?", (f"quarantine:{entry.id}",))
            repaired.append(entry.id)
    if repaired or failed:
        log.warning("quarantine_repaired", repaired=len(repaired), failed=len(failed))
    return QuarantineRepair(repaired=tuple(repaired), failed=failed)


def drop_quarantined(store: SQLStore, ids: Sequence[int] | None = None, *, table: str | None = None) -> int:
    """Delete quarantined rows for good (by id, or every one of a table when `ids` is None)."""
    _check_table(table)
    if ids is None and table is None:
        raise ValidationError("name the rows to drop (ids) or a table", field="ids")
    with store.transaction() as tx:
        entries = _selected(tx, ids, table)
        for entry in entries:
            tx.execute("DELETE FROM quarantine WHERE id = ?", (entry.id,))
    if entries:
        log.warning("quarantine_dropped", count=len(entries), ids=[e.id for e in entries])
    return len(entries)


def _insert(tx: Transaction, table: str, values: Mapping[str, Any]) -> None:
    columns = list(values)
    tx.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
               [values[c] for c in columns])


# -- the known fixes
def fixed(table: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with what old writers are known to have stored wrongly put right: epoch milliseconds
    or microseconds and ISO 8601 text where epoch seconds belong, JSON text encoded twice."""
    columns = TABLES[table].columns
    out = dict(values)
    for column, codec in columns.items():
        value = out.get(column)
        if codec in (timestamp, optional_timestamp):
            out[column] = _seconds(value)
        elif codec is not json_any and isinstance(value, str):
            try:
                inner = loads(value)
            except ValueError:
                continue
            if isinstance(inner, str) and inner.strip()[:1] in ("{", "["):
                out[column] = inner
    return out


def _seconds(value: Any) -> Any:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return value
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    if type(value) in (int, float) and math.isfinite(value):
        for _ in range(3):  # milliseconds, microseconds, nanoseconds
            if abs(value) <= MAX_TIMESTAMP:
                break
            value /= 1_000
        return float(value)
    return value


# -- raw values as JSON text (bytes and non-finite floats tagged)
def _tag(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def _encode(values: Mapping[str, Any]) -> str:
    return json.dumps({k: _tag(v) for k, v in values.items()}, default=str, allow_nan=False)


def _untag(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        if "$float" in value:
            return float(value["$float"])
        if "$bytes" in value:
            return base64.b64decode(value["$bytes"])
    return value


def _decode(text: str) -> dict[str, Any]:
    return {k: _untag(v) for k, v in json.loads(text).items()}
