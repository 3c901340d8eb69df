"""The right to erasure: `omni.forget(who)` walks every table the privacy registry names, in batches.

A request is recorded first (with what it needs to resume), then each batch of one table is
deleted or anonymised in its own transaction together with the request's progress, so a crash
between batches loses nothing and the next pass (`advance`, or the worker) finishes it. Deliveries a
worker is sending and runs a worker holds are waited for, so the dispatcher records their outcome
under its own rules first. Plugins are told (`forget_requested`) once the data is gone; a plugin
that fails is recorded and retried by the worker, and only when every plugin has succeeded is
what identified the customer cleared from the request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

from .._clock import Clock
from .._errors import NotFoundError, ValidationError
from .._identity import IdentityResolver, Who
from .._logging import get_logger
from .._plugins import PluginHost
from ..policies._addresses import format_postal_address
from ..store import SQLStore, Transaction, dumps, loads
from ..store._customers import customer_links, follow_merges
from ..store._decisions import LogEntry, append_decisions
from ..store._forget import (
    ForgetRequest,
    cancel_customer_work,
    customer_family,
    customer_identifiers,
    customer_profiles,
    delete_rows,
    due_requests,
    in_flight,
    insert_request,
    insert_suppressions,
    linked_rows,
    load_request,
    next_request_due,
    save_request,
    sent_references,
    table_exists,
    update_rows,
)
from ..store._identities import identity_owners
from ..store._privacy import REGISTRY, ColumnRule
from ._settings import PrivacySettings
from ._suppression import Scrubber, digest

__all__ = ["ForgetNotice", "Forgetter", "find_customer", "postal_digest_value"]

log = get_logger("omnisdk.privacy")

#: Tables an erasure waits on while a worker holds one of the customer's rows.
_WAITS_FOR_WORKERS: Final = frozenset({"deliveries", "journey_runs", "delivery_decisions"})
_CANCEL: Final[Mapping[str, tuple[str, ...]]] = {"deliveries": ("queued", "deferred"),
                                                  "journey_runs": ("running", "waiting")}
_WHY: Final = "erased at the customer's request"


@attrs.frozen(kw_only=True)
class ForgetNotice:
    """What a `forget_requested` hook receives: enough to ask a provider to erase its copy (its
    audiences, its contact lists), and nothing omnisdk still holds afterwards."""

    request_id: str
    customer_id: str
    #: (kind, normalised value) of every identifier the customer had.
    identifiers: tuple[tuple[str, str], ...]
    #: Provider message ids of the customer's deliveries, by provider name.
    provider_message_ids: Mapping[str, tuple[str, ...]]
    requested_by: str
    reason: str


def find_customer(tx: Transaction, identity: IdentityResolver, who: Who) -> str:
    """The existing profile `who` names (never creates one): an erasure or export of someone unknown
    is the caller's error."""
    explicit, pairs = identity.who(who)
    found: set[str] = set()
    if explicit is not None:
        links = customer_links(tx, [explicit])
        if explicit in links:
            target = links[explicit]
            found.add(follow_merges(tx, target) if target else explicit)
    if not found:
        for owner in identity_owners(tx, pairs):
            found.add(follow_merges(tx, owner.customer_id))
    if not found:
        raise NotFoundError("no customer matches who")
    if len(found) > 1:
        raise ValidationError(f"these identifiers belong to {len(found)} profiles; name one customer id", field="who")
    return found.pop()


def postal_digest_value(address: Mapping[str, Any] | None) -> str | None:
    """A postal address as one normalised line (what its suppression hash is of)."""
    line = format_postal_address(address) if address else None
    return " ".join(line.lower().split()) if line else None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


