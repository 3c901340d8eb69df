"""`decide`: may this delivery go out now, on which channel, and why (or why not).

Pure: everything it needs is in its arguments (`load_recent` fetches the store part for a
whole batch), so the dispatcher can call it thousands of times a second and tests need no store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import attrs

from .._customers import Customer
from .._localtime import is_repeated, zone
from .._logging import get_logger
from ._recent import EMPTY_ACTIVITY, PastDelivery, RecentActivity
from ._rules import ENGAGEMENT_EVENTS, PolicyContext, PolicyRules, Verdict

__all__ = ["Check", "SendDecision", "SendRequest", "decide", "decide_many"]

log = get_logger("omnisdk.policies")
DEFAULT_RULES = PolicyRules()


@attrs.frozen(kw_only=True)
class SendRequest:
    """The facts of one queued delivery that the policies judge."""

    customer: Customer
    template: str
    #: The waterfall in order; empty means "choose the best channel for this customer".
    channels: Sequence[str] = ()
    purpose: str = "marketing"
    #: When the delivery was queued (epoch seconds): goals reached since then suppress it.
    queued_at: float | None = None
    data: Mapping[str, Any] = attrs.field(factory=dict)
    journey: str | None = None
    step: str | None = None
    run_id: str | None = None
    delivery_id: str | None = None
    #: The delivery whose timed fallback queued this one: the same message, not a duplicate.
    parent_id: str | None = None
    #: Channels this delivery can go out on at all (the message has a rendition and a provider
    #: is configured); None means every channel.
    available: Collection[str] | None = None


@attrs.frozen
class Check:
    """One policy looked at, for the decision log: `channel` is None for checks on the whole delivery."""

    policy: str
    channel: str | None
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "channel": self.channel, "passed": self.passed, "detail": self.detail}


@attrs.frozen(kw_only=True)
class SendDecision:
    """send on `channel`, skip for good, or defer until `until` (epoch seconds); `reason` says why."""

    action: Literal["send", "skip", "defer"]
    channel: str | None
    reason: str
    until: float | None = None
    checks: tuple[Check, ...] = ()

    def as_log(self, at: float) -> dict[str, Any]:
        """The entry for the delivery's decision log (`Delivery.decisions`)."""
        return {"at": at, "action": self.action, "channel": self.channel, "reason": self.reason,
                "until": self.until, "checks": [c.as_dict() for c in self.checks]}


def decide(
    request: SendRequest,
    *,
    now: float,
    recent: RecentActivity | None = None,
    rules: PolicyRules | None = None,
) -> SendDecision:
    """Judge one delivery at `now`. Checks on the whole delivery come first (global control group, goal
    reached, duplicate, frequency cap: skip), then each candidate channel in order: available, reachable, consented,
    quiet hours (defer, never drop), then plugin policies. The first channel that passes is chosen.
    """
    rules = rules or DEFAULT_RULES
    recent = recent or EMPTY_ACTIVITY
    checks: list[Check] = []
    for blocker in (_global_control, _goal_reached, _duplicate, _capped):
        reason = blocker(request, recent, rules, now)
        if reason:
            checks.append(Check(blocker.__name__.strip("_"), None, False, reason))
            return SendDecision(action="skip", channel=None, reason=reason, checks=tuple(checks))
    candidates = request.channels or _best_channels(request, recent, rules, now)
    failures: list[str] = []
    for channel in candidates:
        outcome = _judge_channel(request, channel, rules, now, checks)
        if isinstance(outcome, SendDecision):
            return attrs.evolve(outcome, checks=tuple(checks))
        if outcome is None:
            return SendDecision(action="send", channel=channel, reason=f"send on {channel}", checks=tuple(checks))
        failures.append(outcome)
    if not candidates:
        failures.append("no channel is available for this message and customer")
    reason = failures[0] if len(failures) == 1 else "no reachable, consented channel: " + "; ".join(failures)
    return SendDecision(action="skip", channel=None, reason=reason, checks=tuple(checks))


def decide_many(
    requests: Sequence[SendRequest],
    *,
    now: float,
    recent: Mapping[str, RecentActivity],
    rules: PolicyRules | None = None,
) -> list[SendDecision]:
    """`decide` for a batch, in order: a send decided for a customer counts towards the caps and
    dedupe of that customer's later requests in the same batch."""
    activity = dict(recent)
    later = Counter(request.customer.id for request in requests)  # requests of each customer still to decide
    decisions = []
    for request in requests:
        cid = request.customer.id
        decision = decide(request, now=now, recent=activity.get(cid), rules=rules)
        later[cid] -= 1
        if decision.action == "send" and later[cid]:
            sent = PastDelivery(request.delivery_id or "", request.template, decision.channel, request.purpose, now,
                                request.run_id, request.step)
            activity[cid] = activity.get(cid, EMPTY_ACTIVITY).with_delivery(sent)
        decisions.append(decision)
    return decisions


