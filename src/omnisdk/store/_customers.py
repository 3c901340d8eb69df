"""Customer profiles: reading, creating and updating customers rows.

Every SQL statement about this table lives here (see docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from .._clock import to_datetime
from .._customers import Customer, Identity
from .._errors import NotFoundError
from ._base import Transaction, dumps
from ._consents import consents_of
from ._predictions import PredictionRow, predictions_of
from ._quarantine import DECODE_ERRORS, decode_row, decode_rows, quarantine_row
from ._rows import json_array, json_object, optional_object, optional_text, text, timestamp, timezone

__all__ = [
    "MergeableProfile",
    "customer_links",
    "created_at",
    "customer_timezone",
    "follow_merges",
    "insert_customer",
    "insert_customers",
    "insert_merge",
    "load_customer",
    "load_customers",
    "mark_merged",
    "mergeable_profile",
    "move_customer_rows",
    "read_traits",
    "update_profile",
    "write_merged_profile",
    "profile_fingerprints",
]

_CHUNK = 500
_MAX_MERGE_HOPS = 64
_CUSTOMER_COLUMNS = "id, traits, timezone, locale, address, preferred_channels, created_at, updated_at, merged_into"
_INSERT = "INSERT INTO customers (id, traits, preferred_channels, created_at, updated_at) VALUES (?, '{}', '[]', ?, ?)"


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- existence and merges
def customer_links(tx: Transaction, customer_ids: Sequence[str]) -> dict[str, str | None]:
    """For each stored id, the profile it was merged into (None when it is live); unknown ids are absent."""
    found: dict[str, str | None] = {}
    for chunk in _chunks(customer_ids):
        marks = ",".join("?" * len(chunk))
        for cid, merged_into in tx.query(f"SELECT id, merged_into FROM customers WHERE id IN ({marks})", chunk):
            found[cid] = merged_into
    return found


def follow_merges(tx: Transaction, customer_id: str) -> str:
    """The live profile at the end of `customer_id`'s merge chain."""
    cid = customer_id
    for _ in range(_MAX_MERGE_HOPS):
        nxt = tx.scalar("SELECT merged_into FROM customers WHERE id = ?", (cid,))
        if not nxt:
            return cid
        cid = nxt
    raise NotFoundError(f"customer {cid!r}: merge chain too long")


def insert_customer(tx: Transaction, customer_id: str, now: float) -> None:
    tx.execute(_INSERT, (customer_id, now, now))


def insert_customers(tx: Transaction, customer_ids: Sequence[str], now: float) -> None:
    """Empty profiles for these ids; one already stored is left as it is."""
    tx.executemany(_INSERT + " ON CONFLICT (id) DO NOTHING", [(c, now, now) for c in customer_ids])


def created_at(tx: Transaction, customer_id: str) -> float:
    return float(tx.scalar("SELECT created_at FROM customers WHERE id = ?", (customer_id,)) or 0.0)


def customer_timezone(tx: Transaction, customer_id: str) -> str | None:
    """The profile's time zone (None when it has none); `NotFoundError` for an unknown id."""
    row = tx.one("SELECT timezone FROM customers WHERE id = ?", (customer_id,))
    if row is None:
        raise NotFoundError(f"no customer {customer_id!r}")
    return row[0] if isinstance(row[0], str) else None


def mark_merged(tx: Transaction, winner: str, loser: str, now: float) -> None:
    """Point `loser`, and every profile merged into it, at `winner`."""
    tx.execute("UPDATE customers SET merged_into = ?, updated_at = ? WHERE id = ? OR merged_into = ?",
               (winner, now, loser, loser))


def move_customer_rows(tx: Transaction, tables: Iterable[str], winner: str, loser: str) -> None:
    """Rows of `tables` that belong to `loser` now belong to `winner` (the tables are the code's own)."""
    for table in tables:
        tx.execute(f"UPDATE {table} SET customer_id = ? WHERE customer_id = ?", (winner, loser))