class Forgetter:
    """Records erasure requests and carries them out, batch by batch (also a worker: `tick`)."""

    def __init__(self, store: SQLStore, clock: Clock, identity: IdentityResolver, plugins: PluginHost,
                 settings: PrivacySettings, key: bytes) -> None:
        self.store, self.clock, self.identity, self.plugins = store, clock, identity, plugins
        self.settings, self.key = settings, key

    # -- the request
    def forget(self, who: Who, *, requested_by: str, reason: str = "") -> ForgetRequest:
        if not isinstance(requested_by, str) or not requested_by.strip() or len(requested_by) > 200:
            raise ValidationError("expected who asked (a name of at most 200 characters)", field="requested_by")
        if not isinstance(reason, str) or len(reason) > 1000:
            raise ValidationError("expected a reason of at most 1000 characters", field="reason")
        now = self.clock.timestamp()
        request_id = "fr_" + uuid.uuid4().hex[:20]
        with self.store.transaction() as tx:
            customer_id = find_customer(tx, self.identity, who)
            subject = self._subject(tx, customer_id, request_id)
            insert_suppressions(tx, [(digest(self.key, kind, value), kind, request_id, now)
                                     for kind, value in subject["identifiers"]])
            insert_request(tx, request_id, requested_by=requested_by.strip(), reason=reason, subject=subject, now=now)
            cancel_customer_work(tx, subject["ids"], reason=_WHY, now=now)
        log.info("forget_requested", request_id=request_id, requested_by=requested_by.strip())
        return self.advance(request_id)

    def _subject(self, tx: Transaction, customer_id: str, request_id: str) -> dict[str, Any]:
        """What the erasure needs until it is done: the ids, the identifiers (hashed into suppressions
        and handed to plugins), and every value to scrub from free text."""
        ids = customer_family(tx, customer_id)
        identifiers = customer_identifiers(tx, ids)
        profile_values: list[str] = []
        for traits, address in customer_profiles(tx, ids):
            profile_values += _strings(traits) + _strings(address)
            postal = postal_digest_value(address)
            if postal and ("postal_address", postal) not in identifiers:
                identifiers.append(("postal_address", postal))
        sent: dict[str, list[str]] = {}
        addresses: list[str] = []
        for provider, message_id, address in sent_references(tx, ids):
            if message_id is not None:
                sent.setdefault(provider, []).append(message_id)
            if address is not None:
                addresses.append(address)
        strong = sorted({*ids, *(v for _, v in identifiers), *addresses,
                         *(m for found in sent.values() for m in found)})
        return {"customer_id": customer_id, "ids": ids, "tombstone": f"forgotten:{request_id}",
                "identifiers": identifiers, "provider_message_ids": sent, "strong": strong,
                "values": sorted(set(profile_values) | set(strong))}

    # -- carrying it out
    def advance(self, request_id: str) -> ForgetRequest:
        """Go on with a request until it is done, or waits (a delivery in flight, a plugin to retry)."""
        while True:
            with self.store.transaction() as tx:
                request = load_request(tx, request_id)
                if request is None:
                    raise NotFoundError(f"no erasure request {request_id!r}")
                if request.status != "erasing":
                    break
                request, more = self._batch(tx, request)
                save_request(tx, request)
            if not more:
                return request
        if request.status == "notifying":
            request = self._notify(request)
        return request

    def _batch(self, tx: Transaction, request: ForgetRequest) -> tuple[ForgetRequest, bool]:
        """One batch of the next table not done: (the request as it is now, whether to go on)."""
        subject = request.subject or {}
        now = self.clock.timestamp()
        done: list[str] = list(request.progress.get("done", []))
        table = next((t for t, rule in REGISTRY.items() if rule.forget != "none" and t not in done), None)
        if table is None:
            return attrs.evolve(request, status="notifying", updated_at=now), True
        if not table_exists(tx, table):
            return attrs.evolve(request, progress={**request.progress, "done": [*done, table]}, updated_at=now), True
        ids = [*subject["ids"], subject["tombstone"]]
        if table in _WAITS_FOR_WORKERS and in_flight(tx, subject["ids"], now):
            return attrs.evolve(request, due_at=now + self.settings.retry_seconds, updated_at=now), False
        after = request.progress.get(table)
        if table == "deliveries" and after is None:  # anything queued since the request (by a run then in flight)
            cancel_customer_work(tx, subject["ids"], reason=_WHY, now=now)
        rows = linked_rows(tx, table, ids, after, self.settings.batch_size)
        if not rows:
            progress = {k: v for k, v in request.progress.items() if k != table}
            return attrs.evolve(request, progress={**progress, "done": [*done, table]}, updated_at=now), True
        changed = self._apply(tx, table, rows, subject, now)
        key = REGISTRY[table].key
        removed = {**request.removed, table: request.removed.get(table, 0) + changed}
        progress = {**request.progress, table: [rows[-1][k] for k in key]}
        return attrs.evolve(request, progress=progress, removed=removed, updated_at=now), True

    def _apply(self, tx: Transaction, table: str, rows: Sequence[dict[str, Any]], subject: Mapping[str, Any],
               now: float) -> int:
        rule = REGISTRY[table]
        keys = [[row[k] for k in rule.key] for row in rows]
        if rule.forget == "delete":
            return delete_rows(tx, table, keys)
        if rule.forget == "scan":
            strong = Scrubber(subject["strong"])
            mentions = [key for key, row in zip(keys, rows, strict=True)
                        if any(strong.mentions(str(row[c])) for c, r in rule.columns.items()
                               if r.kind == "personal" and row[c] is not None)]
            return delete_rows(tx, table, mentions)
        scrub = Scrubber(subject["values"])
        changes = []
        cancelled = []
        for key, row in zip(keys, rows, strict=True):
            values: dict[str, Any] = {}
            for column, column_rule in rule.columns.items():
                new = self._column(table, column_rule, row[column], subject, scrub)
                if new is not _SAME and new != row[column]:
                    values[column] = new
            if values.get("status") == "cancelled":
                cancelled.append(str(row["id"]))
                values["updated_at"] = now
                if table == "journey_runs":
                    values.update(ended_at=now, due_at=None, reason=_WHY)
                else:
                    values["error"] = _WHY
            changes.append((key, values))
        if cancelled and table == "deliveries":
            append_decisions(tx, [LogEntry(delivery_id=did, at=now, outcome="cancelled", channel=None, reason=_WHY,
                                           actor="app") for did in cancelled])
        update_rows(tx, table, changes)
        return sum(1 for _, values in changes if values)

    def _column(self, table: str, rule: ColumnRule, value: Any, subject: Mapping[str, Any], scrub: Scrubber) -> Any:
        action = rule.action
        if action == "keep":
            return _SAME
        if action == "tombstone":
            return subject["tombstone"]
        if action == "null":
            return None
        if action in ("empty", "empty_list", "memo"):
            wanted: Any = {"empty": {}, "empty_list": [], "memo": {"v": None}}[action]
            return _SAME if loads(value) == wanted else dumps(wanted)
        if action == "hash":
            if value is None or str(value).startswith("fgt_"):
                return _SAME
            return "fgt_" + digest(self.key, "row", str(value))[:32]
        if action == "scrub":
            return value if value is None else scrub(str(value))
        if action == "properties":
            props = loads(value) or {}
            kept = {k: (scrub(v) if isinstance(v, str) else v) for k, v in props.items()
                    if k in self.settings.keep_properties and isinstance(v, str | int | float | bool)}
            return _SAME if kept == props else dumps(kept)
        if action == "cancel":
            return "cancelled" if value in _CANCEL.get(table, ()) else _SAME
        raise AssertionError(f"unknown erasure action {action!r}")

    # -- plugins, then closing the request
    def _notify(self, request: ForgetRequest) -> ForgetRequest:
        subject = request.subject or {}
        notified = set(request.progress.get("notified", []))
        notice = ForgetNotice(
            request_id=request.id, customer_id=subject.get("customer_id", ""),
            identifiers=tuple((k, v) for k, v in subject.get("identifiers", [])),
            provider_message_ids={p: tuple(ids) for p, ids in subject.get("provider_message_ids", {}).items()},
            requested_by=request.requested_by, reason=request.reason)
        scrub = Scrubber(subject.get("values", []))
        errors: dict[str, str] = {}
        for plugin, caller in self.plugins.callers("forget_requested"):
            if plugin in notified:
                continue
            try:
                caller(request=notice, **self.plugins.context)
            except Exception as exc:  # a plugin's failure is recorded and retried, never the end of the request
                errors[plugin] = scrub(f"{type(exc).__name__}: {exc}")[:500]
                log.warning("forget_plugin_failed", request_id=request.id, plugin=plugin, error=errors[plugin])
            else:
                notified.add(plugin)
        now = self.clock.timestamp()
        progress = {**request.progress, "notified": sorted(notified)}
        if errors:
            request = attrs.evolve(request, progress=progress, plugin_errors=errors,
                                   plugin_attempts=request.plugin_attempts + 1,
                                   due_at=now + self.settings.retry_seconds * 2 ** min(request.plugin_attempts, 6),
                                   updated_at=now)
        else:
            request = attrs.evolve(request, status="done", subject=None, plugin_errors={}, due_at=None,
                                   progress={"done": progress.get("done", []), "notified": sorted(notified)},
                                   updated_at=now, finished_at=now)
        with self.store.transaction() as tx:
            save_request(tx, request)
        if request.status == "done":
            log.info("forget_done", request_id=request.id, removed=json.dumps(request.removed, sort_keys=True))
            if self.settings.vacuum:
                self.store.reclaim()
        return request

    # -- the worker side: requests left waiting, or cut off by a crash
    async def tick(self) -> int:
        now = self.clock.timestamp()
        with self.store.transaction(immediate=False) as tx:
            due = due_requests(tx, now)
        for request_id in due:
            with self.store.transaction() as tx:  # the next pass is due later, whatever this one does
                request = load_request(tx, request_id)
                if request is not None:
                    save_request(tx, attrs.evolve(request, due_at=now + self.settings.retry_seconds))
            self.advance(request_id)
        return len(due)

    def next_due(self) -> float | None:
        with self.store.transaction(immediate=False) as tx:
            return next_request_due(tx)


_SAME: Final[Any] = object()
