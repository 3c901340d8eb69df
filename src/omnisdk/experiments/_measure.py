"""Results from the store: an experiment's exposures and conversions, and the lift of all marketing
against the global control group, both through `analyse` (sequential by default).

A conversion is a goal touchpoint on any channel (web, app, POS, ...) at or after the customer's
exposure and within `window`; revenue is read from its `revenue` (or `value`) property, summed per
customer, zeros included. With `cuped=True` each customer's goal revenue in the `pre_period` before
their exposure is the CUPED covariate of their revenue (`experiments.cuped`), read from the same
touchpoints, so the caller passes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from .._errors import NotFoundError, ValidationError
from ..store import SQLStore
from ..store._experiments import (
    CustomerRevenue,
    Reached,
    VariantOutcome,
    customer_revenues,
    marketing_reach,
    variant_outcomes,
)
from ._assign import GlobalControl
from ._cuped import cuped as cuped_adjustment
from ._results import ExperimentResult, Method, Metric, VariantData, analyse
from ._sequential import DEFAULT_HORIZON
from ._stats import Summary

__all__ = ["CONTROL_GROUP", "CONTROL_NAMES", "DEFAULT_PRE_PERIOD", "MARKETED", "default_control",
           "experiment_result", "marketing_lift"]

#: The two arms of `marketing_lift`.
CONTROL_GROUP = "global control"
MARKETED = "marketed"
#: Variant names taken as the control when none is named, in this order of preference.
CONTROL_NAMES = ("control", "holdout", "none")
#: How far before the exposure CUPED reads a customer's revenue, unless told otherwise.
DEFAULT_PRE_PERIOD = timedelta(days=30)


def default_control(variants: Sequence[str]) -> str:
    """The variant to compare the others with when nobody said: control, holdout or none if there is
    one, else the first by name."""
    return next((name for name in CONTROL_NAMES if name in variants), min(variants))


def _goals(goal: str | Collection[str]) -> list[str]:
    goals = [goal] if isinstance(goal, str) else list(goal)
    if not goals or not all(isinstance(g, str) and g for g in goals):
        raise ValidationError("expected an event name or a list of them", field="goal", value=goal)
    return goals


def _seconds(window: timedelta, field: str = "window") -> float:
    if not isinstance(window, timedelta) or window <= timedelta():
        raise ValidationError("expected a positive datetime.timedelta", field=field, value=window)
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


def _adjusted(rows: Sequence[CustomerRevenue]) -> dict[str, VariantData]:
    """Counts per variant from one row per exposed customer, revenue CUPED-adjusted by the pre-period's."""
    outcomes: dict[str, list[float]] = defaultdict(list)
    covariates: dict[str, list[float]] = defaultdict(list)
    converted: dict[str, int] = defaultdict(int)
    for row in rows:
        outcomes[row.variant].append(row.revenue)
        covariates[row.variant].append(row.pre_revenue)
        converted[row.variant] += row.converted
    adjusted = cuped_adjustment(outcomes, covariates).summaries
    return {variant: VariantData(len(outcomes[variant]), converted[variant], adjusted[variant])
            for variant in outcomes}


def experiment_result(
    store: SQLStore, name: str, *, goal: str | Collection[str], window: timedelta, control: str,
    metric: Metric = "conversion", method: Method = "sequential", alpha: float = 0.05,
    horizon: int = DEFAULT_HORIZON, equivalence: float | None = None, until: datetime | float | None = None,
    previous: ExperimentResult | None = None, cuped: bool = False, pre_period: timedelta = DEFAULT_PRE_PERIOD,
    variants: Collection[str] = (),
) -> ExperimentResult:
    """Per variant of experiment `name`: exposures, conversions on `goal` within `window` of the
    exposure, revenue, lifts against `control` and a decision, as the store stood at `until` (exposures
    and touchpoints after it left out). A control nobody was exposed to yet counts as zero exposures (the
    decision is then "keep running"). `previous` is the last look's result, carried on by the sequential
    test; `cuped` adjusts revenue by each customer's goal revenue in the `pre_period` before exposure.
    `variants` (with `control`) are counted as zero exposures until someone is exposed to them."""
    goals, seconds, bound = _goals(goal), _seconds(window), _timestamp(until, "until")
    if not isinstance(cuped, bool):
        raise ValidationError("expected True or False", field="cuped", value=cuped)
    before = _seconds(pre_period, "pre_period")
    with store.transaction(immediate=False) as tx:
        if cuped:
            data = _adjusted(customer_revenues(tx, name, goal=goals, window=seconds, pre_period=before, until=bound))
        else:
            data = _data(variant_outcomes(tx, name, goal=goals, window=seconds, until=bound))
    if not data:
        raise NotFoundError(f"experiment {name!r} has no exposures")
    empty = Summary(0, 0.0, 0.0) if any(d.revenue is not None for d in data.values()) else None
    for missing in {control, *variants} - set(data):
        data[missing] = VariantData(0, 0, empty)
    return analyse(data, control=control, metric=metric, method=method, alpha=alpha, horizon=horizon,
                   equivalence=equivalence, previous=previous)


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

