"""The statistics validated by simulation: false positives when peeking daily, and interval coverage.

Every simulation has a fixed seed, so each figure is one exact number, the same on every run. The
tolerances say how far a procedure whose true rate is exactly the nominal one could land by chance in
that many experiments: the 99.9% quantile of the binomial. A figure beyond it is not bad luck.

Data are drawn per day and arm as totals (conversions, revenue and squared revenue), which is all the
tests need, so 1,000 experiments of 30 days cost well under a second to make.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from omnisdk.experiments import (
    Conclusion,
    Lift,
    Summary,
    VariantData,
    analyse,
    cuped,
    msprt_means,
    msprt_proportions,
    two_proportion_z_test,
    welch_t_test,
)

EXPERIMENTS = 1000
LOOKS = 30  # one peek a day for a month
PER_LOOK = 500  # exposures per variant per day: 15,000 per variant at the end
ALPHA = 0.05
RATE = 0.05  # conversion rate
SHAPE, SCALE = 2.0, 30.0  # a converting customer's revenue: Gamma(2, 30), mean 60


def most_by_chance(rate: float, trials: int) -> float:
    """The share of `trials` that a procedure with this true rate exceeds only 0.1% of the time."""
    return float(stats.binom.ppf(0.999, trials, rate)) / trials


def least_by_chance(rate: float, trials: int) -> float:
    return float(stats.binom.ppf(0.001, trials, rate)) / trials


def cumulative_conversions(rng: np.random.Generator, rates: tuple[float, ...], looks: int = LOOKS,
                           experiments: int = EXPERIMENTS) -> np.ndarray:
    """conversions[experiment, look, arm], counted from the start."""
    daily = np.stack([rng.binomial(PER_LOOK, rate, size=(experiments, looks)) for rate in rates], axis=2)
    return daily.cumsum(axis=1)


def cumulative_revenue(rng: np.random.Generator, scales: tuple[float, float],
                       experiments: int = EXPERIMENTS) -> tuple[np.ndarray, np.ndarray]:
    """Sums of revenue and of squared revenue per exposed customer [experiment, look, arm], from the start."""
    converted = np.stack([rng.binomial(PER_LOOK, RATE, size=(experiments, LOOKS)) for _ in scales], axis=2)
    cell = np.repeat(np.arange(converted.size), converted.ravel())
    scale = np.asarray(scales)[cell % 2]
    revenue = rng.gamma(SHAPE, scale)
    totals = np.bincount(cell, weights=revenue, minlength=converted.size).reshape(converted.shape)
    squares = np.bincount(cell, weights=revenue**2, minlength=converted.size).reshape(converted.shape)
    return totals.cumsum(axis=1), squares.cumsum(axis=1)


def summaries(totals: np.ndarray, squares: np.ndarray, experiment: int, look: int) -> tuple[Summary, Summary]:
    n = PER_LOOK * (look + 1)
    return (Summary.from_sums(n, float(totals[experiment, look, 0]), float(squares[experiment, look, 0])),
            Summary.from_sums(n, float(totals[experiment, look, 1]), float(squares[experiment, look, 1])))


def covers(lift: Lift, absolute: float, relative: float) -> tuple[bool, bool]:
    assert lift.relative_interval is not None
    return absolute in lift.absolute_interval, relative in lift.relative_interval


# -- A/A: nothing to find, looked at every day ----------------------------------------------------------


def test_peeking_daily_at_an_aa_test_conversion_rates() -> None:
    conversions = cumulative_conversions(np.random.default_rng(1601), (RATE, RATE))
    sequential_hits = fixed_hits = 0
    for e in range(EXPERIMENTS):
        lift, fixed_hit = None, False
        for look in range(LOOKS):
            n = PER_LOOK * (look + 1)
            c0, c1 = int(conversions[e, look, 0]), int(conversions[e, look, 1])
            lift = msprt_proportions(c0, n, c1, n, alpha=ALPHA, previous=lift)
            fixed_hit |= two_proportion_z_test(c0, n, c1, n, alpha=ALPHA).p_value <= ALPHA
        assert lift is not None
        sequential_hits += lift.p_value <= ALPHA
        fixed_hits += fixed_hit
    sequential, fixed = sequential_hits / EXPERIMENTS, fixed_hits / EXPERIMENTS
    print(f"A/A conversion, {LOOKS} daily peeks: sequential FPR {sequential:.3f}, fixed-horizon FPR {fixed:.3f}")
    assert sequential <= most_by_chance(ALPHA, EXPERIMENTS)  # 0.05 + 0.022
    assert fixed > most_by_chance(ALPHA, EXPERIMENTS)  # peeking a fixed-horizon test breaks it


def test_peeking_daily_at_an_aa_test_revenue_per_exposed() -> None:
    totals, squares = cumulative_revenue(np.random.default_rng(1602), (SCALE, SCALE))
    sequential_hits = fixed_hits = 0
    for e in range(EXPERIMENTS):
        lift, fixed_hit = None, False
        for look in range(LOOKS):
            control, treatment = summaries(totals, squares, e, look)
            lift = msprt_means(control, treatment, alpha=ALPHA, previous=lift)
            fixed_hit |= welch_t_test(control, treatment, alpha=ALPHA).p_value <= ALPHA
        assert lift is not None
        sequential_hits += lift.p_value <= ALPHA
        fixed_hits += fixed_hit
    sequential, fixed = sequential_hits / EXPERIMENTS, fixed_hits / EXPERIMENTS
    print(f"A/A revenue, {LOOKS} daily peeks: sequential FPR {sequential:.3f}, fixed-horizon FPR {fixed:.3f}")
    assert sequential <= most_by_chance(ALPHA, EXPERIMENTS)
    assert fixed > most_by_chance(ALPHA, EXPERIMENTS)


def test_peeking_daily_at_an_aa_test_with_a_small_holdout() -> None:
    # 5% holdout, 2% conversion: the holdout often has no conversion yet, which must not read as certainty
    rng = np.random.default_rng(1609)
    sizes, rate = (50, 950), 0.02
    conversions = np.stack([rng.binomial(n, rate, size=(EXPERIMENTS, LOOKS)) for n in sizes], axis=2).cumsum(axis=1)
    converted = np.stack([rng.binomial(n, rate, size=(EXPERIMENTS, LOOKS)) for n in sizes], axis=2)
    cell = np.repeat(np.arange(converted.size), converted.ravel())
    revenue = rng.gamma(SHAPE, SCALE, cell.size)
    totals = np.bincount(cell, weights=revenue, minlength=converted.size).reshape(converted.shape).cumsum(axis=1)
    squares = np.bincount(cell, weights=revenue**2, minlength=converted.size).reshape(converted.shape).cumsum(axis=1)
    hits = np.zeros(2)
    for e in range(EXPERIMENTS):
        rates = means = None
        for look in range(LOOKS):
            n0, n1 = (n * (look + 1) for n in sizes)
            rates = msprt_proportions(int(conversions[e, look, 0]), n0, int(conversions[e, look, 1]), n1,
                                      alpha=ALPHA, previous=rates)
            means = msprt_means(Summary.from_sums(n0, totals[e, look, 0], squares[e, look, 0]),
                                Summary.from_sums(n1, totals[e, look, 1], squares[e, look, 1]),
                                alpha=ALPHA, previous=means)
        assert rates is not None and means is not None
        hits += (rates.p_value <= ALPHA, means.p_value <= ALPHA)
    conversion, revenue_rate = hits / EXPERIMENTS
    print(f"A/A with a 5% holdout, {LOOKS} daily peeks: sequential FPR conversion {conversion:.3f}, "
          f"revenue {revenue_rate:.3f}")
    assert conversion <= most_by_chance(ALPHA, EXPERIMENTS) and revenue_rate <= most_by_chance(ALPHA, EXPERIMENTS)


def test_an_aaaa_test_with_three_variants_keeps_the_family_wise_error_rate() -> None:
    # three variants against control, all equal: any "winner" or "loser" is a false positive
    experiments = 500
    conversions = cumulative_conversions(np.random.default_rng(1603), (RATE,) * 4, experiments=experiments)
    names = ("control", "b", "c", "d")
    false_decisions = 0
    for e in range(experiments):
        result = None
        for look in range(LOOKS):
            n = PER_LOOK * (look + 1)
            data = {name: VariantData(n, int(conversions[e, look, arm])) for arm, name in enumerate(names)}
            result = analyse(data, control="control", alpha=ALPHA, previous=result)
            if any(variant.decision in (Conclusion.WINNER, Conclusion.LOSER) for variant in result.variants[1:]):
                false_decisions += 1
                break
    rate = false_decisions / experiments
    print(f"A/A/A/A conversion, Holm over 3 comparisons, {LOOKS} peeks: family-wise FPR {rate:.3f}")
    assert rate <= most_by_chance(ALPHA, experiments)


# -- A/B with a known effect: do the intervals hold the truth? ------------------------------------------


def test_fixed_horizon_intervals_cover_a_known_lift_at_the_nominal_rate() -> None:
    experiments, n = 10_000, 10_000
    rng = np.random.default_rng(1604)
    c0, c1 = rng.binomial(n, 0.05, experiments), rng.binomial(n, 0.055, experiments)
    hits = np.array([covers(two_proportion_z_test(int(a), n, int(b), n), 0.005, 0.1)
                     for a, b in zip(c0, c1, strict=True)])
    absolute, relative = hits.mean(axis=0)
    print(f"A/B conversion, fixed horizon: coverage absolute {absolute:.3f}, relative {relative:.3f}")
    assert abs(absolute - 0.95) <= 0.02 and abs(relative - 0.95) <= 0.02


def test_welch_intervals_cover_a_known_revenue_lift_at_the_nominal_rate() -> None:
    experiments = 5000
    totals, squares = cumulative_revenue(np.random.default_rng(1605), (SCALE, SCALE * 1.1), experiments=experiments)
    truth = RATE * SHAPE * SCALE
    hits = np.array([covers(welch_t_test(*summaries(totals, squares, e, LOOKS - 1)), 0.1 * truth, 0.1)
                     for e in range(experiments)])
    absolute, relative = hits.mean(axis=0)
    print(f"A/B revenue, fixed horizon: coverage absolute {absolute:.3f}, relative {relative:.3f}")
    assert abs(absolute - 0.95) <= 0.02 and abs(relative - 0.95) <= 0.02


def test_sequential_intervals_cover_a_known_lift_at_every_look_at_once() -> None:
    conversions = cumulative_conversions(np.random.default_rng(1606), (0.05, 0.06))
    always = np.zeros((EXPERIMENTS, 2), dtype=bool)
    for e in range(EXPERIMENTS):
        lift = None
        for look in range(LOOKS):
            n = PER_LOOK * (look + 1)
            lift = msprt_proportions(int(conversions[e, look, 0]), n, int(conversions[e, look, 1]), n,
                                     alpha=ALPHA, previous=lift)
            always[e] = covers(lift, 0.01, 0.2) if look == 0 else always[e] & covers(lift, 0.01, 0.2)
    absolute, relative = always.mean(axis=0)
    print(f"A/B conversion, sequential over {LOOKS} looks: simultaneous coverage absolute {absolute:.3f}, "
          f"relative {relative:.3f}")
    assert absolute >= 0.95 and relative >= 0.95


def test_sequential_revenue_intervals_cover_a_known_lift_at_every_look_at_once() -> None:
    totals, squares = cumulative_revenue(np.random.default_rng(1607), (SCALE, SCALE * 1.1))
    truth = RATE * SHAPE * SCALE
    always = np.zeros((EXPERIMENTS, 2), dtype=bool)
    for e in range(EXPERIMENTS):
        lift = None
        for look in range(LOOKS):
            lift = msprt_means(*summaries(totals, squares, e, look), alpha=ALPHA, previous=lift)
            always[e] = covers(lift, 0.1 * truth, 0.1) if look == 0 else always[e] & covers(lift, 0.1 * truth, 0.1)
    absolute, relative = always.mean(axis=0)
    print(f"A/B revenue, sequential over {LOOKS} looks: simultaneous coverage absolute {absolute:.3f}, "
          f"relative {relative:.3f}")
    assert absolute >= 0.95 and relative >= 0.95


def test_the_sequential_test_finds_a_real_lift_and_often_early() -> None:
    # validity alone is cheap (never decide); this pins the power: 5% -> 6% with 500 per variant a day
    conversions = cumulative_conversions(np.random.default_rng(1610), (0.05, 0.06))
    decided_on = []
    fixed_hits = 0
    for e in range(EXPERIMENTS):
        lift, day = None, None
        for look in range(LOOKS):
            n = PER_LOOK * (look + 1)
            lift = msprt_proportions(int(conversions[e, look, 0]), n, int(conversions[e, look, 1]), n,
                                     alpha=ALPHA, previous=lift)
            if day is None and lift.p_value <= ALPHA:
                day = look + 1
        if day is not None:
            decided_on.append(day)
        final = two_proportion_z_test(int(conversions[e, -1, 0]), n, int(conversions[e, -1, 1]), n)
        fixed_hits += final.p_value <= ALPHA
    power, median = len(decided_on) / EXPERIMENTS, float(np.median(decided_on))
    print(f"A/B 5% -> 6%: sequential power by day {LOOKS} {power:.3f} (median day {median:g}), "
          f"fixed-horizon power at day {LOOKS} {fixed_hits / EXPERIMENTS:.3f}")
    assert power >= 0.75 and median <= 20


def test_cuped_intervals_keep_their_coverage_and_are_narrower() -> None:
    # outcome = pre-period behaviour + noise + effect: CUPED must not bias, only shrink the interval
    experiments, n, effect = 1000, 1000, 2.0
    rng = np.random.default_rng(1608)
    covered, ratio = 0, []
    for _ in range(experiments):
        x0, x1 = rng.gamma(2.0, 20.0, n), rng.gamma(2.0, 20.0, n)
        y0 = 0.8 * x0 + rng.normal(0, 15, n)
        y1 = 0.8 * x1 + effect + rng.normal(0, 15, n)
        adjusted = cuped({"control": y0, "treatment": y1}, {"control": x0, "treatment": x1}).summaries
        lift = welch_t_test(adjusted["control"], adjusted["treatment"])
        covered += effect in lift.absolute_interval
        plain = welch_t_test(Summary.of(y0), Summary.of(y1)).absolute_interval
        ratio.append((lift.absolute_interval.upper - lift.absolute_interval.lower) / (plain.upper - plain.lower))
    coverage = covered / experiments
    print(f"CUPED: coverage {coverage:.3f}, interval width {np.mean(ratio):.2f} of the unadjusted one")
    assert abs(coverage - 0.95) <= 0.02 and np.mean(ratio) < 0.7
