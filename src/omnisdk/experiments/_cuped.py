"""CUPED: take out of each customer's outcome the part their pre-period behaviour already predicted.

Deng, Xu, Kohavi and Walker (2013). With a covariate x measured before the experiment (say, revenue in
the 30 days before exposure), each outcome y becomes y - theta * (x - mean of x). Assignment is random,
so the covariate is independent of the variant and the adjustment moves no difference in expectation,
but it removes the variance x explains: a fraction rho^2 when x and y correlate by rho. theta is the
pooled within-variant slope of y on x, which makes the adjusted difference of two groups exactly the
treatment coefficient of the regression y ~ variant + x (ANCOVA).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import attrs

from .._errors import ValidationError
from ._stats import Summary

__all__ = ["CupedAdjustment", "cuped"]


@attrs.frozen
class CupedAdjustment:
    """The adjusted groups, ready for `welch_t_test` or `msprt_means`, and the slope that adjusted them."""

    theta: float
    summaries: dict[str, Summary]


def cuped(outcomes: Mapping[str, Sequence[float]], covariates: Mapping[str, Sequence[float]]) -> CupedAdjustment:
    """Adjust each variant's outcomes by the same pre-period covariate, one value per customer."""
    if not outcomes or set(outcomes) != set(covariates):
        raise ValidationError("needs the same variants, at least one, in outcomes and covariates",
                              field="covariates", value=sorted(covariates))
    groups: dict[str, tuple[list[float], list[float]]] = {}
    for name, ys in outcomes.items():
        y, x = [float(v) for v in ys], [float(v) for v in covariates[name]]
        if len(y) != len(x):
            raise ValidationError(f"{len(x)} covariates for {len(y)} outcomes", field=f"covariates.{name}",
                                  value=len(x))
        if not all(map(math.isfinite, y + x)):
            raise ValidationError("must all be finite numbers", field=f"outcomes.{name}")
        groups[name] = (y, x)
    covariance = variance = 0.0
    for y, x in groups.values():
        if y:
            my, mx = math.fsum(y) / len(y), math.fsum(x) / len(x)
            covariance += math.fsum((xi - mx) * (yi - my) for xi, yi in zip(x, y, strict=True))
            variance += math.fsum((xi - mx) ** 2 for xi in x)
    theta = covariance / variance if variance > 0 else 0.0
    everyone = [xi for _, x in groups.values() for xi in x]
    centre = math.fsum(everyone) / len(everyone) if everyone else 0.0
    return CupedAdjustment(
        theta=theta,
        summaries={name: Summary.of(yi - theta * (xi - centre) for yi, xi in zip(y, x, strict=True))
                   for name, (y, x) in groups.items()},
    )
