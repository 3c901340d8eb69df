"""Predicted customer value: BG/NBD for how often a customer buys and whether they are still a customer,
Gamma-Gamma for how much they spend per order, and the two combined into a discounted CLV.

* BG/NBD: Fader, Hardie and Lee (2005), "Counting Your Customers the Easy Way: An Alternative to the
  Pareto/NBD Model", Marketing Science 24(2). While alive a customer buys at rate lambda ~ Gamma(r, alpha);
  after each purchase they drop out with probability p ~ Beta(a, b).
* Gamma-Gamma: Fader, Hardie and Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base
  Analysis", Journal of Marketing Research 42(4), appendix. A customer's order values are Gamma(p, nu)
  with nu ~ Gamma(q, gamma), independent of how often they buy.

The inputs are per-customer summaries over a calibration period, in one time unit (days or weeks, as
`summarize_purchases` made them): frequency x (repeat purchase days), recency t_x (first to last purchase)
and age T (first purchase to the calibration end). Every likelihood is computed in logs (gammaln, betaln,
log-sum-exp), so customers with hundreds of purchases do not overflow. numpy and scipy are needed
(`pip install 'omnisdk[commerce]'`).

Incremental refresh: the fitted parameters describe the customer base, not a customer, so predictions for
the customers whose purchases changed are computed with the parameters as they are (`ValueModel.predict`
on those customers only); refit (`ValueModel.fit`) when the base itself may have changed, e.g. nightly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Literal

import attrs
import numpy as np
import numpy.typing as npt
from scipy import optimize, special

from .._errors import ValidationError

__all__ = [
    "BetaGeo",
    "CustomerValue",
    "GammaGamma",
    "PurchaseSummary",
    "ValueModel",
    "discounted_value",
    "summarize_purchases",
]

Floats = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike
Unit = Literal["days", "weeks"]
Moment = date | datetime
_DAYS_PER: dict[str, float] = {"days": 1.0, "weeks": 7.0}
_MONTH_DAYS = 365.25 / 12


@attrs.frozen
class PurchaseSummary:
    """One customer's calibration-period summary: `frequency` repeat purchase days, `recency` from the first
    to the last purchase day, `age` from the first purchase day to the calibration end (both in `unit`), and
    `monetary` the mean value of the repeat purchase days (0 without repeats, as Gamma-Gamma wants)."""

    frequency: int
    recency: float
    age: float
    monetary: float = 0.0
    unit: Unit = "weeks"


def summarize_purchases(
    purchases: Iterable[Moment | tuple[Moment, float]], *, end: Moment, unit: Unit = "weeks"
) -> PurchaseSummary | None:
    """Turn one customer's purchases (timestamps, or (timestamp, value) pairs) into a `PurchaseSummary`
    for the calibration period ending on `end` (inclusive).

    Purchases on one calendar day are one purchase with their values added, as in Fader and Hardie's CDNOW
    data: a basket split in two is not a repeat purchase. Days are the dates the timestamps carry, so convert
    them to the shop's time zone first. Purchases after `end` are left out (they are the holdout); a customer
    with none on or before `end` has no summary (None)."""
    if unit not in _DAYS_PER:
        raise ValidationError("must be 'days' or 'weeks'", field="unit", value=unit)
    last_day = _day(end)
    by_day: dict[date, float] = {}
    for item in purchases:
        when, value = item if isinstance(item, tuple) else (item, 0.0)
        day = _day(when)
        if day <= last_day:
            by_day[day] = by_day.get(day, 0.0) + float(value)
    if not by_day:
        return None
    days = sorted(by_day)
    first, scale = days[0], _DAYS_PER[unit]
    repeats = days[1:]
    return PurchaseSummary(
        frequency=len(repeats),
        recency=(days[-1] - first).days / scale,
        age=(last_day - first).days / scale,
        monetary=math.fsum(by_day[d] for d in repeats) / len(repeats) if repeats else 0.0,
        unit=unit,
    )


def _day(moment: Moment) -> date:
    return moment.date() if isinstance(moment, datetime) else moment


def _floats(values: ArrayLike, field: str) -> Floats:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValidationError("must be one-dimensional", field=field)
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValidationError("must be finite and non-negative", field=field)
    return array


def _summaries(frequency: ArrayLike, recency: ArrayLike, age: ArrayLike) -> tuple[Floats, Floats, Floats]:
    x, t_x, t = _floats(frequency, "frequency"), _floats(recency, "recency"), _floats(age, "age")
    if not x.shape == t_x.shape == t.shape:
        raise ValidationError("frequency, recency and age must have the same length", field="frequency")
    if np.any(t_x > t) or np.any((x == 0) & (t_x != 0)):
        raise ValidationError("recency must be <= age, and 0 when frequency is 0", field="recency")
    return x, t_x, t


def _weights(weights: ArrayLike | None, n: int) -> Floats:
    if weights is None:
        return np.ones(n)
    w = _floats(weights, "weights")
    if w.shape != (n,):
        raise ValidationError("must have one weight per customer", field="weights")
    return w


def _fit(objective: object, start: Floats, field: str) -> Floats:
    """Minimise a mean negative log-likelihood over log-parameters (so each stays positive)."""
    result = optimize.minimize(
        objective, start, jac=True, method="L-BFGS-B", options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-10}
    )
    # L-BFGS-B may stop on a failed line search at the optimum itself; a flat gradient there is converged
    settled = result.success or float(np.max(np.abs(result.jac))) < 1e-5
    if not settled or not np.all(np.isfinite(result.x)):
        raise ValidationError(f"the fit did not converge: {result.message}", field=field)
    return np.exp(np.asarray(result.x, dtype=np.float64))


@attrs.frozen
class BetaGeo:
    """A fitted BG/NBD model: purchase rate ~ Gamma(`r`, `alpha`), drop-out probability ~ Beta(`a`, `b`).
    Times are in the unit the summaries were fitted in."""

    r: float
    alpha: float
    a: float
    b: float

    @classmethod
    def fit(
        cls, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike, *, weights: ArrayLike | None = None
    ) -> BetaGeo:
        """Maximum-likelihood fit; `weights` counts identical customers, so a base can be passed grouped."""
        x, t_x, t = _summaries(frequency, recency, age)
        w = _weights(weights, len(x))
        if w.sum() == 0:
            raise ValidationError("there are no customers to fit", field="frequency")
        total = w.sum()

        def objective(log_params: Floats) -> tuple[float, Floats]:
            ll, grad = _bg_log_likelihood(np.exp(log_params), x, t_x, t, gradient=True)
            return -float(w @ ll) / total, -(grad @ w) * np.exp(log_params) / total

        r, alpha, a, b = _fit(objective, np.zeros(4), "frequency")
        return cls(r=float(r), alpha=float(alpha), a=float(a), b=float(b))

    def log_likelihood(self, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike) -> Floats:
        """Each customer's log-likelihood under these parameters (eq. 6 of the paper)."""
        return _bg_log_likelihood(self._params, *_summaries(frequency, recency, age), gradient=False)[0]

    def expected_purchases(self, t: float, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike) -> Floats:
        """Expected purchases in the next `t` time units for customers with these summaries (eq. 10)."""
        x, t_x, big_t = _summaries(frequency, recency, age)
        return self._expected(t, x, big_t) * self._alive(x, t_x, big_t)

    def expected_purchases_new(self, t: float) -> float:
        """Expected purchases in `t` time units of a customer just acquired (eq. 9)."""
        return float(self._expected(t, np.zeros(1), np.zeros(1))[0])

    def _expected(self, t: float, x: Floats, age: Floats) -> Floats:
        """(a+b+x-1)/(a-1) * [1 - (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z)], z = t/(alpha+T+t). Euler's
        transformation turns the product into (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z): small parameters,
        so a customer with thousands of purchases neither overflows 2F1 nor underflows the power."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + age + t)
        c = a + b + x - 1
        tail = 1.0 - np.power(1.0 - z, a - 1) * special.hyp2f1(a + b - 1 - r, a - 1, c, z)
        return np.asarray(c / (a - 1) * tail, dtype=np.float64)

    def probability_alive(self, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike) -> Floats:
        """P(still a customer at the end of the calibration period | summary); churn risk is 1 minus it."""
        return self._alive(*_summaries(frequency, recency, age))

    @property
    def _params(self) -> Floats:
        return np.array([self.r, self.alpha, self.a, self.b])

    def _alive(self, x: Floats, t_x: Floats, t: Floats) -> Floats:
        r, alpha, a, b = self._params
        repeat = x > 0
        log_odds = np.full(x.shape, -np.inf)
        xr = x[repeat]
        log_odds[repeat] = (
            math.log(a) - np.log(b + xr - 1) + (r + xr) * (np.log(alpha + t[repeat]) - np.log(alpha + t_x[repeat]))
        )
        return np.asarray(special.expit(-log_odds), dtype=np.float64)


def _bg_log_likelihood(params: Floats, x: Floats, t_x: Floats, t: Floats, *, gradient: bool) -> tuple[Floats, Floats]:
    """Per-customer log-likelihood and, when asked, its gradient in (r, alpha, a, b) (shape 4 x n)."""
    r, alpha, a, b = params
    repeat = x > 0
    first = -(r + x) * np.log(alpha + t)
    second = np.full(x.shape, -np.inf)
    second[repeat] = math.log(a) - np.log(b + x[repeat] - 1) - (r + x[repeat]) * np.log(alpha + t_x[repeat])
    mix = np.logaddexp(first, second)
    ll = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * math.log(alpha)
        + special.betaln(a, b + x)
        - special.betaln(a, b)
        + mix
    )
    if not gradient:
        return ll, np.empty((4, 0))
    share = np.exp(second - mix)  # weight of the "dropped out after the last purchase" term
    b_term = np.zeros(x.shape)
    b_term[repeat] = share[repeat] / (b + x[repeat] - 1)
    grad = np.stack(
        [
            special.digamma(r + x)
            - special.digamma(r)
            + math.log(alpha)
            - (1 - share) * np.log(alpha + t)
            - share * np.log(alpha + t_x),
            r / alpha - (r + x) * ((1 - share) / (alpha + t) + share / (alpha + t_x)),
            special.digamma(a + b) - special.digamma(a + b + x) + share / a,
            special.digamma(b + x) - special.digamma(a + b + x) - special.digamma(b) + special.digamma(a + b) - b_term,
        ]
    )
    return ll, grad


@attrs.frozen
class GammaGamma:
    """A fitted Gamma-Gamma spend model: order value ~ Gamma(`p`, nu), nu ~ Gamma(`q`, `gamma`)."""

    p: float
    q: float
    gamma: float

    @classmethod
    def fit(cls, frequency: ArrayLike, monetary: ArrayLike, *, weights: ArrayLike | None = None) -> GammaGamma:
        """Maximum-likelihood fit on the customers with repeat purchases and a positive mean value (the
        others carry no spend information and are left out)."""
        x, m = _floats(frequency, "frequency"), _floats(monetary, "monetary")
        if x.shape != m.shape:
            raise ValidationError("frequency and monetary must have the same length", field="monetary")
        w = _weights(weights, len(x))
        used = (x > 0) & (m > 0) & (w > 0)
        x, m, w = x[used], m[used], w[used]
        if not len(x):
            raise ValidationError("no customer has a repeat purchase with a value", field="monetary")
        total = w.sum()

        def objective(log_params: Floats) -> tuple[float, Floats]:
            ll, grad = _gg_log_likelihood(np.exp(log_params), x, m)
            return -float(w @ ll) / total, -(grad @ w) * np.exp(log_params) / total

        p, q, gamma = _fit(objective, np.zeros(3), "monetary")
        return cls(p=float(p), q=float(q), gamma=float(gamma))

    def expected_order_value(self, frequency: ArrayLike, monetary: ArrayLike) -> Floats:
        """E[mean order value | x, mean of the repeat orders]: the customer's own mean shrunk towards the
        base's mean p*gamma/(q-1), the more the fewer orders they made (eq. A3 of the appendix)."""
        if self.q <= 1:
            raise ValidationError("the mean order value is infinite when q <= 1", field="q", value=self.q)
        x, m = _floats(frequency, "frequency"), _floats(monetary, "monetary")
        return np.asarray((self.gamma + x * m) * self.p / (self.p * x + self.q - 1), dtype=np.float64)


