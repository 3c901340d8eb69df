"""The last-moment re-check: the policies judge a claimed send again right before its provider call.

A claim decides, renders and leases rows; their calls may start a while later (the provider's slots
and rate limit, the batch before them). A STOP, an unsubscribe, a bounce, a goal reached, a cap
filled by another worker or the start of quiet hours stored in between must still stop the send.
So the transaction that marks rows `sending` first loads their profiles and recent activity again
(one batch of queries for the whole burst of calls starting together) and runs `decide_many` on
them: only a row still decided "send" on the same channel, to the same address, is marked; the
others are settled as the new decision says (skipped, deferred) or queued again to be decided and
rendered afresh (another channel or address now). What remains is the call itself (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from .._identity import load_customers
from ..policies import PolicyRules, RecentActivity, SendDecision, address_for, decide_many, load_recent
from ..store import Transaction, dumps

if TYPE_CHECKING:
    from ._dispatcher import _Claimed

__all__ = ["RECHECKED", "stop_revoked"]

#: How the decision log tells a send stopped by the re-check from one stopped at the claim.
RECHECKED = "re-checked before the call: "

_HELD = "AND status IN ('queued', 'deferred') AND lease_owner = ?"


def stop_revoked(
    tx: Transaction, items: Sequence[_Claimed], *, now: float, rules: PolicyRules, owner: str,
    in_flight: Callable[[str], Iterable[_Claimed]],
) -> set[str]:
    """Judge `items` again on what the store holds now; settle those no longer to be sent and return their ids.

    `in_flight(customer_id)` gives this worker's other sends not yet recorded: those claimed before
    an item count towards its caps and dedupe, as they did at its claim (a later one did not)."""
    changed = _changed_profiles(tx, items)
    customers = load_customers(tx, changed) if changed else {}
    requests, judged = [], []
    stopped: set[str] = set()
    for item in items:
        request = item.request
        if item.customer_id in changed:
            customer = customers.get(item.customer_id)
            if customer is None:  # erased (GDPR delete) since the claim
                decision = SendDecision(action="skip", channel=None, reason="customer erased")
                _settle(tx, item, "skipped", decision, now, owner)
                stopped.add(item.id)
                continue
            request = attrs.evolve(request, customer=customer)
        requests.append(request)
        judged.append(item)
    if not judged:
        return stopped
    recent = _with_earlier(load_recent(tx, requests, now=now, rules=rules), judged, in_flight)
    ordered = sorted(range(len(judged)), key=lambda i: judged[i].seq)  # decide_many counts earlier sends
    decisions = decide_many([requests[i] for i in ordered], now=now, recent=recent, rules=rules)
    for i, decision in zip(ordered, decisions, strict=True):
        item = judged[i]
        if decision.action == "send" and decision.channel == item.channel:
            if address_for(requests[i].customer, item.channel) == item.outgoing.to:
                continue
            decision = SendDecision(action="send", channel=item.channel, reason=f"the {item.channel} address changed")
        status = {"skip": "skipped", "defer": "deferred"}.get(decision.action, "queued")
        _settle(tx, item, status, decision, now, owner)
        stopped.add(item.id)
    return stopped


def _changed_profiles(tx: Transaction, items: Sequence[_Claimed]) -> set[str]:
    """Customers whose consents, identities, time zone or merge changed since their items were claimed.

    One query for the burst reads just those columns and compares them with the profiles the claim
    loaded; only the changed ones are loaded again (most bursts: none), which costs less than
    loading every profile of every burst."""
    claimed = {item.customer_id: item.request.customer for item in items}
    ids = list(claimed)
    marks = ",".join("?" * len(ids))
    rows = tx.query(
        f"SELECT 0, id, timezone, merged_into, 0, 0 FROM customers WHERE id IN ({marks}) "
        f"UNION ALL SELECT 1, customer_id, kind, value, 0, 0 FROM identities WHERE customer_id IN ({marks}) "
        f"UNION ALL SELECT 2, customer_id, channel, purpose, granted, id FROM consents WHERE customer_id IN ({marks}) "
        "ORDER BY 1, 2, 6",
        (*ids, *ids, *ids),
    )
    found: dict[str, tuple[Any, Any]] = {}
    identities: dict[str, set[tuple[str, str]]] = {}
    consents: dict[str, list[tuple[str, str, bool]]] = {}
    for table, cid, first, second, granted, _ in rows:
        if table == 0:
            found[cid] = (first, second)
        elif table == 1:
            identities.setdefault(cid, set()).add((first, second))
        else:
            consents.setdefault(cid, []).append((first, second, bool(granted)))
    changed = set()
    for cid, customer in claimed.items():
        if (cid not in found or found[cid] != (customer.timezone, None)
                or identities.get(cid, set()) != {(i.kind, i.value) for i in customer.identities}
                or consents.get(cid, []) != [(c.channel, c.purpose, c.granted) for c in customer.consents]):
            changed.add(cid)
    return changed


def _with_earlier(
    recent: dict[str, RecentActivity], items: Sequence[_Claimed], in_flight: Callable[[str], Iterable[_Claimed]]
) -> dict[str, RecentActivity]:
    """Recent activity plus the worker's unrecorded sends claimed before each customer's first item here."""
    first: dict[str, int] = {}
    for item in items:
        first[item.customer_id] = min(first.get(item.customer_id, item.seq), item.seq)
    for cid, activity in recent.items():
        known = {d.delivery_id for d in activity.deliveries}
        for other in in_flight(cid):
            if other.seq < first.get(cid, -1) and other.id not in known:
                activity = activity.with_delivery(other.past())
        recent[cid] = activity
    return recent


def _settle(tx: Transaction, item: _Claimed, status: str, decision: SendDecision, now: float, owner: str) -> None:
    """Not sent: skipped or deferred as decided now, or queued again (due at once) to be decided afresh."""
    entry: dict[str, Any] = decision.as_log(now)
    if status == "queued":
        entry["action"] = "requeue"
    entry["reason"] = RECHECKED + str(decision.reason)
    item.decisions.append(entry)
    due = decision.until if status == "deferred" else now
    tx.execute(
        "UPDATE deliveries SET status = ?, due_at = ?, attempts = ?, lease_owner = NULL, lease_until = NULL, "
        f"decisions = ?, updated_at = ? WHERE id = ? {_HELD}",
        (status, due, item.attempts - 1, dumps(item.decisions), now, item.id, owner),
    )
