"""Always-valid comparisons: look at the results every day, stop whenever, and the error rate holds.

The test is the mixture sequential probability ratio test (mSPRT) of Johari, Koomen, Pekelis and Walsh
("Always valid inference", 2017) with a normal mixture, applied to the estimated difference D (or log
ratio) whose variance V shrinks as exposures grow. With mixture variance tau^2 and r = tau^2 / V,

    Lambda = (1 + r) ** -0.5 * exp(r / (1 + r) * z^2 / 2),    z = D / sqrt(V),

is a nonnegative martingale under "no difference", so by Ville's inequality it ever reaches 1 / alpha
with probability at most alpha. The always-valid p-value is min(1, 1 / Lambda) (kept at its lowest so far),
and the values not rejected at level alpha form the confidence sequence

    D +- sqrt(V * 2 (1 + r) / r * (log(1 / alpha) + log(1 + r) / 2)),

which covers the true difference at every look at once with probability at least 1 - alpha. The p-value is
below alpha exactly when the interval excludes 0, so the two never disagree.

V is the larger of the unpooled variance (each group its own) and the pooled one (both groups together,
right when there is no difference). A small holdout with no conversion yet shows no spread: its unpooled
variance of 0 alone would make noise look certain (a third of A/A tests with a 5% holdout at 2% conversion
"found" a difference that way); the pooled one cannot be fooled by it, and taking the larger only errs wide.

tau^2 is r* times the variance at the horizon (`horizon` exposures in each group, pooled per-exposure
variance), with r* = 2 log(1 / alpha) + log(1 + r*), the ratio that makes the interval narrowest there.
The interval is valid at every sample size whatever the horizon; the horizon only decides where it is
narrowest. The variances are estimated from the data (plug-in), so validity is asymptotic, as in the paper.

Each look returns a `Lift`; pass the previous look's as `previous` to carry the lowest p-value and the
running intersection of the intervals (both also always valid), so a decision once reached stays.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

from .._errors import ValidationError
from ._stats import (
    UNBOUNDED,
    Interval,
    Lift,
    Summary,
    check_alpha,
    log_ratio_variance,
    relative_lift,
)

__all__ = ["DEFAULT_HORIZON", "msprt_means", "msprt_proportions"]

DEFAULT_HORIZON = 10_000  # exposures per variant where the interval is tightest, unless told otherwise


@lru_cache(maxsize=64)
def _ratio_at_horizon(alpha: float) -> float:
    """tau^2 / V at the horizon: the fixed point of r = 2 log(1 / alpha) + log(1 + r) (a contraction)."""
    r = 2 * math.log(1 / alpha)
    for _ in range(60):
        r = 2 * math.log(1 / alpha) + math.log1p(r)
    return r


def _check_horizon(horizon: int) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValidationError("must be a whole number of exposures >= 1", field="horizon", value=horizon)
    return horizon


def _mixture(estimate: float, variance: float, unit_variance: float, horizon: int,
             alpha: float) -> tuple[float, Interval]:
    """log Lambda for "no difference", and the confidence sequence, of an estimate with this variance.

    `unit_variance` is the variance one exposure in each group contributes, so unit_variance / horizon is
    the variance at the horizon and tau^2 = r* * that.
    """
    r = _ratio_at_horizon(alpha) * unit_variance / (horizon * variance)
    log_lr = -0.5 * math.log1p(r) + r / (1 + r) * estimate**2 / (2 * variance)
    half = math.sqrt(variance * 2 * (1 + r) / r * (math.log(1 / alpha) + 0.5 * math.log1p(r)))
    return log_lr, Interval(estimate - half, estimate + half)


class _Group(NamedTuple):
    mean: float
    unit_variance: float  # of one exposure's outcome
    n: int


def _compare(control: _Group, treatment: _Group, pooled_unit: float, alpha: float, horizon: int,
             previous: Lift | None) -> Lift:
    """The sequential `Lift` of two groups; `pooled_unit` is one exposure's variance, both groups together."""
    difference = treatment.mean - control.mean
    relative = relative_lift(control.mean, treatment.mean)
    v0, v1 = control.unit_variance / control.n, treatment.unit_variance / treatment.n
    sizes = 1 / control.n + 1 / treatment.n
    variance = max(v0 + v1, pooled_unit * sizes)
    if variance == 0:  # no spread yet (no conversion anywhere): no evidence either way
        current = Lift(difference, UNBOUNDED, relative, None, 1.0, 0.0)
    else:
        log_lr, interval = _mixture(difference, variance, 2 * pooled_unit, horizon, alpha)
        relative_interval = None
        ratio_variance = log_ratio_variance(control.mean, v0, treatment.mean, v1)
        overall = (control.n * control.mean + treatment.n * treatment.mean) / (control.n + treatment.n)
        if ratio_variance is not None and overall > 0:
            ratio_unit = pooled_unit / overall**2  # the log ratio's pooled unit variance: the delta method at 1
            _, log_interval = _mixture(math.log(treatment.mean / control.mean),
                                       max(ratio_variance, ratio_unit * sizes), 2 * ratio_unit, horizon, alpha)
            relative_interval = Interval(math.expm1(log_interval.lower), math.expm1(log_interval.upper))
        current = Lift(difference, interval, relative, relative_interval, min(1.0, math.exp(-log_lr)), log_lr)
    if previous is None:
        return current
    relative_interval = previous.relative_interval
    if current.relative_interval is not None:
        relative_interval = (current.relative_interval if relative_interval is None
                             else relative_interval.intersect(current.relative_interval))
    return Lift(
        absolute=current.absolute,
        absolute_interval=previous.absolute_interval.intersect(current.absolute_interval),
        relative=current.relative,
        relative_interval=relative_interval,
        p_value=min(previous.p_value, current.p_value),
        statistic=current.statistic,
    )


