"""Fixed-horizon comparisons of a variant with its control, and what they share with the sequential ones.

Each test compares a treatment with a control and returns a `Lift`: the absolute difference
(treatment - control) and the relative one (treatment / control - 1), each with an interval, and a
two-sided p-value. The formulas are the textbook ones, chosen to equal the reference implementations:

* conversion rates: the pooled two-proportion z-test (statsmodels `proportions_ztest`), a Wald interval
  for the difference and a log interval for the ratio (statsmodels `confint_proportions_2indep` with
  `method="wald"` and `method="log"`);
* means, e.g. revenue per exposed customer: Welch's t-test with its interval (scipy `ttest_ind` with
  `equal_var=False`), and the delta-method interval of the log ratio of means, the same formula as the
  proportions' log interval.

Only Student's t needs scipy, and it is imported by `welch_t_test` alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import attrs

from .._errors import ValidationError

__all__ = [
    "Interval",
    "Lift",
    "Summary",
    "bonferroni",
    "check_alpha",
    "holm",
    "relative_lift",
    "two_proportion_z_test",
    "welch_t_test",
]

_NORMAL = NormalDist()


@attrs.frozen
class Interval:
    """A closed interval; infinite ends mean the data say nothing yet."""

    lower: float
    upper: float

    def __contains__(self, value: float) -> bool:
        return self.lower <= value <= self.upper

    def intersect(self, other: Interval) -> Interval:
        """The values in both; when there are none (a miss that happens with probability under alpha)
        `other` is kept, so an interval never turns inside out."""
        lower, upper = max(self.lower, other.lower), min(self.upper, other.upper)
        return Interval(lower, upper) if lower <= upper else other


UNBOUNDED = Interval(-math.inf, math.inf)


def _count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError("must be a whole number >= 0", field=field, value=value)
    return value


def _finite(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError("must be a finite number", field=field, value=value)
    return float(value)


def _size(value: int) -> int:
    return _count(value, "n")


def _mean(value: float) -> float:
    return _finite(value, "mean")


def _variance(value: float) -> float:
    variance = _finite(value, "variance")
    if variance < 0:
        raise ValidationError("must be >= 0", field="variance", value=value)
    return variance


@attrs.frozen
class Summary:
    """What a mean comparison needs of one group: size, mean and sample variance (denominator n - 1).

    Build it from the values (`Summary.of`) or from the sums a database returns (`Summary.from_sums`).
    """

    n: int = attrs.field(converter=_size)
    mean: float = attrs.field(converter=_mean)
    variance: float = attrs.field(converter=_variance)

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary:
        """From the values themselves, in two passes so the variance does not lose digits."""
        data = [float(value) for value in values]
        n = len(data)
        if n == 0:
            return cls(0, 0.0, 0.0)
        mean = math.fsum(data) / n
        variance = math.fsum((value - mean) ** 2 for value in data) / (n - 1) if n > 1 else 0.0
        return cls(n, mean, variance)

    @classmethod
    def from_sums(cls, n: int, total: float, total_of_squares: float) -> Summary:
        """From n, the sum and the sum of squares (what `COUNT`, `SUM(x)` and `SUM(x * x)` give)."""
        n = _count(n, "n")
        if n == 0:
            return cls(0, 0.0, 0.0)
        mean = total / n
        variance = max(total_of_squares - total * mean, 0.0) / (n - 1) if n > 1 else 0.0
        return cls(n, mean, variance)


@attrs.frozen
class Lift:
    """A treatment against its control on one metric.

    `statistic` is z for the z-test, t for Welch's test (with `degrees_of_freedom`), and the log of the
    mixture likelihood ratio for the sequential tests. `relative` is None when the control's value is 0;
    `relative_interval` is None unless both values are above 0.
    """

    absolute: float
    absolute_interval: Interval
    relative: float | None
    relative_interval: Interval | None
    p_value: float
    statistic: float
    degrees_of_freedom: float | None = None


def check_alpha(alpha: float) -> float:
    """The error rate, refused unless strictly between 0 and 1."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ValidationError("must be a number strictly between 0 and 1", field="alpha", value=alpha)
    return float(alpha)


@lru_cache(maxsize=64)
def normal_quantile(probability: float) -> float:
    """The standard normal quantile (the same digits as scipy's `norm.ppf`)."""
    return _NORMAL.inv_cdf(probability)


def two_sided_normal_p(z: float) -> float:
    """P(|Z| >= |z|), from erfc so small p-values keep their digits."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def relative_lift(control: float, treatment: float) -> float | None:
    """treatment / control - 1, or None when the control's value is 0."""
    return treatment / control - 1.0 if control != 0 else None


def log_ratio_variance(control: float, control_variance: float, treatment: float,
                       treatment_variance: float) -> float | None:
    """The delta-method variance of log(treatment / control), given each estimate's variance."""
    if control <= 0 or treatment <= 0:
        return None
    return control_variance / control**2 + treatment_variance / treatment**2