def _judge_channel(request: SendRequest, channel: str, rules: PolicyRules, now: float, checks: list[Check]) -> Any:
    """None when the channel may be used now; a reason string to try the next one; a SendDecision to stop."""
    customer, purpose = request.customer, request.purpose
    if request.available is not None and channel not in request.available:
        return _fail(checks, "available", channel, f"{request.template!r} cannot go out on {channel}")
    if rules.addresses.address_for(customer, channel) is None:
        return _fail(checks, "reachable", channel, f"no {channel} address")
    if not customer.has_consent(channel, purpose):
        return _fail(checks, "consent", channel, f"no {purpose} consent on {channel}")
    checks.append(Check("consent", channel, True, f"{purpose} consent on {channel}"))
    quiet = rules.quiet_hours
    if quiet is not None and quiet.applies(purpose, channel):
        tz_name = _timezone_name(customer, rules)
        tz = zone(tz_name)
        until = quiet.ends_at(now, tz)
        if until is not None:
            reason = f"{quiet.describe(tz_name)} until {_local(until, tz, now)}"
            checks.append(Check("quiet_hours", channel, False, reason))
            return SendDecision(action="defer", channel=channel, reason=reason, until=until)
    if rules.custom:
        context = PolicyContext(customer=customer, channel=channel, purpose=purpose, template=request.template,
                                now=now, journey=request.journey, step=request.step, data=request.data)
        for name, policy in rules.custom:
            verdict = _run_policy(name, policy, context)
            if verdict is None:
                continue
            if verdict.action == "defer" and verdict.until is not None and verdict.until > now:
                checks.append(Check(name, channel, False, verdict.reason))
                return SendDecision(action="defer", channel=channel, reason=verdict.reason, until=verdict.until)
            return _fail(checks, name, channel, verdict.reason)
    return None


def _fail(checks: list[Check], policy: str, channel: str, reason: str) -> str:
    checks.append(Check(policy, channel, False, reason))
    return reason


def _run_policy(name: str, policy: Any, context: PolicyContext) -> Verdict | None:
    """A plugin policy that fails blocks its channel (fail closed): better unsent than sent against a rule."""
    try:
        verdict = policy(context)
    except Exception as exc:
        log.error("policy_failed", policy=name, error=exc)
        return Verdict(action="skip", reason=f"policy {name} failed: {type(exc).__name__}")
    if verdict is not None and not isinstance(verdict, Verdict):
        log.error("policy_bad_verdict", policy=name, verdict=type(verdict).__name__)
        return Verdict(action="skip", reason=f"policy {name} returned {type(verdict).__name__}, not a Verdict")
    return verdict


def _global_control(request: SendRequest, recent: RecentActivity, rules: PolicyRules, now: float) -> str | None:
    """Marketing never reaches the global control group (transactional messages still do)."""
    control = rules.global_control
    if control is None or request.purpose != "marketing" or not control.includes(request.customer.id):
        return None
    return "global control group: no marketing messages"


def _goal_reached(request: SendRequest, recent: RecentActivity, rules: PolicyRules, now: float) -> str | None:
    goals = rules.goals_for(request.template, request.data)
    if not goals:
        return None
    since = request.queued_at if request.queued_at is not None else now
    for event in recent.events:
        if event.name in goals and event.at >= since:
            return f"suppressed: {event.name} on {event.channel} since the message was queued"
    return None


def _duplicate(request: SendRequest, recent: RecentActivity, rules: PolicyRules, now: float) -> str | None:
    window = rules.dedupe.get(request.purpose)
    if not window:
        return None
    for past in recent.deliveries:
        if past.template == request.template and past.at >= now - window and not _same_send(past, request):
            return f"duplicate: {request.template!r} already sent on {past.channel} within {_span(window)}"
    return None


def _capped(request: SendRequest, recent: RecentActivity, rules: PolicyRules, now: float) -> str | None:
    for cap in rules.frequency_caps.get(request.purpose, ()):
        since = now - cap.window
        count = sum(
            1 for past in recent.deliveries
            if past.purpose == request.purpose and past.at >= since and not _same_send(past, request)
        )
        if count >= cap.limit:
            return f"frequency cap {cap.text} for {request.purpose} reached ({count} sent on all channels)"
    return None


def _same_send(past: PastDelivery, request: SendRequest) -> bool:
    """The request itself, or another attempt at the same send (its fallback, the same journey step)."""
    if past.delivery_id and past.delivery_id in (request.delivery_id, request.parent_id):
        return True
    return past.run_id is not None and past.run_id == request.run_id and past.step == request.step


def _best_channels(request: SendRequest, recent: RecentActivity, rules: PolicyRules, now: float) -> list[str]:
    """The customer's stated preferences first, then channels they engaged with (most first), then the default order."""
    since = now - rules.engagement_window
    score: dict[str, int] = {}
    for event in recent.events:
        if event.name in ENGAGEMENT_EVENTS and event.at >= since:
            score[event.channel] = score.get(event.channel, 0) + 1
    engaged = sorted((c for c in score if c in rules.channel_order), key=lambda c: -score[c])
    ordered = [*request.customer.preferred_channels, *engaged, *rules.channel_order]
    available = request.available
    return [c for c in dict.fromkeys(ordered) if available is None or c in available]


def _timezone_name(customer: Customer, rules: PolicyRules) -> str:
    if customer.timezone:
        try:
            zone(customer.timezone)
        except Exception:
            return rules.default_timezone
        return customer.timezone
    return rules.default_timezone


def _local(ts: float, tz: ZoneInfo, now: float) -> str:
    """Local clock time; the date too when it is a day or more away, the zone's abbreviation when
    the clocks show that time twice."""
    local = datetime.fromtimestamp(ts, tz)
    text = f"{local:%H:%M}" if ts - now < 86400 else f"{local:%Y-%m-%d %H:%M}"
    return f"{text} {local:%Z}" if is_repeated(ts, tz) else text


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