def insert_merge(tx: Transaction, winner: str, loser: str, reason: str, now: float) -> None:
    tx.execute("INSERT INTO merges (winner_id, loser_id, reason, merged_at) VALUES (?, ?, ?, ?)",
               (winner, loser, reason, now))


# -- profile fields
@attrs.frozen
class MergeableProfile:
    """What a merge folds of one profile."""

    traits: Mapping[str, Any] = attrs.field(factory=dict)
    timezone: str | None = None
    locale: str | None = None
    address: Mapping[str, Any] | None = None
    preferred_channels: Sequence[str] = ()


def mergeable_profile(tx: Transaction, customer_id: str, now: float) -> MergeableProfile | None:
    """The profile's mergeable fields (None if there is no such profile). An unreadable profile is
    quarantined and an empty one takes its place, so the merge goes on."""
    row = tx.one("SELECT id, traits, timezone, locale, address, preferred_channels FROM customers WHERE id = ?",
                 (customer_id,))
    if row is None:
        return None
    fields = decode_row(tx, "customers", row, _merge_fields)
    if fields is None:
        insert_customer(tx, customer_id, now)
        return MergeableProfile()
    return fields


def _merge_fields(row: Sequence[Any]) -> MergeableProfile:
    _, traits, zone, locale, address, preferred = row
    return MergeableProfile(json_object(traits), timezone(zone), optional_text(locale), optional_object(address),
                            tuple(json_array(preferred)))


def write_merged_profile(tx: Transaction, customer_id: str, profile: MergeableProfile, now: float) -> None:
    tx.execute(
        "UPDATE customers SET traits = ?, timezone = ?, locale = ?, address = ?, preferred_channels = ?, "
        "updated_at = ? WHERE id = ?",
        (dumps(dict(profile.traits)), profile.timezone, profile.locale,
         dumps(dict(profile.address)) if profile.address else None, dumps(list(profile.preferred_channels)), now,
         customer_id),
    )


def read_traits(tx: Transaction, customer_id: str) -> dict[str, Any] | None:
    """The stored traits; None when they cannot be read (the profile row is then quarantined)."""
    try:
        return json_object(tx.scalar("SELECT traits FROM customers WHERE id = ?", (customer_id,)))
    except DECODE_ERRORS as exc:
        quarantine_row(tx, "customers", (customer_id,), exc)
        return None


def update_profile(
    tx: Transaction, customer_id: str, now: float, *, traits_json: str | None = None, timezone: str | None = None,
    locale: str | None = None, address_json: str | None = None, preferred_channels: Sequence[str] | None = None,
) -> None:
    """Set the given fields (None: left as they are) and the update time."""
    sets, params = ["updated_at = ?"], [now]
    for column, value in (("traits", traits_json), ("timezone", timezone), ("locale", locale),
                          ("address", address_json),
                          ("preferred_channels", None if preferred_channels is None else dumps(
                              list(preferred_channels)))):
        if value is not None:
            sets.append(f"{column} = ?")
            params.append(value)  # type: ignore[arg-type]
    tx.execute(f"UPDATE customers SET {', '.join(sets)} WHERE id = ?", (*params, customer_id))


# -- whole profiles
def load_customer(tx: Transaction, customer_id: str) -> Customer:
    """The profile of `customer_id`, or of the profile it was merged into (`NotFoundError` if none)."""
    customer = load_customers(tx, [customer_id])[customer_id]
    if customer is None:
        raise NotFoundError(f"no customer with id {customer_id!r}")
    return customer