def _counts(conversions: int, exposures: int, side: str) -> None:
    for name, value in (("exposures", exposures), ("conversions", conversions)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValidationError("must be a whole number >= 0", field=f"{side}.{name}", value=value)
    if conversions > exposures:
        raise ValidationError(f"{conversions} conversions among {exposures} exposures", field=f"{side}.conversions",
                              value=conversions)


def msprt_proportions(control_conversions: int, control_exposures: int, treatment_conversions: int,
                      treatment_exposures: int, *, alpha: float = 0.05, horizon: int = DEFAULT_HORIZON,
                      previous: Lift | None = None) -> Lift:
    """Conversion rates compared so that any look, however often, keeps the error rate at alpha.

    Call it from the first exposure on: with too little data the interval is unbounded and p is 1.
    """
    alpha, horizon = check_alpha(alpha), _check_horizon(horizon)
    _counts(control_conversions, control_exposures, "control")
    _counts(treatment_conversions, treatment_exposures, "treatment")
    if control_exposures == 0 or treatment_exposures == 0:
        return previous or Lift(0.0, UNBOUNDED, None, None, 1.0, 0.0)
    p0 = control_conversions / control_exposures
    p1 = treatment_conversions / treatment_exposures
    pooled = (control_conversions + treatment_conversions) / (control_exposures + treatment_exposures)
    return _compare(_Group(p0, p0 * (1 - p0), control_exposures), _Group(p1, p1 * (1 - p1), treatment_exposures),
                    pooled * (1 - pooled), alpha, horizon, previous)


def msprt_means(control: Summary, treatment: Summary, *, alpha: float = 0.05, horizon: int = DEFAULT_HORIZON,
                previous: Lift | None = None) -> Lift:
    """Means (revenue per exposed customer, say) compared so that any look keeps the error rate at alpha."""
    alpha, horizon = check_alpha(alpha), _check_horizon(horizon)
    if control.n < 2 or treatment.n < 2:
        return previous or Lift(treatment.mean - control.mean, UNBOUNDED, None, None, 1.0, 0.0)
    n = control.n + treatment.n
    overall = (control.n * control.mean + treatment.n * treatment.mean) / n
    pooled = ((control.n - 1) * control.variance + (treatment.n - 1) * treatment.variance
              + control.n * (control.mean - overall) ** 2 + treatment.n * (treatment.mean - overall) ** 2) / (n - 1)
    return _compare(_Group(control.mean, control.variance, control.n),
                    _Group(treatment.mean, treatment.variance, treatment.n), pooled, alpha, horizon, previous)
