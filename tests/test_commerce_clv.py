"""Predicted customer value: BG/NBD and Gamma-Gamma on Fader and Hardie's CDNOW sample.

The data ships in the `lifetimes` wheel (MIT licence; a test dependency, read where it is installed): the
2,357-customer CDNOW sample's transactions and its 39-week calibration summary. `lifetimes`' own
BetaGeoFitter and GammaGammaFitter are the independent implementation predictions are checked against;
a simulation of the model checks what neither closed form can vouch for by itself.
"""

from __future__ import annotations

import csv
import math
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pytest import approx

from omnisdk import ValidationError
from omnisdk.commerce import (
    BetaGeo,
    CustomerValue,
    GammaGamma,
    PurchaseSummary,
    ValueModel,
    discounted_value,
    summarize_purchases,
)

lifetimes = pytest.importorskip("lifetimes", reason="the CDNOW data and the oracle come with the test extra")
pd = pytest.importorskip("pandas")

DATA = Path(lifetimes.__file__).parent / "datasets"
CALIBRATION_END = date(1997, 9, 30)  # the end of week 39 of the CDNOW study


@pytest.fixture(scope="module")
def cdnow() -> dict[str, np.ndarray]:
    """The published calibration summary: x, t_x, T (weeks) and zbar, the mean of the repeat orders."""
    with (DATA / "cdnow_customers_summary_with_transactions.csv").open() as f:
        rows = list(csv.DictReader(f))
    return {key: np.array([float(row[key]) for row in rows]) for key in ("ID", "x", "t_x", "T", "zbar")}


@pytest.fixture(scope="module")
def fitted(cdnow: dict[str, np.ndarray]) -> tuple[BetaGeo, GammaGamma]:
    return BetaGeo.fit(cdnow["x"], cdnow["t_x"], cdnow["T"]), GammaGamma.fit(cdnow["x"], cdnow["zbar"])


def test_bg_nbd_reproduces_the_published_parameters(fitted: tuple[BetaGeo, GammaGamma]) -> None:
    purchases, _ = fitted
    published = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # Fader, Hardie and Lee (2005), section 5
    assert {name: getattr(purchases, name) for name in published} == approx(published, rel=0.01)


def test_gamma_gamma_reproduces_the_published_parameters(fitted: tuple[BetaGeo, GammaGamma]) -> None:
    _, spend = fitted
    published = {"p": 6.25, "q": 3.74, "gamma": 15.44}  # Fader, Hardie and Lee (2005), "RFM and CLV", appendix
    assert {name: getattr(spend, name) for name in published} == approx(published, rel=0.01)


def test_the_fit_is_the_maximum_of_the_likelihood(
    cdnow: dict[str, np.ndarray], fitted: tuple[BetaGeo, GammaGamma]
) -> None:
    purchases, _ = fitted
    best = purchases.log_likelihood(cdnow["x"], cdnow["t_x"], cdnow["T"]).sum()
    assert best == approx(-9582.43, abs=0.01)  # the paper's maximised log-likelihood
    for name in ("r", "alpha", "a", "b"):
        for step in (0.995, 1.005):
            nudged = BetaGeo(**{**vars_of(purchases), name: getattr(purchases, name) * step})
            assert nudged.log_likelihood(cdnow["x"], cdnow["t_x"], cdnow["T"]).sum() < best


def vars_of(model: BetaGeo) -> dict[str, float]:
    return {"r": model.r, "alpha": model.alpha, "a": model.a, "b": model.b}


def test_summaries_from_the_transactions_match_the_published_summary(cdnow: dict[str, np.ndarray]) -> None:
    """CDNOW_sample.txt holds every order of the 2,357 customers to June 1998; the summary is the first 39
    weeks, orders on one day counted once and their values added."""
    orders: dict[int, list[tuple[date, float]]] = {}
    for line in (DATA / "CDNOW_sample.txt").read_text().splitlines():
        _, customer, day, _, value = line.split()
        orders.setdefault(int(customer), []).append((datetime.strptime(day, "%Y%m%d").date(), float(value)))
    for i, customer in enumerate(cdnow["ID"].astype(int)):
        summary = summarize_purchases(orders[customer], end=CALIBRATION_END, unit="weeks")
        assert summary is not None
        assert summary.frequency == cdnow["x"][i]
        rounding = 0.005 + 1e-9  # the file has two decimals
        assert summary.recency == approx(cdnow["t_x"][i], abs=rounding)
        assert summary.age == approx(cdnow["T"][i], abs=rounding)
        assert summary.monetary == approx(cdnow["zbar"][i], abs=rounding)


