"""The right of access and portability: everything held about one customer, as one JSON document.

The document's shape (`FORMAT`, version 1, documented in docs/privacy.md): the profile as
`omni.customer` gives it, then `tables`, one list of rows per table the privacy registry links to
customers (every stored column, JSON columns decoded, times in epoch seconds), the quarantined rows
that mention them (`quarantine`), and whether the
customer's identifiers are suppressed. Tables are found through the registry, so a table added to
it is exported without a change here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import attrs

from .._clock import Clock
from .._customers import Customer
from .._identity import IdentityResolver, Who, load_customer
from ..store import SQLStore
from ..store._forget import customer_family, decoded_rows, suppressions_of, table_exists
from ..store._privacy import REGISTRY
from ._forget import find_customer, postal_digest_value
from ._suppression import Scrubber, digest

__all__ = ["FORMAT", "VERSION", "export_customer"]

FORMAT: Final = "omnisdk.export"
VERSION: Final = 1


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _profile(customer: Customer) -> dict[str, Any]:
    return _jsonable(attrs.asdict(customer, recurse=True))  # type: ignore[no-any-return]


def export_customer(store: SQLStore, clock: Clock, identity: IdentityResolver, key: bytes, who: Who) -> dict[str, Any]:
    with store.transaction(immediate=False) as tx:
        customer_id = find_customer(tx, identity, who)
        ids = customer_family(tx, customer_id)
        profile = _profile(load_customer(tx, customer_id))
        tables = {table: decoded_rows(tx, table, ids) for table, rule in REGISTRY.items()
                  if rule.link is not None and table_exists(tx, table)}
        pairs = [(str(r["kind"]), str(r["value"])) for r in tables.get("identities", [])]
        mentions = Scrubber([*ids, *(value for _, value in pairs)])
        tables["quarantine"] = [row for row in decoded_rows(tx, "quarantine", ids)
                                if mentions.mentions(f"{row['row_key']} {row['row_values']}")]
        postal = postal_digest_value(profile.get("address"))
        if postal:
            pairs.append(("postal_address", postal))
        suppressed = suppressions_of(tx, [digest(key, kind, value) for kind, value in pairs])
    return {
        "format": FORMAT,
        "version": VERSION,
        "customer_id": customer_id,
        "exported_at": datetime.fromtimestamp(clock.timestamp(), UTC).isoformat(),
        "profile": profile,
        "merged_ids": [i for i in ids if i != customer_id],
        "tables": _jsonable(tables),
        "suppression": {"suppressed": bool(suppressed), "kinds": sorted({s.kind for s in suppressed})},
    }
