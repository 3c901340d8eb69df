"""The answer to "did this message make money?": per variant counts, lifts against control, a decision.

`analyse` turns each variant's counts into an `ExperimentResult`. With more than one variant against
control the intervals are Bonferroni-corrected (they hold for all variants at once) and the p-values
Holm-adjusted (or Bonferroni), so three arms are not three chances of a false winner. The decision reads
the adjusted p-value of the chosen metric:

* winner: some variant beats control (the best of those by estimate), or every variant is worse than
  control (control wins);
* no difference: nothing beats control and either each remaining interval of relative lift lies within
  +-`equivalence`, or every variant reached the horizon;
* keep running: otherwise.

A fixed-horizon analysis says "keep running" until every variant has `horizon` exposures whatever the
p-values say: deciding earlier is the peeking those tests do not survive.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Literal

import attrs

from .._errors import ValidationError
from ._sequential import DEFAULT_HORIZON, msprt_means, msprt_proportions
from ._stats import Lift, Summary, bonferroni, check_alpha, holm, two_proportion_z_test, welch_t_test

__all__ = ["Conclusion", "ExperimentResult", "VariantData", "VariantResult", "analyse"]

Method = Literal["sequential", "fixed"]
Metric = Literal["conversion", "revenue"]


def _count(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError("must be a whole number >= 0", field=attribute.name, value=value)


class Conclusion(enum.StrEnum):
    """What to do with an experiment, or what one variant is doing against control."""

    WINNER = "winner"
    LOSER = "loser"
    NO_DIFFERENCE = "no difference"
    KEEP_RUNNING = "keep running"


@attrs.frozen
class VariantData:
    """What one variant's exposed customers did; `revenue` is per exposed customer, zeros included."""

    exposures: int = attrs.field(validator=_count)
    conversions: int = attrs.field(validator=_count)
    revenue: Summary | None = attrs.field(default=None)

    @conversions.validator
    def _at_most_exposures(self, _attribute: object, conversions: int) -> None:
        if conversions > self.exposures:
            raise ValidationError(f"{conversions} conversions among {self.exposures} exposures", field="conversions",
                                  value=conversions)

    @revenue.validator
    def _every_exposed_customer(self, _attribute: object, revenue: Summary | None) -> None:
        if revenue is not None and revenue.n != self.exposures:
            raise ValidationError(f"covers {revenue.n} customers, not the {self.exposures} exposed (zeros count)",
                                  field="revenue", value=revenue.n)

    @classmethod
    def of(cls, converted: Sequence[bool], revenue: Sequence[float] | None = None) -> VariantData:
        """From one entry per exposed customer."""
        return cls(len(converted), sum(map(bool, converted)), None if revenue is None else Summary.of(revenue))


@attrs.frozen
class VariantResult:
    """One variant: its counts, and against control (None for control itself) its lifts and decision."""

    name: str
    exposures: int
    conversions: int
    conversion_rate: float
    revenue_per_exposed: float | None
    conversion_lift: Lift | None
    revenue_lift: Lift | None
    decision: Conclusion | None


@attrs.frozen
class ExperimentResult:
    """Every variant, control first, and what to do about the experiment."""

    control: str
    variants: tuple[VariantResult, ...]
    method: Method
    metric: Metric
    alpha: float
    decision: Conclusion
    winner: str | None

    def variant(self, name: str) -> VariantResult:
        """The named variant's result."""
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise ValidationError("not a variant of this experiment", field="name", value=name)


def _lifts(control: VariantData, variant: VariantData, *, method: Method, alpha: float, horizon: int,
           previous: VariantResult | None) -> tuple[Lift | None, Lift | None]:
    """The (conversion, revenue) lifts of one variant; None where the data cannot give one yet."""
    if method == "sequential":
        conversion = msprt_proportions(control.conversions, control.exposures, variant.conversions,
                                       variant.exposures, alpha=alpha, horizon=horizon,
                                       previous=previous.conversion_lift if previous else None)
        if control.revenue is None or variant.revenue is None:
            return conversion, None
        return conversion, msprt_means(control.revenue, variant.revenue, alpha=alpha, horizon=horizon,
                                       previous=previous.revenue_lift if previous else None)
    if not (control.exposures and variant.exposures):
        return None, None
    conversion = two_proportion_z_test(control.conversions, control.exposures, variant.conversions,
                                       variant.exposures, alpha=alpha)
    if control.revenue is None or variant.revenue is None or min(control.revenue.n, variant.revenue.n) < 2:
        return conversion, None
    return conversion, welch_t_test(control.revenue, variant.revenue, alpha=alpha)


