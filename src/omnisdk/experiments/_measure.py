"""Results from the store: an experiment's exposures and conversions, and the lift of all marketing
against the global control group, both through `analyse` (sequential by default).

A conversion is a goal touchpoint on any channel (web, app, POS, ...) at or after the customer's
exposure and within `window`; revenue is read from its `revenue` (or `value`) property, summed per
customer, zeros included.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from .._errors import NotFoundError, ValidationError
from ..store import SQLStore
from ..store._experiments import Reached, VariantOutcome, marketing_reach, variant_outcomes
from ._assign import GlobalControl
from ._results import ExperimentResult, Method, Metric, VariantData, analyse
from ._sequential import DEFAULT_HORIZON
from ._stats import Summary

__all__ = ["CONTROL_GROUP", "MARKETED", "experiment_result", "marketing_lift"]

#: The two arms of `marketing_lift`.
CONTROL_GROUP = "global control"
MARKETED = "marketed"


def _goals(goal: str | Collection[str]) -> list[str]:
    goals = [goal] if isinstance(goal, str) else list(goal)
    if not goals or not all(isinstance(g, str) and g for g in goals):
        raise ValidationError("expected an event name or a list of them", field="goal", value=goal)
    return goals


def _seconds(window: timedelta) -> float:
    if not isinstance(window, timedelta) or window <= timedelta():
        raise ValidationError("expected a positive datetime.timedelta", field="window", value=window)
    return window.total_seconds()


def _timestamp(value: datetime | float | None, field: str) -> float | None:
    if value is None or isinstance(value, datetime):
        return None if value is None else value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValidationError("expected a datetime or epoch seconds", field=field, value=value)


def _data(outcomes: Sequence[VariantOutcome]) -> dict[str, VariantData]:
    """Counts per variant; revenue only when some conversion carried revenue (else every test would
    compare zeros)."""
    with_revenue = any(o.revenue_squares > 0 for o in outcomes)
    return {
        o.variant: VariantData(o.exposures, o.conversions,
                               Summary.from_sums(o.exposures, o.revenue, o.revenue_squares) if with_revenue else None)
        for o in outcomes
    }


def experiment_result(
    store: SQLStore, name: str, *, goal: str | Collection[str], window: timedelta, control: str,
    metric: Metric = "conversion", method: Method = "sequential", alpha: float = 0.05,
    horizon: int = DEFAULT_HORIZON, equivalence: float | None = None, until: datetime | float | None = None,
) -> ExperimentResult:
    """Per variant of experiment `name`: exposures, conversions on `goal` within `window` of the
    exposure, revenue, lifts against `control` and a decision. A control nobody was exposed to yet
    counts as zero exposures (the decision is then "keep running")."""
    goals, seconds, bound = _goals(goal), _seconds(window), _timestamp(until, "until")
    with store.transaction(immediate=False) as tx:
        outcomes = variant_outcomes(tx, name, goal=goals, window=seconds, until=bound)
    if not outcomes:
        raise NotFoundError(f"experiment {name!r} has no exposures")
    data = _data(outcomes)
    if control not in data:
        empty = Summary(0, 0.0, 0.0) if any(d.revenue is not None for d in data.values()) else None
        data[control] = VariantData(0, 0, empty)
    return analyse(data, control=control, metric=metric, method=method, alpha=alpha, horizon=horizon,
                   equivalence=equivalence)


def _arm(customers: Sequence[Reached], with_revenue: bool) -> VariantData:
    revenue = Summary.of([c.revenue for c in customers]) if with_revenue else None
    return VariantData(len(customers), sum(1 for c in customers if c.conversions), revenue)


def marketing_lift(
    store: SQLStore, control: GlobalControl | None, *, goal: str | Collection[str], window: timedelta,
    since: datetime | float | None = None, until: datetime | float | None = None, journey: str | None = None,
    channel: str | None = None, metric: Metric = "conversion", method: Method = "sequential", alpha: float = 0.05,
    horizon: int = DEFAULT_HORIZON,
) -> ExperimentResult:
    """What marketing earns: customers some marketing message was meant for (queued in [`since`,
    `until`); of `journey` only, or first meant for `channel` only, when given) outside the global
    control group against those in it, on `goal` within `window` of the first such message. Both arms
    are counted alike (an intention to market), since the group's messages are queued and then skipped."""
    if control is None:
        raise ValidationError("no global control group is configured ([experiments] global_control)",
                              field="global_control")
    goals, seconds = _goals(goal), _seconds(window)
    with store.transaction(immediate=False) as tx:
        reached = marketing_reach(tx, goal=goals, window=seconds, since=_timestamp(since, "since"),
                                  until=_timestamp(until, "until"), journey=journey, channel=channel)
    held = [c for c in reached if control.includes(c.customer_id)]
    marketed = [c for c in reached if not control.includes(c.customer_id)]
    with_revenue = any(c.revenue for c in reached)
    return analyse({CONTROL_GROUP: _arm(held, with_revenue), MARKETED: _arm(marketed, with_revenue)},
                   control=CONTROL_GROUP, metric=metric, method=method, alpha=alpha, horizon=horizon)