def load_customers(tx: Transaction, customer_ids: Iterable[str]) -> dict[str, Customer | None]:
    """Profiles for many ids in three queries per 500 (None for an unknown id), plus one per merge
    hop; an id merged into another profile gets the surviving profile."""
    wanted = list(dict.fromkeys(customer_ids))
    rows: dict[str, Sequence[Any]] = {}
    survivor = {cid: cid for cid in wanted}
    missing = wanted
    for _ in range(_MAX_MERGE_HOPS + 1):
        for chunk in _chunks(missing):
            marks = ",".join("?" * len(chunk))
            found_rows = tx.query(f"SELECT {_CUSTOMER_COLUMNS} FROM customers WHERE id IN ({marks})", chunk)
            for row in decode_rows(tx, "customers", found_rows, _profile_row):
                rows[row[0]] = row
        merged = {cid: rows[at][8] for cid, at in survivor.items() if at in rows and rows[at][8]}
        if not merged:
            break
        survivor.update(merged)
        missing = [cid for cid in dict.fromkeys(merged.values()) if cid not in rows]
    found = list(dict.fromkeys(at for at in survivor.values() if at in rows))
    identities: dict[str, list[Identity]] = {}
    consents: dict[str, list[Any]] = {}
    predictions: dict[str, PredictionRow] = {}
    for chunk in _chunks(found):
        marks = ",".join("?" * len(chunk))
        identity_rows = tx.query(
            f"SELECT customer_id, kind, value, created_at FROM identities WHERE customer_id IN ({marks}) "
            "ORDER BY customer_id, created_at, kind", chunk,
        )
        for cid, identity in decode_rows(tx, "identities", identity_rows, _identity, key=lambda r: (r[1], r[2])):
            identities.setdefault(cid, []).append(identity)
        consents.update(consents_of(tx, chunk))
        predictions.update(predictions_of(tx, chunk))
    profiles = {
        cid: Customer(
            id=cid, identities=tuple(identities.get(cid, ())), traits=row[1], timezone=row[2],
            locale=row[3], address=row[4], preferred_channels=row[5],
            consents=tuple(consents.get(cid, ())), created_at=row[6], updated_at=row[7],
            prediction=predictions[cid].prediction() if cid in predictions else None,
        )
        for cid in found
        for row in (rows[cid],)
    }
    return {cid: profiles.get(survivor[cid]) for cid in wanted}


def _profile_row(row: Sequence[Any]) -> tuple[Any, ...]:
    """A `customers` row with every column decoded and checked (`_CUSTOMER_COLUMNS` order)."""
    cid, traits, zone, locale, address, preferred, created, updated, merged_into = row
    return (text(cid), json_object(traits), timezone(zone), optional_text(locale), optional_object(address),
            tuple(json_array(preferred)), to_datetime(timestamp(created)), to_datetime(timestamp(updated)),
            optional_text(merged_into))


def _identity(row: Sequence[Any]) -> tuple[str, Identity]:
    cid, kind, value, created = row
    timestamp(created)
    return cid, Identity(text(kind), text(value))


def profile_fingerprints(
    tx: Transaction, customer_ids: Sequence[str]
) -> tuple[dict[str, tuple[Any, Any]], dict[str, set[tuple[str, str]]], dict[str, list[tuple[str, str, bool]]]]:
    """What a send's decision depends on, per customer, in one query: (timezone, merged_into), the
    identities (kind, value), and the consent entries (channel, purpose, granted) in ledger order."""
    marks = ",".join("?" * len(customer_ids))
    rows = tx.query(
        f"SELECT 0, id, timezone, merged_into, 0, 0 FROM customers WHERE id IN ({marks}) "
        f"UNION ALL SELECT 1, customer_id, kind, value, 0, 0 FROM identities WHERE customer_id IN ({marks}) "
        f"UNION ALL SELECT 2, customer_id, channel, purpose, granted, id FROM consents WHERE customer_id IN ({marks})",
        (*customer_ids, *customer_ids, *customer_ids),
    )
    found: dict[str, tuple[Any, Any]] = {}
    identities: dict[str, set[tuple[str, str]]] = {}
    ledger: dict[str, list[tuple[int, str, str, bool]]] = {}
    for table, cid, first, second, granted, entry_id in rows:
        if table == 0:
            found[cid] = (first, second)
        elif table == 1:
            identities.setdefault(cid, set()).add((first, second))
        else:
            ledger.setdefault(cid, []).append((entry_id, first, second, bool(granted)))
    # Ledger order sorted here: an ORDER BY over the whole union sorts every identity row as well
    # (a fifth of the query's time), and most customers have few consent entries.
    consents = {cid: [entry[1:] for entry in sorted(entries)] for cid, entries in ledger.items()}
    return found, identities, consents
