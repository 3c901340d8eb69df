"""Identity resolution: every identifier a customer shows, on any channel, leads to one profile.

Rules follow Segment Unify's: junk values are ignored, each identifier kind has a limit per
profile, and a merge that would break a limit (two different app user ids, say) is refused.
The profile that carries an app user id wins a merge; otherwise the one matched by the
highest-priority identifier, then the oldest.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from ._clock import to_datetime
from ._customers import IDENTITY_KINDS, Consent, Customer, Identity
from ._errors import NotFoundError, ValidationError
from ._identifiers import normalize_identifier
from ._logging import get_logger
from .store import (
    Transaction,
    decode_rows,
    dumps,
    integer,
    json_array,
    json_object,
    loads,
    optional_object,
    optional_text,
    text,
    timestamp,
    timezone,
)

__all__ = [
    "CUSTOMER_TABLES",
    "IdentityResolver",
    "IdentityRules",
    "load_customer",
    "load_customers",
    "register_customer_table",
]

log = get_logger("omnisdk.identity")

#: Tables whose `customer_id` follows a merge. Modules that keep per-customer rows add theirs.
CUSTOMER_TABLES: list[str] = ["touchpoints", "consents"]


def register_customer_table(table: str) -> None:
    if table not in CUSTOMER_TABLES:
        CUSTOMER_TABLES.append(table)


DEFAULT_LIMITS: Final[Mapping[str, int]] = {"user_id": 1, "email": 5, "phone": 5, "loyalty_id": 1}


@attrs.frozen(kw_only=True)
class IdentityRules:
    priority: Sequence[str] = IDENTITY_KINDS
    limits: Mapping[str, int] = attrs.field(factory=lambda: dict(DEFAULT_LIMITS))
    default_limit: int = 100

    def limit(self, kind: str) -> int:
        return self.limits.get(kind, self.default_limit)

    def rank(self, kind: str) -> int:
        return self.priority.index(kind) if kind in self.priority else len(self.priority)


def _new_customer_id() -> str:
    return "cus_" + uuid.uuid4().hex[:20]


class IdentityResolver:
    def __init__(self, rules: IdentityRules | None = None, *, region: str | None = None) -> None:
        self.rules = rules or IdentityRules()
        self.region = region

    def normalize(self, identifiers: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Canonical (kind, value) pairs; junk values dropped; lists allowed (several push tokens)."""
        pairs: list[tuple[str, str]] = []
        for kind, raw in identifiers.items():
            values = raw if isinstance(raw, list | tuple | set) else [raw]
            for value in values:
                norm = normalize_identifier(kind, value, region=self.region)
                if norm is not None and (kind, norm) not in pairs:
                    pairs.append((kind, norm))
        return pairs

    # -- resolution
    def resolve(
        self, tx: Transaction, customer_id: str | None, identifiers: Sequence[tuple[str, str]], now: float
    ) -> str:
        """The profile these identifiers belong to, creating or merging profiles as the rules allow."""
        if customer_id is not None:
            _check_customer_id(customer_id)
            explicit_winner: str | None = self._ensure_customer(tx, customer_id, now)
        else:
            explicit_winner = None
        owners = self._owners(tx, identifiers)
        candidates: dict[str, int] = {}
        for kind, _value, owner in owners:
            rank = self.rules.rank(kind)
            candidates[owner] = min(rank, candidates.get(owner, rank))
        winner = explicit_winner
        if winner is None:
            if not candidates:
                if not identifiers:
                    raise ValidationError("no usable identifier (all were empty or junk values)", field="who")
                winner = self._create(tx, _new_customer_id(), now, explicit=False)
            else:
                winner = self._pick_winner(tx, candidates)
        refused: set[str] = set()
        for loser in sorted(candidates, key=lambda c: candidates[c]):
            if loser == winner:
                continue
            if self._can_merge(tx, winner, loser):
                self.merge(tx, winner, loser, reason="shared identifier", now=now)
            else:
                refused.add(loser)
                log.info("merge_refused", winner=winner, loser=loser, reason="identifier limit")
        owned = {(k, v): o for k, v, o in owners}
        counts = self._identity_counts(tx, winner)
        fresh = []
        for kind, value in identifiers:
            holder = owned.get((kind, value))
            if holder is not None and (holder == winner or holder in refused):
                continue
            if counts.get(kind, 0) >= self.rules.limit(kind):
                log.info("identifier_dropped", customer_id=winner, kind=kind, reason="limit reached")
                continue
            counts[kind] = counts.get(kind, 0) + 1
            fresh.append((kind, value, winner, now))
        tx.executemany(
            "INSERT INTO identities (kind, value, customer_id, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, value) DO NOTHING",
            fresh,
        )
        return winner

    def resolve_ids(self, tx: Transaction, customer_ids: Iterable[str], now: float) -> dict[str, str]:
        """The batch fast path for known customer ids: create missing profiles, follow merges."""
        wanted = list(dict.fromkeys(customer_ids))
        for cid in wanted:
            _check_customer_id(cid)
        found: dict[str, str | None] = {}
        for chunk in _chunks(wanted, 500):
            marks = ",".join("?" * len(chunk))
            for cid, merged_into in tx.query(f"SELECT id, merged_into FROM customers WHERE id IN ({marks})", chunk):
                found[cid] = merged_into
        missing = [c for c in wanted if c not in found]
        if missing:
            tx.executemany(
                "INSERT INTO customers (id, traits, preferred_channels, created_at, updated_at) "
                "VALUES (?, '{}', '[]', ?, ?) ON CONFLICT (id) DO NOTHING",
                [(c, now, now) for c in missing],
            )
            tx.executemany(
                "INSERT INTO identities (kind, value, customer_id, created_at) VALUES ('user_id', ?, ?, ?) "
                "ON CONFLICT (kind, value) DO NOTHING",
                [(c, c, now) for c in missing],
            )
        result = {}
        for cid in wanted:
            target = found.get(cid)
            result[cid] = self._follow(tx, target) if target else cid
        return result

    def _follow(self, tx: Transaction, cid: str) -> str:
        for _ in range(64):
            nxt = tx.scalar("SELECT merged_into FROM customers WHERE id = ?", (cid,))
            if not nxt:
                return cid
            cid = nxt
        raise NotFoundError(f"customer {cid!r}: merge chain too long")

    def _ensure_customer(self, tx: Transaction, customer_id: str, now: float) -> str:
        row = tx.one("SELECT merged_into FROM customers WHERE id = ?", (customer_id,))
        if row is None:
            return self._create(tx, customer_id, now, explicit=True)
        return self._follow(tx, row[0]) if row[0] else customer_id

    def _create(self, tx: Transaction, customer_id: str, now: float, *, explicit: bool) -> str:
        tx.execute(
            "INSERT INTO customers (id, traits, preferred_channels, created_at, updated_at) "
            "VALUES (?, '{}', '[]', ?, ?)",
            (customer_id, now, now),
        )
        if explicit:
            tx.execute(
                "INSERT INTO identities (kind, value, customer_id, created_at) VALUES ('user_id', ?, ?, ?)",
                (customer_id, customer_id, now),
            )
        return customer_id

    def _owners(self, tx: Transaction, identifiers: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
        owners: list[tuple[str, str, str]] = []
        for chunk in _chunks(list(identifiers), 200):
            where = " OR ".join(["(kind = ? AND value = ?)"] * len(chunk))
            params = [p for pair in chunk for p in pair]
            owners.extend(tx.query(f"SELECT kind, value, customer_id FROM identities WHERE {where}", params))
        return owners

    def _pick_winner(self, tx: Transaction, candidates: Mapping[str, int]) -> str:
        def key(cid: str) -> tuple[bool, int, float]:
            has_user = bool(tx.scalar("SELECT 1 FROM identities WHERE customer_id = ? AND kind = 'user_id'", (cid,)))
            created = tx.scalar("SELECT created_at FROM customers WHERE id = ?", (cid,)) or 0.0
            return (not has_user, candidates[cid], float(created))

        return min(candidates, key=key)

    def _identity_counts(self, tx: Transaction, customer_id: str) -> dict[str, int]:
        rows = tx.query("SELECT kind, COUNT(*) FROM identities WHERE customer_id = ? GROUP BY kind", (customer_id,))
        return {kind: int(n) for kind, n in rows}

    def _can_merge(self, tx: Transaction, winner: str, loser: str) -> bool:
        rows = tx.query(
            "SELECT kind, COUNT(DISTINCT value) FROM identities WHERE customer_id IN (?, ?) GROUP BY kind",
            (winner, loser),
        )
        return all(int(n) <= self.rules.limit(kind) for kind, n in rows)

    def merge(self, tx: Transaction, winner: str, loser: str, *, reason: str, now: float) -> None:
        """Fold `loser` into `winner`: identities, touchpoints and every registered table follow."""
        w = tx.one(
            "SELECT traits, timezone, locale, address, preferred_channels FROM customers WHERE id = ?", (winner,)
        )
        lo = tx.one(
            "SELECT traits, timezone, locale, address, preferred_channels FROM customers WHERE id = ?", (loser,)
        )
        if w is None or lo is None:
            raise NotFoundError(f"cannot merge {loser!r} into {winner!r}: profile missing")
        traits = {**loads(lo[0]), **loads(w[0])}
        tx.execute(
            "UPDATE customers SET traits = ?, timezone = ?, locale = ?, address = ?, preferred_channels = ?, "
            "updated_at = ? WHERE id = ?",
            (
                dumps(traits),
                w[1] or lo[1],
                w[2] or lo[2],
                dumps(loads(w[3]) or loads(lo[3])) if (w[3] or lo[3]) else None,
                dumps(loads(w[4]) or loads(lo[4]) or []),
                now,
                winner,
            ),
        )
        tx.execute("UPDATE identities SET customer_id = ? WHERE customer_id = ?", (winner, loser))
        for table in CUSTOMER_TABLES:
            tx.execute(f"UPDATE {table} SET customer_id = ? WHERE customer_id = ?", (winner, loser))
        tx.execute(
            "UPDATE customers SET merged_into = ?, updated_at = ? WHERE id = ? OR merged_into = ?",
            (winner, now, loser, loser),
        )
        tx.execute(
            "INSERT INTO merges (winner_id, loser_id, reason, merged_at) VALUES (?, ?, ?, ?)",
            (winner, loser, reason, now),
        )
        log.info("profiles_merged", winner=winner, loser=loser, reason=reason)


_CUSTOMER_COLUMNS = "id, traits, timezone, locale, address, preferred_channels, created_at, updated_at, merged_into"
_MAX_MERGE_HOPS = 64


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
        for chunk in _chunks(missing, 500):
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
    consents: dict[str, list[Consent]] = {}
    for chunk in _chunks(found, 500):
        marks = ",".join("?" * len(chunk))
        identity_rows = tx.query(
            f"SELECT customer_id, kind, value, created_at FROM identities WHERE customer_id IN ({marks}) "
            "ORDER BY customer_id, created_at, kind", chunk,
        )
        for cid, identity in decode_rows(tx, "identities", identity_rows, _identity, key=lambda r: (r[1], r[2])):
            identities.setdefault(cid, []).append(identity)
        consent_sql = (f"SELECT id, customer_id, channel, purpose, granted, source, recorded_at, evidence "
                       f"FROM consents WHERE customer_id IN ({marks}) ORDER BY id")
        consent_rows = tx.query(consent_sql, chunk)
        decoded = decode_rows(tx, "consents", consent_rows, _consent)
        if len(decoded) != len(consent_rows):  # read again: the revocations left in their place count
            decoded = decode_rows(tx, "consents", tx.query(consent_sql, chunk), _consent)
        for cid, consent in decoded:
            consents.setdefault(cid, []).append(consent)
    profiles = {
        cid: Customer(
            id=cid, identities=tuple(identities.get(cid, ())), traits=row[1], timezone=row[2],
            locale=row[3], address=row[4], preferred_channels=row[5],
            consents=tuple(consents.get(cid, ())), created_at=row[6], updated_at=row[7],
        )
        for cid in found
        for row in (rows[cid],)
    }
    return {cid: profiles.get(survivor[cid]) for cid in wanted}


def _check_customer_id(customer_id: object) -> None:
    if not isinstance(customer_id, str) or not customer_id.strip():
        raise ValidationError("customer id must be a non-empty string", field="customer_id", value=customer_id)
    if len(customer_id) > 256:
        raise ValidationError("customer id longer than 256 characters", field="customer_id", value=customer_id[:32])


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _profile_row(row: Sequence[Any]) -> tuple[Any, ...]:
    """A `customers` row with every column decoded and checked (`_CUSTOMER_COLUMNS` order)."""
    cid, traits, zone, locale, address, preferred, created, updated, merged_into = row
    return (text(cid), json_object(traits), timezone(zone), optional_text(locale), optional_object(address),
            tuple(json_array(preferred)), to_datetime(timestamp(created)), to_datetime(timestamp(updated)),
            optional_text(merged_into))


def _identity(row: Sequence[Any]) -> tuple[str, Identity]:
    cid, kind, value, created_at = row
    timestamp(created_at)
    return cid, Identity(text(kind), text(value))


def _consent(row: Sequence[Any]) -> tuple[str, Consent]:
    _, cid, channel, purpose, granted, source, at, evidence = row
    return cid, Consent(channel=text(channel), purpose=text(purpose), granted=bool(integer(granted)),
                        source=text(source), recorded_at=to_datetime(timestamp(at)),
                        evidence=None if evidence is None else text(evidence))
