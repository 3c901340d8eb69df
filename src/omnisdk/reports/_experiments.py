"""The report's experiments: each one's result looked at once a day from its first exposure, so the
chart can show how the lift and its intervals moved, and the lift of all marketing against the global
control group.

Each day's look is what `omni.experiment(name, until=<that midnight UTC>, previous=<the day before>)`
answers: the always-valid (sequential) interval carried on from look to look, the decision it gives,
and the fixed-horizon interval on the same data beside it (honest only at a planned end, shown for
comparison). The last look is at the report's end (`until`, else now).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

import attrs

from .._clock import to_datetime
from ..experiments import DEFAULT_HORIZON, ExperimentResult, GlobalControl, VariantResult
from ..experiments._measure import default_control, experiment_result, marketing_lift
from ..store import SQLStore
from ..store._experiments import ExperimentOverview, experiment_overviews, variant_outcomes

__all__ = ["ExperimentLook", "ExperimentSeries", "experiment_series", "marketing_lifts"]

DAY = 86_400.0
#: At most this many looks per chart: longer experiments are looked at every few days instead.
MAX_LOOKS = 366


@attrs.frozen(kw_only=True)
class ExperimentLook:
    """One look at an experiment: as it stood at `at`, sequentially (carried on) and fixed-horizon."""

    at: datetime
    sequential: ExperimentResult
    fixed: ExperimentResult


@attrs.frozen(kw_only=True)
class ExperimentSeries:
    """An experiment's looks, oldest first; none while only one variant was exposed."""

    name: str
    control: str
    exposures: int
    variants: tuple[VariantResult, ...]
    looks: tuple[ExperimentLook, ...]

    @property
    def result(self) -> ExperimentResult | None:
        """The latest look's always-valid result (None with a single variant)."""
        return self.looks[-1].sequential if self.looks else None


def _look_times(first: float, end: float) -> list[float]:
    """Every midnight (UTC) after the first exposure and before `end`, then `end` itself."""
    days = max(0, math.ceil((end - first) / DAY))
    step = max(1, math.ceil(days / MAX_LOOKS))
    midnight = math.floor(first / DAY) * DAY + DAY
    times = []
    while midnight < end:
        times.append(midnight)
        midnight += step * DAY
    return [*times, end]


def _series(store: SQLStore, overview: ExperimentOverview, *, goal: Sequence[str], window: timedelta,
            end: float, horizon: int) -> ExperimentSeries:
    control = default_control(overview.variants)
    if len(overview.variants) < 2:
        with store.transaction(immediate=False) as tx:
            [only] = variant_outcomes(tx, overview.experiment, goal=goal, window=window.total_seconds(), until=end)
        alone = VariantResult(only.variant, only.exposures, only.conversions,
                              only.conversions / only.exposures if only.exposures else 0.0,
                              only.revenue / only.exposures if only.exposures and only.revenue else None,
                              None, None, None)
        return ExperimentSeries(name=overview.experiment, control=control, exposures=overview.exposures,
                                variants=(alone,), looks=())
    looks: list[ExperimentLook] = []
    previous: ExperimentResult | None = None
    for at in _look_times(overview.first_exposed_at, end):
        if at < overview.first_exposed_at:
            continue
        previous = experiment_result(store, overview.experiment, goal=goal, window=window, control=control,
                                     horizon=horizon, until=at, previous=previous, variants=overview.variants)
        fixed = experiment_result(store, overview.experiment, goal=goal, window=window, control=control,
                                  horizon=horizon, until=at, method="fixed", variants=overview.variants)
        looks.append(ExperimentLook(at=to_datetime(at), sequential=previous, fixed=fixed))
    last = looks[-1].sequential
    return ExperimentSeries(name=overview.experiment, control=control, exposures=overview.exposures,
                            variants=last.variants, looks=tuple(looks))


def experiment_series(store: SQLStore, *, goal: Sequence[str], window: timedelta, end: float,
                      horizon: int = DEFAULT_HORIZON) -> tuple[ExperimentSeries, ...]:
    """Every experiment exposed before `end`, by name, looked at daily (control: `default_control`)."""
    with store.transaction(immediate=False) as tx:
        overviews = [o for o in experiment_overviews(tx) if o.first_exposed_at <= end]
    return tuple(_series(store, o, goal=goal, window=window, end=end, horizon=horizon) for o in overviews)


def marketing_lifts(store: SQLStore, control: GlobalControl | None, *, goal: Sequence[str], window: timedelta,
                    since: datetime | float | None, until: datetime | float | None, journeys: Collection[str],
                    channels: Collection[str]) -> dict[str, ExperimentResult]:
    """All marketing, each journey's and each channel's against the global control group; nothing
    when no group is configured."""
    if control is None:
        return {}
    scopes: list[tuple[str, str | None, str | None]] = [("all marketing", None, None)]
    scopes += [(f"journey {name}", name, None) for name in sorted(journeys)]
    scopes += [(f"channel {name}", None, name) for name in sorted(channels)]
    return {label: marketing_lift(store, control, goal=goal, window=window, since=since, until=until,
                                  journey=journey, channel=channel)
            for label, journey, channel in scopes}