def test_summaries_count_days_and_leave_out_the_holdout() -> None:
    purchases = [datetime(2026, 1, 1, 9), datetime(2026, 1, 1, 18), datetime(2026, 1, 8), datetime(2026, 2, 1)]
    assert summarize_purchases(purchases, end=date(2026, 1, 15), unit="days") == PurchaseSummary(
        frequency=1, recency=7.0, age=14.0, monetary=0.0, unit="days"
    )
    with_values = [
        (date(2026, 1, 1), 10.0),
        (date(2026, 1, 8), 5.0),
        (date(2026, 1, 8), 7.0),
        (date(2026, 1, 22), 30.0),
    ]
    assert summarize_purchases(with_values, end=datetime(2026, 1, 29, 23), unit="weeks") == PurchaseSummary(
        frequency=2, recency=3.0, age=4.0, monetary=21.0, unit="weeks"
    )
    assert summarize_purchases([date(2026, 3, 1)], end=date(2026, 2, 1)) is None
    with pytest.raises(ValidationError, match="unit"):
        summarize_purchases([date(2026, 1, 1)], end=date(2026, 2, 1), unit="months")  # type: ignore[arg-type]


def lifetimes_models(purchases: BetaGeo, spend: GammaGamma) -> tuple[Any, Any]:
    """lifetimes' fitters carrying our parameters, so the comparison is of the formulas alone."""
    bgf = lifetimes.BetaGeoFitter()
    bgf.params_ = pd.Series(vars_of(purchases))
    bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time  # what its fit() would set
    ggf = lifetimes.GammaGammaFitter()
    ggf.params_ = pd.Series({"p": spend.p, "q": spend.q, "v": spend.gamma})
    return bgf, ggf


def test_predictions_agree_with_lifetimes(cdnow: dict[str, np.ndarray], fitted: tuple[BetaGeo, GammaGamma]) -> None:
    purchases, spend = fitted
    bgf, ggf = lifetimes_models(purchases, spend)
    x, t_x, t = cdnow["x"], cdnow["t_x"], cdnow["T"]
    for horizon in (1.0, 39.0, 78.0, 520.0):
        ours = purchases.expected_purchases(horizon, x, t_x, t)
        theirs = bgf.conditional_expected_number_of_purchases_up_to_time(horizon, x, t_x, t)
        assert ours == approx(np.asarray(theirs), rel=1e-9)
        assert purchases.expected_purchases_new(horizon) == approx(
            bgf.expected_number_of_purchases_up_to_time(horizon), rel=1e-9
        )
    assert purchases.probability_alive(x, t_x, t) == approx(
        np.asarray(bgf.conditional_probability_alive(x, t_x, t)), rel=1e-9
    )
    assert spend.expected_order_value(x, cdnow["zbar"]) == approx(
        np.asarray(ggf.conditional_expected_average_profit(x, cdnow["zbar"])), rel=1e-9
    )
    index = pd.Index(range(len(x)))
    theirs_clv = ggf.customer_lifetime_value(
        bgf,
        pd.Series(x, index),
        pd.Series(t_x, index),
        pd.Series(t, index),
        pd.Series(cdnow["zbar"], index),
        time=12,
        discount_rate=0.01,
        freq="W",
    )
    ours_clv = discounted_value(
        purchases, spend, x, t_x, t, cdnow["zbar"], periods=12, period=4.345, discount_rate=0.01
    )
    assert ours_clv == approx(np.asarray(theirs_clv), rel=1e-9)


def test_the_fits_agree_with_lifetimes_and_ours_is_no_worse(
    cdnow: dict[str, np.ndarray], fitted: tuple[BetaGeo, GammaGamma]
) -> None:
    purchases, spend = fitted
    x, t_x, t = cdnow["x"], cdnow["t_x"], cdnow["T"]
    bgf = lifetimes.BetaGeoFitter().fit(x, t_x, t)
    ggf = lifetimes.GammaGammaFitter().fit(x[x > 0], cdnow["zbar"][x > 0])
    assert vars_of(purchases) == approx(dict(bgf.params_), rel=1e-3)
    assert [spend.p, spend.q, spend.gamma] == approx(list(ggf.params_), rel=1e-3)
    theirs = BetaGeo(**dict(bgf.params_))
    assert purchases.log_likelihood(x, t_x, t).sum() >= theirs.log_likelihood(x, t_x, t).sum() - 1e-9