def _gg_log_likelihood(params: Floats, x: Floats, m: Floats) -> tuple[Floats, Floats]:
    p, q, gamma = params
    px = p * x
    log_rest = np.log(gamma + x * m)
    ll = (
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * math.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * log_rest
    )
    grad = np.stack(
        [
            x * (special.digamma(px + q) - special.digamma(px) + np.log(m) + np.log(x) - log_rest),
            special.digamma(px + q) - special.digamma(q) + math.log(gamma) - log_rest,
            q / gamma - (px + q) / (gamma + x * m),
        ]
    )
    return ll, grad


def discounted_value(
    purchases: BetaGeo,
    spend: GammaGamma,
    frequency: ArrayLike,
    recency: ArrayLike,
    age: ArrayLike,
    monetary: ArrayLike,
    *,
    periods: int,
    period: float,
    discount_rate: float,
) -> Floats:
    """Predicted CLV: expected order value times the expected purchases in each of `periods` periods of
    `period` time units, each discounted by (1 + discount_rate) ** i. A sum over periods (like `lifetimes`)
    rather than the continuous DERT, because BG/NBD has no closed form for the latter."""
    if periods < 0 or period <= 0 or discount_rate <= -1:
        raise ValidationError("need periods >= 0, period > 0 and discount_rate > -1", field="periods")
    value = spend.expected_order_value(frequency, monetary)
    total = np.zeros(value.shape)
    before = np.zeros(value.shape)
    for i in range(1, periods + 1):
        after = purchases.expected_purchases(i * period, frequency, recency, age)
        total += (after - before) / (1 + discount_rate) ** i
        before = after
    return np.asarray(value * total, dtype=np.float64)