def _proportion(conversions: int, exposures: int, side: str) -> float:
    exposures = _count(exposures, f"{side}.exposures")
    conversions = _count(conversions, f"{side}.conversions")
    if exposures == 0:
        raise ValidationError("needs at least one exposure", field=f"{side}.exposures", value=exposures)
    if conversions > exposures:
        raise ValidationError(f"{conversions} conversions among {exposures} exposures", field=f"{side}.conversions",
                              value=conversions)
    return conversions / exposures


def two_proportion_z_test(control_conversions: int, control_exposures: int, treatment_conversions: int,
                          treatment_exposures: int, *, alpha: float = 0.05) -> Lift:
    """Conversion rates compared at a planned sample size: look once, at the end.

    The test pools the two groups (their rates are equal under the null); the intervals do not.
    """
    z_crit = normal_quantile(1 - check_alpha(alpha) / 2)
    p0 = _proportion(control_conversions, control_exposures, "control")
    p1 = _proportion(treatment_conversions, treatment_exposures, "treatment")
    n0, n1 = control_exposures, treatment_exposures
    difference = p1 - p0
    pooled = (control_conversions + treatment_conversions) / (n0 + n1)
    null_variance = pooled * (1 - pooled) * (1 / n0 + 1 / n1)
    if null_variance == 0:  # nobody or everybody converted: no evidence either way
        return Lift(difference, UNBOUNDED, relative_lift(p0, p1), None, 1.0, 0.0)
    z = difference / math.sqrt(null_variance)
    variance = p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1
    half = z_crit * math.sqrt(variance) if variance > 0 else math.inf
    ratio_variance = log_ratio_variance(p0, p0 * (1 - p0) / n0, p1, p1 * (1 - p1) / n1)
    return Lift(
        absolute=difference,
        absolute_interval=Interval(difference - half, difference + half),
        relative=relative_lift(p0, p1),
        relative_interval=_relative_interval(p0, p1, ratio_variance, z_crit),
        p_value=two_sided_normal_p(z),
        statistic=z,
    )


def _relative_interval(control: float, treatment: float, ratio_variance: float | None,
                       z_crit: float) -> Interval | None:
    if ratio_variance is None:
        return None
    log_ratio = math.log(treatment / control)
    half = z_crit * math.sqrt(ratio_variance)
    return Interval(math.expm1(log_ratio - half), math.expm1(log_ratio + half))


def _needs_scipy() -> Any:
    try:
        from scipy import special
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"Welch's t-test needs scipy ({error.name} is missing): pip install 'omnisdk[experiments]'",
            name=error.name,
        ) from error
    return special


def welch_t_test(control: Summary, treatment: Summary, *, alpha: float = 0.05) -> Lift:
    """Means (revenue per exposed customer, say) compared at a planned sample size, variances unequal."""
    alpha = check_alpha(alpha)
    for side, group in (("control", control), ("treatment", treatment)):
        if group.n < 2:
            raise ValidationError("needs at least 2 observations", field=f"{side}.n", value=group.n)
    special = _needs_scipy()
    v0, v1 = control.variance / control.n, treatment.variance / treatment.n
    difference = treatment.mean - control.mean
    relative = relative_lift(control.mean, treatment.mean)
    variance = v0 + v1
    if variance == 0:  # both groups constant: no spread to judge a difference by
        return Lift(difference, UNBOUNDED, relative, None, 1.0, 0.0)
    df = variance**2 / (v0**2 / (control.n - 1) + v1**2 / (treatment.n - 1))
    se = math.sqrt(variance)
    t = difference / se
    half = float(special.stdtrit(df, 1 - alpha / 2)) * se
    ratio_variance = log_ratio_variance(control.mean, v0, treatment.mean, v1)
    return Lift(
        absolute=difference,
        absolute_interval=Interval(difference - half, difference + half),
        relative=relative,
        relative_interval=_relative_interval(control.mean, treatment.mean, ratio_variance,
                                             normal_quantile(1 - alpha / 2)),
        p_value=float(2 * special.stdtr(df, -abs(t))),
        statistic=t,
        degrees_of_freedom=df,
    )


def _p_values(p_values: Mapping[str, float]) -> dict[str, float]:
    checked = {}
    for name, p in p_values.items():
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
            raise ValidationError("must be a probability in [0, 1]", field=f"p_values.{name}", value=p)
        checked[name] = float(p)
    return checked


def bonferroni(p_values: Mapping[str, float]) -> dict[str, float]:
    """Each p-value times the number of comparisons (capped at 1): valid under any dependence."""
    checked = _p_values(p_values)
    return {name: min(1.0, p * len(checked)) for name, p in checked.items()}


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment: never less powerful than Bonferroni, valid under any dependence.

    Applied at each look to always-valid p-values it stays always valid: the first true null it rejects
    must beat alpha / (number of true nulls), which the union bound covers at every look at once.
    """
    checked = _p_values(p_values)
    m = len(checked)
    adjusted: dict[str, float] = {}
    running = 0.0
    for rank, (name, p) in enumerate(sorted(checked.items(), key=lambda item: item[1])):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[name] = running
    return {name: adjusted[name] for name in checked}