def test_a_customer_with_thousands_of_purchases_is_computed_exactly(fitted: tuple[BetaGeo, GammaGamma]) -> None:
    """The textbook product (1-z)^(r+x) * 2F1(r+x, ...) over/underflows for large x; check against 60 digits."""
    mpmath = pytest.importorskip("mpmath")
    purchases, _ = fitted
    mpmath.mp.dps = 60
    r, alpha, a, b = (mpmath.mpf(v) for v in vars_of(purchases).values())
    for x, t_x, age, horizon in ((5000, 100.0, 100.0, 52.0), (2000, 80.0, 100.0, 10.0), (300, 38.0, 39.0, 39.0)):
        z = horizon / (alpha + age + horizon)
        tail = 1 - (1 - z) ** (r + x) * mpmath.hyp2f1(r + x, b + x, a + b + x - 1, z)
        alive = 1 / (1 + a / (b + x - 1) * ((alpha + age) / (alpha + t_x)) ** (r + x))
        exact = float((a + b + x - 1) / (a - 1) * tail * alive)
        assert purchases.expected_purchases(horizon, [x], [t_x], [age])[0] == approx(exact, rel=1e-9)
        assert purchases.probability_alive([x], [t_x], [age])[0] == approx(float(alive), rel=1e-12)
        assert math.isfinite(purchases.log_likelihood([x], [t_x], [age])[0])


