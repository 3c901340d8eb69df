"""Identity resolution: every identifier a customer shows, on any channel, leads to one profile.

Rules follow Segment Unify's: junk values are ignored, each identifier kind has a limit per
profile, and a merge that would break a limit (two different app user ids, say) is refused.
The profile that carries an app user id wins a merge; otherwise the one matched by the
highest-priority identifier, then the oldest. "Who is this?" (a customer id, or a dict of
identifiers) is answered here too, so every room that ingests events asks the same service.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import attrs

from ._customers import IDENTITY_KINDS
from ._errors import NotFoundError, ValidationError
from ._identifiers import CORE_KINDS, IdentityKinds
from ._logging import get_logger
from ._validation import Limits, Validator
from .store import Transaction
from .store._customers import (
    MergeableProfile,
    created_at,
    customer_links,
    follow_merges,
    insert_customer,
    insert_customers,
    insert_merge,
    load_customer,
    load_customers,
    mark_merged,
    mergeable_profile,
    move_customer_rows,
    write_merged_profile,
)
from .store._experiments import move_exposures
from .store._identities import (
    counts_by_kind,
    counts_of_pair,
    has_kind,
    identity_owners,
    insert_identities,
    insert_user_ids,
    move_identities,
)
from .store._predictions import merge_predictions

__all__ = [
    "CUSTOMER_TABLES",
    "IdentityResolver",
    "IdentityRules",
    "Who",
    "load_customer",
    "load_customers",
    "register_customer_table",
]

log = get_logger("omnisdk.identity")

#: A customer id, or a dict of identifiers (`customer_id`/`user_id` may be one of them).
Who = str | Mapping[str, Any]

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

    @classmethod
    def from_config(cls, identity: Mapping[str, Any], kinds: IdentityKinds) -> IdentityRules:
        """The `[identity]` section's rules; kinds plugins declared rank and limit as they said,
        unless the configuration says otherwise."""
        given = {k: v for k, v in identity.items() if k in ("priority", "limits", "default_limit")}
        given.setdefault("priority", kinds.names)
        given["limits"] = {**{k: 1 for k in kinds.unique()}, **dict(given.get("limits", DEFAULT_LIMITS))}
        return cls(**given)


def _new_customer_id() -> str:
    return "cus_" + uuid.uuid4().hex[:20]


class IdentityResolver:
    """The identity service: which profile a customer id or a set of identifiers names."""

    def __init__(
        self, rules: IdentityRules | None = None, *, region: str | None = None, kinds: IdentityKinds | None = None,
        validator: Validator | None = None,
    ) -> None:
        self.rules = rules or IdentityRules()
        self.region = region
        self.kinds = kinds or CORE_KINDS
        self.validate = validator or Validator(Limits())

    def normalize(self, identifiers: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Canonical (kind, value) pairs; junk values dropped; lists allowed (several push tokens)."""
        pairs: list[tuple[str, str]] = []
        for kind, raw in identifiers.items():
            values = raw if isinstance(raw, list | tuple | set) else [raw]
            for value in values:
                norm = self.kinds.normalize(kind, value, region=self.region)
                if norm is not None and (kind, norm) not in pairs:
                    pairs.append((kind, norm))
        return pairs

    # -- who is this?
    def split_who(self, who: Who, field: str = "who") -> tuple[str | None, dict[str, Any]]:
        """The explicit customer id of `who` (if any) and its other identifiers, raw."""
        if isinstance(who, str):
            return self.validate.customer_id(who, field), {}
        if isinstance(who, Mapping):
            ids = dict(who)
            explicit = ids.pop("customer_id", None) or ids.pop("user_id", None)
            if explicit is not None:
                self.validate.customer_id(explicit, f"{field}.customer_id")
            if not ids and explicit is None:
                raise ValidationError("no identifiers given", field=field)
            return explicit, ids
        raise ValidationError("expected a customer id or a dict of identifiers", field=field, value=type(who).__name__)

    def who(self, who: Who, field: str = "who") -> tuple[str | None, list[tuple[str, str]]]:
        """The explicit customer id and the normalised identifiers of `who`, checked before any store work."""
        explicit, ids = self.split_who(who, field)
        pairs = self.identifiers(ids, field)
        if explicit is None and not pairs:
            raise ValidationError("no usable identifier (all were empty or junk values)", field=field)
        return explicit, pairs

    def identifiers(self, ids: Mapping[str, Any], field: str = "") -> list[tuple[str, str]]:
        """Raw identifiers checked and normalised; errors name the field under `field`."""
        self.validate.identifiers(ids, field)
        try:
            return self.normalize(ids)
        except ValidationError as exc:
            if not field:
                raise
            raise type(exc)(str(exc).split(": ", 1)[-1], field=f"{field}.{exc.field}", value=exc.value) from None

    def resolve_who(self, tx: Transaction, who: Who, now: float, field: str = "who") -> str:
        """The profile `who` names, created or merged as the rules allow."""
        explicit, pairs = self.who(who, field)
        return self.resolve_checked(tx, explicit, pairs, now)

    def resolve_checked(
        self, tx: Transaction, explicit: str | None, pairs: Sequence[tuple[str, str]], now: float
    ) -> str:
        """`resolve` for what `who` returned: a bare customer id takes the fast path."""
        if explicit is not None and not pairs:
            return self.resolve_ids(tx, [explicit], now)[explicit]
        return self.resolve(tx, explicit, pairs, now)

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
        owners = identity_owners(tx, identifiers)
        candidates: dict[str, int] = {}
        for owner in owners:
            rank = self.rules.rank(owner.kind)
            candidates[owner.customer_id] = min(rank, candidates.get(owner.customer_id, rank))
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
        owned = {(o.kind, o.value): o.customer_id for o in owners}
        counts = counts_by_kind(tx, winner)
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
        insert_identities(tx, fresh)
        return winner

    def resolve_ids(self, tx: Transaction, customer_ids: Iterable[str], now: float) -> dict[str, str]:
        """The batch fast path for known customer ids: create missing profiles, follow merges."""
        wanted = list(dict.fromkeys(customer_ids))
        for cid in wanted:
            _check_customer_id(cid)
        found = customer_links(tx, wanted)
        missing = [c for c in wanted if c not in found]
        if missing:
            insert_customers(tx, missing, now)
            insert_user_ids(tx, missing, now)
        result = {}
        for cid in wanted:
            target = found.get(cid)
            result[cid] = follow_merges(tx, target) if target else cid
        return result

    def _ensure_customer(self, tx: Transaction, customer_id: str, now: float) -> str:
        links = customer_links(tx, [customer_id])
        if customer_id not in links:
            return self._create(tx, customer_id, now, explicit=True)
        target = links[customer_id]
        return follow_merges(tx, target) if target else customer_id

    def _create(self, tx: Transaction, customer_id: str, now: float, *, explicit: bool) -> str:
        insert_customer(tx, customer_id, now)
        if explicit:
            insert_user_ids(tx, [customer_id], now, skip_existing=False)
        return customer_id

    def _pick_winner(self, tx: Transaction, candidates: Mapping[str, int]) -> str:
        def key(cid: str) -> tuple[bool, int, float]:
            return (not has_kind(tx, cid, "user_id"), candidates[cid], created_at(tx, cid))

        return min(candidates, key=key)

    def _can_merge(self, tx: Transaction, winner: str, loser: str) -> bool:
        return all(n <= self.rules.limit(kind) for kind, n in counts_of_pair(tx, winner, loser).items())

    def merge(self, tx: Transaction, winner: str, loser: str, *, reason: str, now: float) -> None:
        """Fold `loser` into `winner`: identities, touchpoints and every registered table follow."""
        w, lo = mergeable_profile(tx, winner, now), mergeable_profile(tx, loser, now)
        if w is None or lo is None:
            raise NotFoundError(f"cannot merge {loser!r} into {winner!r}: profile missing")
        write_merged_profile(tx, winner, MergeableProfile(
            {**lo.traits, **w.traits}, w.timezone or lo.timezone, w.locale or lo.locale, w.address or lo.address,
            w.preferred_channels or lo.preferred_channels), now)
        move_identities(tx, winner, loser)
        move_customer_rows(tx, CUSTOMER_TABLES, winner, loser)
        move_exposures(tx, winner, loser)  # not a plain move: one exposure per experiment and customer
        merge_predictions(tx, winner, loser)  # nor this: one prediction, rescored on both profiles' purchases
        mark_merged(tx, winner, loser, now)
        insert_merge(tx, winner, loser, reason, now)
        log.info("profiles_merged", winner=winner, loser=loser, reason=reason)


def _check_customer_id(customer_id: object) -> None:
    if not isinstance(customer_id, str) or not customer_id.strip():
        raise ValidationError("customer id must be a non-empty string", field="customer_id", value=customer_id)
    if len(customer_id) > 256:
        raise ValidationError("customer id longer than 256 characters", field="customer_id", value=customer_id[:32])
