"""Deliveries whose send outcome is unknown ("in doubt"), settled before anything else happens to them.

A delivery is in doubt when its call may have reached the provider and no answer says what became
of it: a dropped connection after the request was written, a read timeout, a plugin that raised
mid-call, a worker that crashed or was cancelled while the row was `sending`. It stays `sending`,
its lease expired (at once for what this worker saw, after `lease_seconds` for a crash), and the
next tick settles it here:

* a provider with `Capabilities.reconcile` is asked first (`Provider.reconcile`): `Accepted` → `sent`
  with the provider's id; `NotSent` → queued again (the only way such a row is resent); `StillUnknown`
  → asked again later, at most `reconcile_max_lookups` times and until `reconcile_max_age` seconds
  after the attempt, then `failed` with the reason;
* any other provider keeps its declared crash policy: resent when it dedupes on the idempotency key
  or declares `at_least_once`, otherwise `failed` (never a duplicate).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from .._content import SMS, Content, Email, Letter, PosOffer, Postcard, Push, Social
from .._identity import load_customers
from .._logging import get_logger
from .._touchpoints import Events
from ..providers import Accepted, Capabilities, InDoubt, NotSent, Outgoing, Reconciliation, StillUnknown
from ..store import Transaction, dumps, loads
from ._limits import retry_delay
from ._providers import ConfiguredProvider

if TYPE_CHECKING:
    from ._dispatcher import Dispatcher

__all__ = ["IN_DOUBT", "Reconciler", "content_from_json", "content_json", "resend_safe", "sent_touchpoint"]

log = get_logger("omnisdk.delivery")

#: In-doubt rows taken per tick, and deliveries per `Provider.reconcile` call.
_TAKE = 1000
_LOOKUP_BATCH = 100
_CONTENT_TYPES: dict[str, type[Content]] = {
    cls.__name__: cls for cls in (Email, SMS, Push, Social, Postcard, Letter, PosOffer)
}
_COLUMNS = (
    "id, customer_id, template, channel, channels, failed_channels, provider, purpose, decisions, journey, step, "
    "run_id, idempotency_key, address, COALESCE(attempted_at, updated_at), sent_content, lookups, fallback_after"
)


def resend_safe(caps: Capabilities) -> bool:
    """May a message whose call may have reached the provider be sent again without asking? (the crash policy)"""
    return caps.idempotency_keys or caps.crash_policy == "at_least_once"


def content_json(content: Content) -> str:
    """The content as sent, for a later lookup (`content_from_json` reads it back)."""
    return dumps({"type": type(content).__name__, "fields": attrs.asdict(content, recurse=False)})


def content_from_json(value: Any) -> Content | None:
    """The content `content_json` wrote; None when it is missing or of a type this version does not know."""
    data = loads(value)
    if not isinstance(data, Mapping):
        return None
    cls = _CONTENT_TYPES.get(str(data.get("type")))
    fields = data.get("fields")
    if cls is None or not isinstance(fields, Mapping):
        return None
    try:  # JSON has lists where the renditions keep tuples (media_urls, categories, quick_replies)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    except TypeError:
        return None


def sent_touchpoint(
    *, delivery_id: str, customer_id: str, channel: str, template: str, journey: str | None, step: str | None,
    provider: str, provider_message_id: str, at: float,
) -> tuple[Any, ...]:
    """The "Message Sent" touchpoint row of a delivery the provider took (its id makes it once only)."""
    properties = {"delivery_id": delivery_id, "template": template, "journey": journey, "step": step,
                  "provider": provider, "provider_message_id": provider_message_id}
    return (f"sent_{delivery_id}", customer_id, channel, Events.MESSAGE_SENT, dumps(properties), at, at)


def _entry(now: float, action: str, channel: str | None, reason: str) -> dict[str, Any]:
    return {"at": now, "action": action, "channel": channel, "reason": reason}


@attrs.define(eq=False)
class _Doubt:
    """An in-doubt row, as taken for a lookup."""

    id: str
    customer_id: str
    template: str
    channel: str
    channels: list[str]
    failed_channels: list[str]
    provider: ConfiguredProvider
    decisions: list[dict[str, Any]]
    journey: str | None
    step: str | None
    run_id: str | None
    attempted_at: float
    lookups: int
    fallback_after: float | None
    item: InDoubt | None = None


class Reconciler:
    """Step 1 of a tick: settle the rows left in doubt (by this worker, or by one that died)."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.core = dispatcher.core
        self.settings = dispatcher.settings

    async def run(self, now: float) -> int:
        """Settle what is in doubt now; how many rows were settled or looked up."""
        doubts, settled = self._take(now)
        if doubts:
            answers = await self._lookups(doubts)
            self._record(doubts, answers)
        ids = settled + [d.id for d in doubts]
        if ids:
            log.warning("deliveries_reconciled", count=len(ids), looked_up=len(doubts))
            self.dispatcher._updated(ids)
        return len(ids)

    def _take(self, now: float) -> tuple[list[_Doubt], list[str]]:
        """Rows `sending` past their lease: those a provider can be asked about (leased to this worker
        for the lookup) and those settled at once by their provider's crash policy."""
        doubts: list[_Doubt] = []
        settled: list[str] = []
        owner = self.dispatcher.owner
        with self.core.store.transaction() as tx:
            rows = tx.query(
                f"SELECT {_COLUMNS} FROM deliveries WHERE status = 'sending' AND lease_until <= ? LIMIT {_TAKE}"
                + tx.dialect.skip_locked,
                (now,),
            )
            customers = load_customers(tx, {r[1] for r in rows if r[15] is not None})
            for (did, cid, template, channel, channels, failed, provider_name, purpose, decisions, journey, step,
                 run_id, key, address, attempted_at, sent_content, lookups, fallback_after) in rows:
                configured = self.dispatcher.pool.find(channel, provider_name)
                entries = loads(decisions) or []
                content = content_from_json(sent_content)
                customer = customers.get(cid)
                if (configured is None or not configured.capabilities.reconcile or content is None
                        or customer is None or address is None):
                    self._by_policy(tx, did, channel, configured, entries, now)
                    settled.append(did)
                    continue
                outgoing = Outgoing(
                    delivery_id=did, idempotency_key=f"{key}:{channel}", customer_id=customer.id, to=address,
                    content=content, purpose=purpose, customer=customer,
                    address=customer.address if channel == "direct_mail" else None,
                    metadata={"delivery_id": did, "template": template, "journey": journey, "step": step,
                              "run_id": run_id},
                    from_profile=True,
                )
                attempted = float(attempted_at)
                item = InDoubt(outgoing=outgoing, attempted_at=datetime.fromtimestamp(attempted, UTC),
                               lookups=int(lookups or 0))
                doubts.append(_Doubt(
                    id=did, customer_id=cid, template=template, channel=channel, channels=loads(channels) or [],
                    failed_channels=loads(failed) or [], provider=configured, decisions=entries, journey=journey,
                    step=step, run_id=run_id, attempted_at=attempted, lookups=int(lookups or 0),
                    fallback_after=fallback_after, item=item,
                ))
            tx.executemany(  # leased for the lookup: no other worker asks about them meanwhile
                "UPDATE deliveries SET lease_owner = ?, lease_until = ? WHERE id = ?",
                [(owner, now + self.settings.lease_seconds, d.id) for d in doubts],
            )
        return doubts, settled

    def _by_policy(
        self, tx: Transaction, did: str, channel: str | None, configured: ConfiguredProvider | None,
        entries: list[dict[str, Any]], now: float,
    ) -> None:
        """No lookup possible: resend where that cannot duplicate or the policy says so, else fail."""
        caps = configured.capabilities if configured else None
        if caps is not None and resend_safe(caps):
            why = "provider dedupes on the idempotency key" if caps.idempotency_keys else "at_least_once"
            entries.append(_entry(now, "reconcile", channel, f"interrupted mid-send; sent again ({why})"))
            tx.execute(
                "UPDATE deliveries SET status = 'queued', due_at = ?, lease_owner = NULL, lease_until = NULL, "
                "decisions = ?, updated_at = ? WHERE id = ?",
                (now, dumps(entries), now, did),
            )
            return
        reason = "interrupted mid-send; outcome unknown, not sent again (at_most_once)"
        entries.append(_entry(now, "reconcile", channel, reason))
        tx.execute(
            "UPDATE deliveries SET status = 'failed', error = ?, lease_owner = NULL, lease_until = NULL, "
            "decisions = ?, updated_at = ? WHERE id = ?",
            (reason, dumps(entries), now, did),
        )

    async def _lookups(self, doubts: list[_Doubt]) -> dict[str, Reconciliation]:
        """Every provider asked about its rows, `_LOOKUP_BATCH` at a time, providers side by side."""
        groups: dict[str, list[_Doubt]] = defaultdict(list)
        for doubt in doubts:
            groups[doubt.provider.key].append(doubt)
        answers: dict[str, Reconciliation] = {}

        async def ask(items: list[_Doubt]) -> None:
            for start in range(0, len(items), _LOOKUP_BATCH):
                chunk = items[start : start + _LOOKUP_BATCH]
                answers.update(zip([d.id for d in chunk], await self._ask(chunk[0].provider, chunk), strict=True))

        await asyncio.gather(*(ask(items) for items in groups.values()))
        return answers

    async def _ask(self, configured: ConfiguredProvider, chunk: list[_Doubt]) -> list[Reconciliation]:
        """One `Provider.reconcile` call; whatever goes wrong in it leaves the whole chunk `StillUnknown`."""
        try:
            provider = self.dispatcher.pool.instance(configured)
            answers = list(await provider.reconcile([d.item for d in chunk if d.item is not None]))
        except Exception as exc:
            log.warning("provider_reconcile_raised", provider=configured.key, error=exc)
            return [StillUnknown(reason=f"lookup raised {type(exc).__name__}")] * len(chunk)
        if len(answers) != len(chunk) or not all(isinstance(a, Accepted | NotSent | StillUnknown) for a in answers):
            reason = f"lookup gave {len(answers)} answers for {len(chunk)} deliveries"
            log.error("provider_bad_reconciliations", provider=configured.key, reason=reason)
            return [StillUnknown(reason=reason)] * len(chunk)
        return answers

    def _record(self, doubts: list[_Doubt], answers: Mapping[str, Reconciliation]) -> None:
        now = self.core.clock.timestamp()
        held = "AND status = 'sending' AND lease_owner = ?"
        owner = self.dispatcher.owner
        sent: list[tuple[Any, ...]] = []
        touchpoints: list[tuple[Any, ...]] = []
        with self.core.store.transaction() as tx:
            for doubt in doubts:
                answer = answers[doubt.id]
                name = doubt.provider.name
                if isinstance(answer, Accepted):
                    doubt.decisions.append(_entry(now, "sent", doubt.channel,
                                                  f"looked up at {name}: it took the message"))
                    segments = answer.details.get("segments")
                    fallback_due = None
                    if doubt.fallback_after and _rest(doubt):
                        fallback_due = doubt.attempted_at + doubt.fallback_after
                    sent.append((answer.provider_message_id, answer.cost,
                                 int(segments) if isinstance(segments, int) else None, doubt.attempted_at,
                                 fallback_due, dumps(doubt.decisions), now, doubt.id, owner))
                    touchpoints.append(sent_touchpoint(
                        delivery_id=doubt.id, customer_id=doubt.customer_id, channel=doubt.channel,
                        template=doubt.template, journey=doubt.journey, step=doubt.step, provider=name,
                        provider_message_id=answer.provider_message_id, at=now,
                    ))
                elif isinstance(answer, NotSent):
                    doubt.decisions.append(_entry(now, "reconcile", doubt.channel,
                                                  f"looked up at {name}: not sent ({answer.reason}); sending again"))
                    tx.execute(
                        "UPDATE deliveries SET status = 'queued', due_at = ?, lookups = 0, lease_owner = NULL, "
                        f"lease_until = NULL, decisions = ?, updated_at = ? WHERE id = ? {held}",
                        (now, dumps(doubt.decisions), now, doubt.id, owner),
                    )
                else:
                    self._still_unknown(tx, doubt, answer, now)
            tx.executemany(
                "UPDATE deliveries SET status = 'sent', provider_message_id = ?, cost = ?, segments = ?, error = NULL, "
                "sent_at = ?, fallback_due = ?, lease_owner = NULL, lease_until = NULL, decisions = ?, updated_at = ? "
                f"WHERE id = ? {held}",
                sent,
            )
            tx.executemany(
                "INSERT INTO touchpoints (id, customer_id, channel, name, properties, occurred_at, recorded_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                touchpoints,
            )

    def _still_unknown(self, tx: Transaction, doubt: _Doubt, answer: StillUnknown, now: float) -> None:
        """Ask again later, within the bounds; past them the delivery ends `failed` with the reason."""
        lookups = doubt.lookups + 1
        age = now - doubt.attempted_at
        held = "AND status = 'sending' AND lease_owner = ?"
        if lookups >= self.settings.reconcile_max_lookups or age >= self.settings.reconcile_max_age:
            reason = (f"outcome unknown after {lookups} lookups over {age:.0f}s, not sent again: "
                      f"{answer.reason}")
            doubt.decisions.append(_entry(now, "failed", doubt.channel, reason))
            tx.execute(
                "UPDATE deliveries SET status = 'failed', error = ?, lookups = ?, lease_owner = NULL, "
                f"lease_until = NULL, decisions = ?, updated_at = ? WHERE id = ? {held}",
                (reason, lookups, dumps(doubt.decisions), now, doubt.id, self.dispatcher.owner),
            )
            return
        delay = min(retry_delay(lookups, answer.retry_after), max(1.0, self.settings.reconcile_max_age - age))
        doubt.decisions.append(_entry(now, "reconcile", doubt.channel,
                                      f"still unknown ({answer.reason}); asking again in {delay:.0f}s"))
        tx.execute(
            "UPDATE deliveries SET lookups = ?, lease_owner = NULL, lease_until = ?, error = ?, decisions = ?, "
            f"updated_at = ? WHERE id = ? {held}",
            (lookups, now + delay, answer.reason, dumps(doubt.decisions), now, doubt.id, self.dispatcher.owner),
        )


def _rest(doubt: _Doubt) -> bool:
    """Whether the waterfall has a channel after this one left (for its timed fallback)."""
    order = doubt.channels
    rest = order[order.index(doubt.channel) + 1 :] if doubt.channel in order else []
    return any(c not in doubt.failed_channels for c in rest)


#: A `sending` row this worker can no longer vouch for (an ambiguous failure, a cancelled call): in doubt,
#: its lease over, so the next tick settles it. Parameters: error, decisions, now, now, id, owner.
IN_DOUBT = (
    "UPDATE deliveries SET error = ?, decisions = ?, lease_owner = NULL, lease_until = ?, updated_at = ? "
    "WHERE id = ? AND status = 'sending' AND lease_owner = ?"
)