def _verdict(lift: Lift | None, p_value: float, exposures: int, *, method: Method, alpha: float,
             horizon: int, equivalence: float | None) -> Conclusion:
    reached = exposures >= horizon
    if lift is None or (method == "fixed" and not reached):
        return Conclusion.KEEP_RUNNING
    if p_value <= alpha:  # the side the interval lies on; Holm may decide before it clears 0, then the estimate's
        bounds = lift.absolute_interval
        better = bounds.lower > 0 or (bounds.upper >= 0 and lift.absolute > 0)
        return Conclusion.WINNER if better else Conclusion.LOSER
    interval = lift.relative_interval
    if reached or (equivalence is not None and interval is not None
                   and -equivalence < interval.lower and interval.upper < equivalence):
        return Conclusion.NO_DIFFERENCE
    return Conclusion.KEEP_RUNNING


def analyse(data: Mapping[str, VariantData], *, control: str, metric: Metric = "conversion",
            method: Method = "sequential", alpha: float = 0.05, horizon: int = DEFAULT_HORIZON,
            correction: Literal["holm", "bonferroni"] = "holm", equivalence: float | None = None,
            previous: ExperimentResult | None = None) -> ExperimentResult:
    """Compare every variant with `control` on conversion rate and revenue per exposed customer.

    `horizon` is the planned exposures per variant; `equivalence` a relative lift (0.02 for 2%) too small
    to matter; `previous` the last look's result, so sequential p-values and intervals carry over.
    """
    alpha = check_alpha(alpha)
    if control not in data or len(data) < 2:
        raise ValidationError("must name one of at least two variants", field="control", value=control)
    if metric not in ("conversion", "revenue"):
        raise ValidationError("must be 'conversion' or 'revenue'", field="metric", value=metric)
    if method not in ("sequential", "fixed"):
        raise ValidationError("must be 'sequential' or 'fixed'", field="method", value=method)
    if correction not in ("holm", "bonferroni"):
        raise ValidationError("must be 'holm' or 'bonferroni'", field="correction", value=correction)
    if equivalence is not None and not (isinstance(equivalence, int | float) and equivalence > 0):
        raise ValidationError("must be a relative lift > 0", field="equivalence", value=equivalence)
    treatments = [name for name in data if name != control]
    per_comparison = alpha / len(treatments)  # Bonferroni: the intervals hold for every variant at once
    lifts = {
        name: _lifts(data[control], data[name], method=method, alpha=per_comparison, horizon=horizon,
                     previous=_previous(previous, name))
        for name in treatments
    }
    metric_lifts = {name: pair[0] if metric == "conversion" else pair[1] for name, pair in lifts.items()}
    raw = {name: lift.p_value if lift else 1.0 for name, lift in metric_lifts.items()}
    adjusted = (holm if correction == "holm" else bonferroni)(raw)
    verdicts = {name: _verdict(metric_lifts[name], adjusted[name], min(data[name].exposures, data[control].exposures),
                               method=method, alpha=alpha,
                               horizon=horizon, equivalence=equivalence) for name in treatments}
    decision, winner = _overall(verdicts, metric_lifts, control)
    results = [_result(control, data[control], None, None, None)]
    results += [_result(name, data[name], *lifts[name], verdicts[name]) for name in treatments]
    return ExperimentResult(control, tuple(results), method, metric, alpha, decision, winner)


def _previous(previous: ExperimentResult | None, name: str) -> VariantResult | None:
    if previous is None:
        return None
    return next((variant for variant in previous.variants if variant.name == name), None)


def _overall(verdicts: Mapping[str, Conclusion], lifts: Mapping[str, Lift | None],
             control: str) -> tuple[Conclusion, str | None]:
    better = {name: lift.absolute for name, lift in lifts.items() if lift and verdicts[name] is Conclusion.WINNER}
    if better:
        return Conclusion.WINNER, max(better, key=better.__getitem__)
    if all(verdict is Conclusion.LOSER for verdict in verdicts.values()):
        return Conclusion.WINNER, control
    if Conclusion.KEEP_RUNNING in verdicts.values():
        return Conclusion.KEEP_RUNNING, None
    return Conclusion.NO_DIFFERENCE, None


def _result(name: str, data: VariantData, conversion: Lift | None, revenue: Lift | None,
            decision: Conclusion | None) -> VariantResult:
    return VariantResult(
        name=name,
        exposures=data.exposures,
        conversions=data.conversions,
        conversion_rate=data.conversions / data.exposures if data.exposures else 0.0,
        revenue_per_exposed=data.revenue.mean if data.revenue is not None else None,
        conversion_lift=conversion,
        revenue_lift=revenue,
        decision=decision,
    )
