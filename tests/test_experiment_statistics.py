"""The statistics against their references: statsmodels and scipy for the fixed-horizon tests, the mixture
integral itself for the sequential one, statsmodels' OLS for CUPED and multipletests for the corrections."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats
from statsmodels.api import OLS, add_constant
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from omnisdk import ValidationError
from omnisdk.experiments import (
    Interval,
    Lift,
    Split,
    Summary,
    bonferroni,
    cuped,
    holm,
    msprt_means,
    msprt_proportions,
    thompson_shares,
    two_proportion_z_test,
    welch_t_test,
)


def same(expected: float) -> object:
    return pytest.approx(expected, rel=1e-9, abs=1e-12)


# (control conversions, control exposures, treatment conversions, treatment exposures)
PROPORTIONS = [(100, 2100, 130, 2000), (5, 50, 1, 70), (4812, 100_000, 5004, 99_000), (300, 1000, 300, 1000)]


@pytest.mark.parametrize(("x0", "n0", "x1", "n1"), PROPORTIONS)
def test_z_test_equals_statsmodels(x0: int, n0: int, x1: int, n1: int) -> None:
    lift = two_proportion_z_test(x0, n0, x1, n1, alpha=0.05)
    z, p = proportions_ztest([x1, x0], [n1, n0])
    assert (lift.statistic, lift.p_value) == (same(z), same(p))
    assert lift.absolute == same(x1 / n1 - x0 / n0)
    low, upp = confint_proportions_2indep(x1, n1, x0, n0, method="wald", compare="diff", alpha=0.05)
    assert lift.absolute_interval == Interval(same(low), same(upp))  # type: ignore[arg-type]
    low, upp = confint_proportions_2indep(x1, n1, x0, n0, method="log", compare="ratio", alpha=0.05)
    assert lift.relative == same((x1 / n1) / (x0 / n0) - 1)
    assert lift.relative_interval == Interval(same(low - 1), same(upp - 1))  # type: ignore[arg-type]


def test_z_test_at_another_alpha_equals_statsmodels() -> None:
    lift = two_proportion_z_test(100, 2100, 130, 2000, alpha=0.01)
    low, upp = confint_proportions_2indep(130, 2000, 100, 2100, method="wald", alpha=0.01)
    assert lift.absolute_interval == Interval(same(low), same(upp))  # type: ignore[arg-type]


SAMPLES = [(0, 500, 700, 1.1), (1, 40, 25, 1.0), (2, 5000, 5000, 0.97)]


@pytest.mark.parametrize(("seed", "n0", "n1", "uplift"), SAMPLES)
def test_welch_equals_scipy(seed: int, n0: int, n1: int, uplift: float) -> None:
    rng = np.random.default_rng(seed)
    control = rng.binomial(1, 0.1, n0) * rng.gamma(2.0, 30.0, n0)
    treatment = rng.binomial(1, 0.1, n1) * rng.gamma(2.0, 30.0 * uplift, n1)
    lift = welch_t_test(Summary.of(control), Summary.of(treatment))
    reference = stats.ttest_ind(treatment, control, equal_var=False)
    assert (lift.statistic, lift.p_value, lift.degrees_of_freedom) == (
        same(reference.statistic), same(reference.pvalue), same(reference.df))
    ci = reference.confidence_interval(0.95)
    assert lift.absolute_interval == Interval(same(ci.low), same(ci.high))  # type: ignore[arg-type]
    # the relative interval is the delta method on the log ratio of the means
    m0, m1 = control.mean(), treatment.mean()
    se = math.sqrt(control.var(ddof=1) / n0 / m0**2 + treatment.var(ddof=1) / n1 / m1**2)
    z = stats.norm.ppf(0.975)
    assert lift.relative_interval == Interval(same(m1 / m0 * math.exp(-z * se) - 1),  # type: ignore[arg-type]
                                              same(m1 / m0 * math.exp(z * se) - 1))


def test_summary_from_sums_equals_summary_of_values() -> None:
    values = [0.0, 0.0, 12.5, 40.0, 0.0, 7.25]
    expected = Summary.of(values)
    got = Summary.from_sums(len(values), sum(values), sum(v * v for v in values))
    assert (got.n, got.mean, got.variance) == (expected.n, same(expected.mean), same(expected.variance))
    assert expected.variance == same(float(np.var(values, ddof=1)))


def test_no_conversions_anywhere_is_no_evidence_not_an_error() -> None:
    lift = two_proportion_z_test(0, 100, 0, 100)
    assert (lift.p_value, lift.absolute_interval) == (1.0, Interval(-math.inf, math.inf))
    assert lift.relative is None and lift.relative_interval is None


@pytest.mark.parametrize(("args", "field"), [
    ((5, 0, 1, 10), "control.exposures"),
    ((11, 10, 1, 10), "control.conversions"),
    ((1, 10, -1, 10), "treatment.conversions"),
    ((1, 10, 1, 10.5), "treatment.exposures"),
])
def test_bad_counts_are_refused(args: tuple[int, int, int, int], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        two_proportion_z_test(*args)
    assert caught.value.field == field


def test_bad_alpha_and_tiny_groups_are_refused() -> None:
    with pytest.raises(ValidationError, match="alpha"):
        two_proportion_z_test(1, 10, 1, 10, alpha=1.0)
    with pytest.raises(ValidationError) as caught:
        welch_t_test(Summary.of([1.0]), Summary.of([1.0, 2.0]))
    assert caught.value.field == "control.n"
    with pytest.raises(ValidationError, match="variance"):
        Summary(3, 1.0, -1.0)


# -- sequential: the closed forms against the mixture they stand for ------------------------------------


def mixture_likelihood_ratio(estimate: float, variance: float, tau2: float) -> float:
    """Lambda = integral over theta ~ N(0, tau2) of the normal likelihood ratio of theta to 0."""
    def integrand(theta: float) -> float:
        return (math.exp((theta * estimate - theta**2 / 2) / variance)
                * math.exp(-theta**2 / (2 * tau2)) / math.sqrt(2 * math.pi * tau2))
    width = 12 * math.sqrt(tau2)
    return integrate.quad(integrand, -width, width, points=[estimate], epsabs=0, epsrel=1e-12, limit=200)[0]


def tau2_at(alpha: float, unit_variance: float, horizon: int) -> float:
    """The documented mixture variance: tightest interval at the horizon."""
    ratio = optimize.brentq(lambda r: r - 2 * math.log(1 / alpha) - math.log1p(r), 1e-6, 100.0, xtol=1e-14)
    return ratio * unit_variance / horizon


def proportions_variance(x0: int, n0: int, x1: int, n1: int) -> tuple[float, float]:
    """The documented variance (the larger of unpooled and pooled) and the pooled per-exposure variance."""
    p0, p1, pooled = x0 / n0, x1 / n1, (x0 + x1) / (n0 + n1)
    unit = pooled * (1 - pooled)
    return max(p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1, unit * (1 / n0 + 1 / n1)), unit


@pytest.mark.parametrize(("x0", "n0", "x1", "n1"), PROPORTIONS)
def test_sequential_p_value_is_one_over_the_mixture_likelihood_ratio(x0: int, n0: int, x1: int, n1: int) -> None:
    variance, unit = proportions_variance(x0, n0, x1, n1)
    lift = msprt_proportions(x0, n0, x1, n1, alpha=0.05, horizon=5000)
    ratio = mixture_likelihood_ratio(x1 / n1 - x0 / n0, variance, tau2_at(0.05, 2 * unit, 5000))
    assert lift.statistic == pytest.approx(math.log(ratio), rel=1e-8, abs=1e-10)
    assert lift.p_value == pytest.approx(min(1.0, 1 / ratio), rel=1e-8)


def test_the_confidence_sequence_ends_where_the_likelihood_ratio_reaches_one_over_alpha() -> None:
    x0, n0, x1, n1 = 4812, 100_000, 5004, 99_000
    variance, unit = proportions_variance(x0, n0, x1, n1)
    lift = msprt_proportions(x0, n0, x1, n1)
    for end in (lift.absolute_interval.lower, lift.absolute_interval.upper):
        ratio = mixture_likelihood_ratio(x1 / n1 - x0 / n0 - end, variance, tau2_at(0.05, 2 * unit, 10_000))
        assert ratio == pytest.approx(20.0, rel=1e-7)


def test_a_group_without_conversions_yet_is_not_taken_for_a_certain_one() -> None:
    # 0 of 50 in a small holdout has no spread; its unpooled variance of 0 would make p = 0.02 vs 0 "certain"
    lift = msprt_proportions(0, 50, 19, 950)
    assert lift.p_value > 0.5 and 0.0 in lift.absolute_interval


def test_sequential_p_value_and_interval_agree() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        n0, n1 = (int(n) for n in rng.integers(50, 20_000, 2))
        x0, x1 = int(rng.binomial(n0, 0.05)), int(rng.binomial(n1, 0.058))
        lift = msprt_proportions(x0, n0, x1, n1)
        assert (lift.p_value <= 0.05) is (0.0 not in lift.absolute_interval)


def test_sequential_looks_carry_the_lowest_p_value_and_the_narrowest_interval() -> None:
    first = msprt_proportions(40, 1000, 75, 1000)
    later = msprt_proportions(100, 2000, 110, 2000, previous=first)
    alone = msprt_proportions(100, 2000, 110, 2000)
    assert later.p_value == min(first.p_value, alone.p_value)
    assert later.absolute_interval == Interval(max(first.absolute_interval.lower, alone.absolute_interval.lower),
                                               min(first.absolute_interval.upper, alone.absolute_interval.upper))
    assert later.absolute == alone.absolute


def test_sequential_before_any_data_says_nothing() -> None:
    assert msprt_proportions(0, 0, 0, 0) == Lift(0.0, Interval(-math.inf, math.inf), None, None, 1.0, 0.0)
    assert msprt_proportions(0, 10, 0, 12).p_value == 1.0
    assert msprt_means(Summary.of([1.0]), Summary.of([2.0, 3.0])).absolute_interval.upper == math.inf
    with pytest.raises(ValidationError) as caught:
        msprt_proportions(1, 10, 1, 10, horizon=0)
    assert caught.value.field == "horizon"


def test_sequential_means_use_the_same_mixture() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.gamma(2.0, 5.0, 800), rng.gamma(2.0, 7.0, 820)
    pooled = np.r_[a, b].var(ddof=1)  # one exposure's variance, both groups together
    variance = max(a.var(ddof=1) / 800 + b.var(ddof=1) / 820, pooled * (1 / 800 + 1 / 820))
    lift = msprt_means(Summary.of(a), Summary.of(b), horizon=2000)
    ratio = mixture_likelihood_ratio(b.mean() - a.mean(), variance, tau2_at(0.05, 2 * pooled, 2000))
    assert lift.statistic == pytest.approx(math.log(ratio), rel=1e-8)


def test_the_sequential_interval_is_wider_than_the_fixed_one_on_the_same_data() -> None:
    # the price of looking whenever you like
    sequential = msprt_proportions(480, 10_000, 540, 10_000).absolute_interval
    fixed = two_proportion_z_test(480, 10_000, 540, 10_000).absolute_interval
    assert sequential.lower < fixed.lower and fixed.upper < sequential.upper


# -- multiplicity ---------------------------------------------------------------------------------------


def test_holm_and_bonferroni_equal_statsmodels() -> None:
    p = {"b": 0.01, "c": 0.04, "d": 0.03, "e": 0.5, "f": 0.011}
    for method, ours in (("holm", holm), ("bonferroni", bonferroni)):
        expected = multipletests(list(p.values()), method=method)[1]
        assert list(ours(p).values()) == pytest.approx(list(expected), abs=1e-15)
        assert list(ours(p)) == list(p)
    with pytest.raises(ValidationError):
        holm({"b": 1.5})


# -- CUPED ----------------------------------------------------------------------------------------------


def test_cuped_difference_is_the_ancova_treatment_coefficient() -> None:
    rng = np.random.default_rng(3)
    x0, x1 = rng.gamma(2.0, 20.0, 3000), rng.gamma(2.0, 20.0, 3200)
    y0 = 0.8 * x0 + rng.normal(0, 15, 3000)
    y1 = 0.8 * x1 + 2.0 + rng.normal(0, 15, 3200)
    adjusted = cuped({"control": y0, "treatment": y1}, {"control": x0, "treatment": x1})
    design = add_constant(np.column_stack([np.r_[np.zeros(3000), np.ones(3200)], np.r_[x0, x1]]))
    fit = OLS(np.r_[y0, y1], design).fit()
    treated, control = adjusted.summaries["treatment"], adjusted.summaries["control"]
    assert treated.mean - control.mean == pytest.approx(fit.params[1], rel=1e-9)
    assert adjusted.theta == pytest.approx(fit.params[2], rel=1e-9)
    plain = welch_t_test(Summary.of(y0), Summary.of(y1)).absolute_interval
    reduced = welch_t_test(control, treated).absolute_interval
    # corr(x, y) is about 0.8 here, so the interval shrinks to about sqrt(1 - 0.8^2) = 0.6 of its width
    assert (reduced.upper - reduced.lower) < 0.7 * (plain.upper - plain.lower)


def test_cuped_refuses_mismatched_inputs() -> None:
    with pytest.raises(ValidationError) as caught:
        cuped({"a": [1.0, 2.0]}, {"a": [1.0]})
    assert caught.value.field == "covariates.a"
    with pytest.raises(ValidationError):
        cuped({"a": [1.0]}, {"b": [1.0]})


# -- Thompson sampling ----------------------------------------------------------------------------------


def test_thompson_sends_traffic_to_the_better_variant_and_keeps_the_control_floor() -> None:
    counts = {"control": (50, 1000), "a": (52, 1000), "b": (80, 1000)}
    shares = thompson_shares(counts, control="control", control_floor=0.2, seed=1)
    assert math.fsum(shares.values()) == pytest.approx(1.0, abs=1e-12)
    assert shares["control"] == 0.2 and shares["b"] > 0.7
    assert shares == thompson_shares(counts, control="control", control_floor=0.2, seed=1)


def test_thompson_with_no_data_shares_evenly_and_control_keeps_what_it_earns() -> None:
    shares = thompson_shares({"control": (0, 0), "a": (0, 0)}, control="control", control_floor=0.1, draws=40_000)
    assert shares["control"] == pytest.approx(0.5, abs=0.01)
    best = thompson_shares({"control": (90, 1000), "a": (40, 1000)}, control="control")
    assert best["control"] > 0.99


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"control": "z"}, "control"),
    ({"control": "control", "control_floor": 1.5}, "control_floor"),
    ({"control": "control", "draws": 0}, "draws"),
])
def test_thompson_refuses_bad_arguments(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        thompson_shares({"control": (1, 10), "a": (2, 10)}, **kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_thompson_refuses_more_conversions_than_exposures() -> None:
    with pytest.raises(ValidationError) as caught:
        thompson_shares({"control": (1, 10), "a": (11, 10)}, control="control")
    assert caught.value.field == "counts.a"


def test_a_bandit_run_moves_traffic_to_the_best_variant_through_the_split() -> None:
    # each day: shares from the counts so far, 2,000 customers assigned by Split, conversions drawn
    rates = {"control": 0.05, "a": 0.05, "b": 0.07}
    counts = {name: (0, 0) for name in rates}
    rng = np.random.default_rng(11)
    shares: dict[str, float] = {name: 1 / 3 for name in rates}
    for day in range(20):
        split = Split(shares)
        assigned = [split.variant("subject-test", f"c-{day}-{i}") for i in range(2000)]
        for name, rate in rates.items():
            exposed = assigned.count(name)
            conversions, exposures = counts[name]
            counts[name] = (conversions + int(rng.binomial(exposed, rate)), exposures + exposed)
        shares = thompson_shares(counts, control="control", control_floor=0.1, seed=day)
    assert shares["b"] > 0.85 and shares["control"] >= 0.1
    assert counts["b"][1] > counts["a"][1]  # the better variant got more customers along the way
