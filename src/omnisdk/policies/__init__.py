"""Send-time policies: may a queued message go out now, on which channel, and why.

The dispatcher, for a batch of due deliveries::

    rules = core.policy_rules                               # PolicyRules.from_config(config["policies"], plugins)
    requests = [SendRequest(customer=..., template=..., channels=[...], purpose=..., queued_at=..., ...)]
    recent = load_recent(tx, requests, now=now, rules=rules) # two queries for the whole batch
    decisions = decide_many(requests, now=now, recent=recent, rules=rules)
"""

from ._addresses import CORE_ADDRESSES, Addresses, address_for, format_postal_address
from ._decide import Check, SendDecision, SendRequest, decide, decide_many
from ._recent import PastDelivery, PastEvent, RecentActivity, load_recent
from ._rules import (
    ENGAGEMENT_EVENTS,
    FrequencyCap,
    Policy,
    PolicyContext,
    PolicyRules,
    QuietHours,
    Verdict,
    parse_duration,
)

__all__ = [
    "CORE_ADDRESSES",
    "ENGAGEMENT_EVENTS",
    "Addresses",
    "Check",
    "SendDecision",
    "FrequencyCap",
    "PastDelivery",
    "PastEvent",
    "Policy",
    "PolicyContext",
    "PolicyRules",
    "QuietHours",
    "RecentActivity",
    "SendRequest",
    "Verdict",
    "address_for",
    "decide",
    "decide_many",
    "format_postal_address",
    "load_recent",
    "parse_duration",
]