def simulate(model: BetaGeo, customers: int, seed: int) -> tuple[np.ndarray, ...]:
    """Customers drawn from the BG/NBD story itself: rate ~ Gamma(r, alpha), drop-out ~ Beta(a, b) after
    each repeat purchase; ages between 30 and 39 weeks, then a 39-week holdout."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(model.r, 1 / model.alpha, customers)
    drop = rng.beta(model.a, model.b, customers)
    ages = rng.uniform(30.0, 39.0, customers)
    x, t_x, holdout, alive = (np.zeros(customers) for _ in range(4))
    for i in range(customers):
        now, active = 0.0, True
        while active:
            now += rng.exponential(1 / rates[i]) if rates[i] > 0 else math.inf
            if now > ages[i] + 39.0:
                break
            if now <= ages[i]:
                x[i], t_x[i] = x[i] + 1, now
            else:
                holdout[i] += 1
            active = rng.random() >= drop[i]
        alive[i] = active or now > ages[i]
    return x, t_x, ages, holdout, alive


def test_predictions_match_a_simulation_of_the_model(fitted: tuple[BetaGeo, GammaGamma]) -> None:
    """Averaged over customers, E[holdout purchases | summary] is the mean of the holdout purchases and
    P(alive | summary) the share alive at the end of calibration (the tower rule), whoever the customers are."""
    truth, _ = fitted
    x, t_x, ages, holdout, alive = simulate(truth, 20_000, seed=17)
    expected = truth.expected_purchases(39.0, x, t_x, ages)
    error = holdout.std() / math.sqrt(len(x))
    assert abs(expected.mean() - holdout.mean()) < 3 * error
    repeaters = x >= 2  # the customers where the model has something to say
    assert abs(truth.expected_purchases(39.0, x, t_x, ages)[repeaters].mean() - holdout[repeaters].mean()) < 3 * (
        holdout[repeaters].std() / math.sqrt(repeaters.sum())
    )
    p_alive = truth.probability_alive(x, t_x, ages)
    assert abs(p_alive.mean() - alive.mean()) < 3 * math.sqrt(alive.mean() * (1 - alive.mean()) / len(x))
    refit = BetaGeo.fit(x, t_x, ages)
    assert vars_of(refit) == approx(vars_of(truth), rel=0.15)


def test_value_model_refreshes_changed_customers_with_the_fitted_parameters(cdnow: dict[str, np.ndarray]) -> None:
    summaries = {
        f"c-{int(i)}": PurchaseSummary(frequency=int(x), recency=t_x, age=t, monetary=m)
        for i, x, t_x, t, m in zip(cdnow["ID"], cdnow["x"], cdnow["t_x"], cdnow["T"], cdnow["zbar"], strict=True)
    }
    model = ValueModel.fit(summaries.values())
    assert model.purchases.r == approx(0.243, rel=0.01) and model.period == approx(365.25 / 12 / 7)
    everyone = model.predict(summaries)
    changed = {"c-1": summaries["c-1"], "c-3": summaries["c-3"]}
    assert model.predict(changed) == {name: everyone[name] for name in changed}
    # c-1 buys again a week after the calibration: only c-1 is recomputed, with the same parameters
    later = PurchaseSummary(frequency=3, recency=39.86, age=39.86, monetary=(2 * 22.35 + 30.0) / 3)
    refreshed = model.predict({"c-1": later})["c-1"]
    assert refreshed.probability_alive > everyone["c-1"].probability_alive
    assert refreshed.churn_risk == approx(1 - refreshed.probability_alive)
    assert refreshed.predicted_clv > everyone["c-1"].predicted_clv > 0
    new = everyone["c-3"]  # one purchase, none repeated: the base's averages
    assert new.expected_order_value == approx(model.spend.p * model.spend.gamma / (model.spend.q - 1))
    assert new.probability_alive == 1.0
    assert isinstance(new, CustomerValue) and model.predict({}) == {}


def test_days_and_weeks_give_the_same_customer_value(cdnow: dict[str, np.ndarray]) -> None:
    """The unit is a scale: fitted in days, alpha is 7 times larger and the predictions are the same."""
    columns = zip(cdnow["x"], cdnow["t_x"], cdnow["T"], cdnow["zbar"], strict=True)
    weeks = [PurchaseSummary(int(x), t_x, t, m, "weeks") for x, t_x, t, m in columns]
    days = [PurchaseSummary(s.frequency, s.recency * 7, s.age * 7, s.monetary, "days") for s in weeks]
    in_weeks, in_days = ValueModel.fit(weeks), ValueModel.fit(days)
    assert in_days.purchases.alpha == approx(7 * in_weeks.purchases.alpha, rel=1e-4)
    one_w = in_weeks.predict({"c": weeks[0]})["c"]
    one_d = in_days.predict({"c": days[0]})["c"]
    assert one_d.predicted_clv == approx(one_w.predicted_clv, rel=1e-4)
    with pytest.raises(ValidationError, match="fitted in weeks"):
        in_weeks.predict({"c": days[0]})
    with pytest.raises(ValidationError, match="mix"):
        ValueModel.fit([weeks[0], days[1]])


def test_invalid_summaries_are_refused() -> None:
    with pytest.raises(ValidationError, match="recency"):
        BetaGeo.fit([1, 2], [5.0, 3.0], [4.0, 10.0])
    with pytest.raises(ValidationError, match="recency"):
        BetaGeo.fit([0], [1.0], [4.0])
    with pytest.raises(ValidationError, match="non-negative"):
        BetaGeo.fit([-1], [0.0], [4.0])
    with pytest.raises(ValidationError, match="same length"):
        BetaGeo.fit([1, 2], [1.0], [4.0])
    with pytest.raises(ValidationError, match="repeat purchase"):
        GammaGamma.fit([0, 0], [0.0, 0.0])
    with pytest.raises(ValidationError, match="q <= 1"):
        GammaGamma(p=1.0, q=0.5, gamma=1.0).expected_order_value([1], [10.0])


def test_grouped_customers_fit_like_the_customers_themselves(cdnow: dict[str, np.ndarray]) -> None:
    rows = np.stack([cdnow["x"], cdnow["t_x"], cdnow["T"]], axis=1)
    unique, counts = np.unique(rows, axis=0, return_counts=True)
    grouped = BetaGeo.fit(unique[:, 0], unique[:, 1], unique[:, 2], weights=counts)
    assert len(unique) < len(rows)
    assert vars_of(grouped) == approx(vars_of(BetaGeo.fit(rows[:, 0], rows[:, 1], rows[:, 2])), rel=1e-5)


def test_the_horizon_is_discounted_per_period(fitted: tuple[BetaGeo, GammaGamma]) -> None:
    purchases, spend = fitted
    args = ([2], [30.43], [38.86], [22.35])
    flat = discounted_value(purchases, spend, *args, periods=12, period=4.345, discount_rate=0.0)
    whole = purchases.expected_purchases(12 * 4.345, *args[:3]) * spend.expected_order_value([2], [22.35])
    assert flat == approx(whole)
    assert discounted_value(purchases, spend, *args, periods=12, period=4.345, discount_rate=0.01) < flat
    assert discounted_value(purchases, spend, *args, periods=0, period=4.345, discount_rate=0.01) == approx([0.0])