@attrs.frozen
class CustomerValue:
    """What the models predict for one customer: purchases expected over the horizon, the probability the
    customer is still one (churn risk is its complement), the expected order value and the discounted CLV."""

    expected_purchases: float
    probability_alive: float
    expected_order_value: float
    predicted_clv: float

    @property
    def churn_risk(self) -> float:
        return 1.0 - self.probability_alive


@attrs.frozen
class ValueModel:
    """BG/NBD and Gamma-Gamma fitted on one customer base, with the horizon predictions are made for:
    `periods` periods of `period` time units (12 months by default) discounted at `discount_rate` each."""

    purchases: BetaGeo
    spend: GammaGamma
    unit: Unit = "weeks"
    periods: int = 12
    period: float = attrs.field(default=attrs.Factory(lambda self: _MONTH_DAYS / _DAYS_PER[self.unit], takes_self=True))
    discount_rate: float = 0.01

    @classmethod
    def fit(
        cls,
        summaries: Iterable[PurchaseSummary],
        *,
        periods: int = 12,
        period: float | None = None,
        discount_rate: float = 0.01,
    ) -> ValueModel:
        """Fit both models on a customer base (all summaries in one unit); `period` defaults to a month."""
        x, t_x, t, m, unit = _columns(list(summaries))
        if period is None:
            period = _MONTH_DAYS / _DAYS_PER[unit]
        return cls(
            purchases=BetaGeo.fit(x, t_x, t),
            spend=GammaGamma.fit(x, m),
            unit=unit,
            periods=periods,
            period=period,
            discount_rate=discount_rate,
        )

    def predict(self, summaries: Mapping[str, PurchaseSummary]) -> dict[str, CustomerValue]:
        """Predictions for these customers (e.g. only those who bought since the last run) with the fitted
        parameters; the result for a customer does not depend on who else is in `summaries`."""
        ids = list(summaries)
        if not ids:
            return {}
        x, t_x, t, m, unit = _columns([summaries[i] for i in ids])
        if unit != self.unit:
            raise ValidationError(f"the model was fitted in {self.unit}", field="unit", value=unit)
        horizon = self.periods * self.period
        purchases = self.purchases.expected_purchases(horizon, x, t_x, t)
        alive = self.purchases.probability_alive(x, t_x, t)
        order_value = self.spend.expected_order_value(x, m)
        clv = discounted_value(
            self.purchases,
            self.spend,
            x,
            t_x,
            t,
            m,
            periods=self.periods,
            period=self.period,
            discount_rate=self.discount_rate,
        )
        return {
            customer: CustomerValue(
                expected_purchases=float(purchases[i]),
                probability_alive=float(alive[i]),
                expected_order_value=float(order_value[i]),
                predicted_clv=float(clv[i]),
            )
            for i, customer in enumerate(ids)
        }


def _columns(summaries: list[PurchaseSummary]) -> tuple[Floats, Floats, Floats, Floats, Unit]:
    units = {s.unit for s in summaries}
    if len(units) > 1:
        raise ValidationError("summaries mix days and weeks", field="unit", value=sorted(units))
    unit: Unit = units.pop() if units else "weeks"
    columns = np.array([(s.frequency, s.recency, s.age, s.monetary) for s in summaries], dtype=np.float64)
    columns = columns.reshape(-1, 4)
    return columns[:, 0], columns[:, 1], columns[:, 2], columns[:, 3], unit
