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

from collections.abc import Sequence

import attrs

from .._identity import load_customers
from ..policies import PolicyRules, SendDecision, decide_many, load_recent
from ..store import Transaction
from ..store._customers import profile_fingerprints
from ..store._deliveries import HELD_TO_SEND, Change
from ._held import Claimed, InFlight, Writes, policy_entry

__all__ = ["RECHECKED", "stop_revoked"]

#: How the decision log tells a send stopped by the re-check from one stopped at the claim.
RECHECKED = "re-checked before the call: "


def stop_revoked(
    tx: Transaction, items: Sequence[Claimed], writes: Writes, *, now: float, rules: PolicyRules, owner: str,
    in_flight: InFlight,
) -> set[str]:
    """Judge `items` again on what the store holds now; settle (in `writes`) those no longer to be
    sent and return their ids.

    This worker's other sends not yet recorded count towards an item's caps and dedupe when they
    were claimed before it, as they did at its claim (a later one did not)."""
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
                _settle(writes, item, "skipped", decision, now, owner)
                stopped.add(item.id)
                continue
            request = attrs.evolve(request, customer=customer)
        requests.append(request)
        judged.append(item)
    if not judged:
        return stopped
    first: dict[str, int] = {}
    for item in judged:
        first[item.customer_id] = min(first.get(item.customer_id, item.seq), item.seq)
    recent = in_flight.counted(load_recent(tx, requests, now=now, rules=rules), before=first)
    ordered = sorted(range(len(judged)), key=lambda i: judged[i].seq)  # decide_many counts earlier sends
    decisions = decide_many([requests[i] for i in ordered], now=now, recent=recent, rules=rules)
    for i, decision in zip(ordered, decisions, strict=True):
        item = judged[i]
        if decision.action == "send" and decision.channel == item.channel:
            if rules.addresses.address_for(requests[i].customer, item.channel) == item.outgoing.to:
                continue
            decision = SendDecision(action="send", channel=item.channel, reason=f"the {item.channel} address changed")
        status = {"skip": "skipped", "defer": "deferred"}.get(decision.action, "queued")
        _settle(writes, item, status, decision, now, owner)
        stopped.add(item.id)
    return stopped


def _changed_profiles(tx: Transaction, items: Sequence[Claimed]) -> set[str]:
    """Customers whose consents, identities, time zone or merge changed since their items were claimed.

    One query for the burst reads just those columns and compares them with the profiles the claim
    loaded; only the changed ones are loaded again (most bursts: none), which costs less than
    loading every profile of every burst."""
    claimed = {item.customer_id: item.request.customer for item in items}
    found, identities, consents = profile_fingerprints(tx, list(claimed))
    changed = set()
    for cid, customer in claimed.items():
        if (cid not in found or found[cid] != (customer.timezone, None)
                or identities.get(cid, set()) != {(i.kind, i.value) for i in customer.identities}
                or consents.get(cid, []) != [(c.channel, c.purpose, c.granted) for c in customer.consents]):
            changed.add(cid)
    return changed


def _settle(writes: Writes, item: Claimed, status: str, decision: SendDecision, now: float, owner: str) -> None:
    """Not sent: skipped or deferred as decided now, or queued again (due at once) to be decided afresh."""
    logged = policy_entry(item.id, decision, now, outcome="requeue" if status == "queued" else None,
                          reason=RECHECKED + str(decision.reason))
    due = decision.until if status == "deferred" else now
    writes.change(Change(item.id, {"status": status, "due_at": due, "attempts": item.attempts - 1,
                                   "lease_owner": None, "lease_until": None, "updated_at": now},
                         owner=owner, statuses=HELD_TO_SEND), logged)
