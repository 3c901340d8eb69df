"""Experiments from an app's own code, on both stores: `omni.assign` exposes once with the journeys' hash,
`omni.experiment` reads results as of any moment, carries the sequential test on with `previous=`, and
adjusts revenue with CUPED from the pre-period touchpoints the store already holds."""

from __future__ import annotations

import asyncio
import math
import random
import statistics
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnisdk import AsyncOmni, JourneyContext, Omni, ValidationError, VirtualClock, journey
from omnisdk.experiments import Conclusion, GlobalControl, Split, VariantData, analyse
from omnisdk.store._experiments import exposures
from omnisdk.testing import JourneyTester

DAY = 86_400.0
SHARES = {"a": 0.5, "b": 0.5}


def at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def stored(omni: Omni, experiment: str) -> dict[str, tuple[str, str | None, float]]:
    with omni.store.transaction(immediate=False) as tx:
        found = exposures(tx, experiment)
    return {e.customer_id: (e.variant, e.run_id, e.exposed_at) for e in found}


def test_assign_exposes_once_with_the_journeys_hash(omni: Omni, clock: VirtualClock) -> None:
    customers = [f"c{i}" for i in range(40)]
    first = {cid: omni.assign("banner", cid, SHARES) for cid in customers}
    assert first == {cid: Split(SHARES).variant("banner", cid) for cid in customers}
    clock.advance(timedelta(hours=3))
    again = {cid: omni.assign("banner", cid, {"a": 0.01, "b": 0.99}) for cid in customers}  # other shares later
    assert again == first  # the first exposure stored wins
    rows = stored(omni, "banner")
    assert {cid: row[0] for cid, row in rows.items()} == first
    assert {row[1] for row in rows.values()} == {None}  # the app's own, not a run's
    assert {row[2] for row in rows.values()} == {clock.timestamp() - 3 * 3600}  # exposed at the first call


def test_assign_finds_the_customer_by_identifiers(omni: Omni) -> None:
    omni.identify("c-7", email="seven@example.com")
    variant = omni.assign("banner", {"email": "Seven@Example.com"}, SHARES)
    assert stored(omni, "banner") == {"c-7": (variant, None, omni.clock.timestamp())}
    assert variant == Split(SHARES).variant("banner", "c-7")


def test_assign_and_a_journey_agree_and_expose_once(store_url: str) -> None:
    seen: dict[str, str] = {}

    @journey("banner-mail", version="1", trigger="Signed Up")
    async def banner_mail(ctx: JourneyContext) -> None:
        seen[ctx.customer_id] = await ctx.experiment("banner", {"a": 0.9, "b": 0.1})  # the stored one wins

    with JourneyTester(banner_mail, store=store_url) as t:
        customers = [f"j{i}" for i in range(30)]
        app = {cid: t.omni.assign("banner", cid, SHARES) for cid in customers}
        t.omni.track_many([(cid, "Signed Up", {}) for cid in customers])
        t.advance(hours=1)
        assert seen == app and t.steps(customers[0]) == []  # the experiment step is memoised, sends nothing
        assert {cid: row[0] for cid, row in stored(t.omni, "banner").items()} == app
        assert {row[1] for row in stored(t.omni, "banner").values()} == {None}


def test_two_workers_assigning_at_once_store_one_exposure_each(store_url: str) -> None:
    customers = [f"w{i}" for i in range(60)]
    with Omni(store_url) as one, Omni(store_url) as two:
        with ThreadPoolExecutor(max_workers=2) as pool:
            left = list(pool.map(lambda cid: one.assign("race", cid, SHARES), customers))
            right = list(pool.map(lambda cid: two.assign("race", cid, SHARES), customers))
        assert left == right == [Split(SHARES).variant("race", cid) for cid in customers]
        assert len(stored(one, "race")) == 60


def test_the_global_control_group_is_not_exposed_to_marketing(store_url: str) -> None:
    config = {"experiments": {"global_control": 0.3, "global_control_salt": "x"}}
    group = GlobalControl(0.3, salt="x")
    customers = [f"g{i}" for i in range(40)]
    held = {cid for cid in customers if group.includes(cid)}
    assert 0 < len(held) < 40
    with Omni(store_url, config=config) as omni:
        variants = {cid: omni.assign("banner", cid, SHARES) for cid in customers}
        assert variants == {cid: Split(SHARES).variant("banner", cid) for cid in customers}  # a variant, still
        assert set(stored(omni, "banner")) == set(customers) - held
        for cid in customers:
            omni.assign("receipt-layout", cid, SHARES, purpose="transactional")
        assert set(stored(omni, "receipt-layout")) == set(customers)


def test_bad_arguments_are_refused_and_store_nothing(omni: Omni) -> None:
    for kwargs, field in (({"variants": {"a": 0.5, "b": 0.6}}, "shares"),
                          ({"variants": SHARES, "purpose": "sales"}, "purpose"),
                          ({"variants": SHARES, "holdouts": ["c"]}, "holdouts"),
                          ({"variants": SHARES, "experiment": ""}, "experiment")):
        with pytest.raises(ValidationError) as caught:
            omni.assign(kwargs.pop("experiment", "banner"), "c-1", **kwargs)  # type: ignore[arg-type]
        assert caught.value.field == field
    assert stored(omni, "banner") == {}


@settings(max_examples=40, deadline=None, derandomize=True)
@given(experiment=st.text(max_size=12), customer=st.text(max_size=12),
       weights=st.dictionaries(st.text(min_size=1, max_size=4), st.integers(0, 5), min_size=1, max_size=4))
def test_assign_answers_any_input_with_a_variant_or_a_typed_error(experiment: str, customer: str,
                                                                  weights: dict[str, int]) -> None:
    total = sum(weights.values())
    shares = {name: weight / total for name, weight in weights.items()} if total else weights
    with Omni("sqlite:///:memory:") as omni:
        try:
            variant = omni.assign(experiment, customer, shares)
        except ValidationError as exc:
            assert exc.field
            return
        assert shares[variant] > 0
        assert omni.assign(experiment, customer, shares) == variant
        assert len(stored(omni, experiment)) == 1


def test_async_assign(store_url: str) -> None:
    async def main() -> str:
        async with AsyncOmni(store_url) as omni:
            return await omni.assign("banner", "c-1", SHARES)

    assert asyncio.run(main()) == Split(SHARES).variant("banner", "c-1")


def _seed_a_winner(omni: Omni, clock: VirtualClock) -> float:
    """Day 1: b converts far better; day 2: a catches up. Returns the start."""
    start = clock.timestamp()
    rng = random.Random(2)
    for day, rates in enumerate(({"a": 0.05, "b": 0.45}, {"a": 0.5, "b": 0.3})):
        for i in range(160):
            clock.set(at(start + day * DAY + i * 60))
            cid = f"d{day}-{i}"
            variant = omni.assign("peek", cid, SHARES)
            if rng.random() < rates[variant]:
                omni.track(cid, "Order Completed", {"revenue": 20.0}, channel="pos", timestamp=clock.timestamp() + 30)
    clock.set(at(start + 3 * DAY))
    return start


def test_until_reads_the_experiment_as_it_stood(omni: Omni, clock: VirtualClock) -> None:
    start = _seed_a_winner(omni, clock)
    day1 = omni.experiment("peek", control="a", until=start + DAY - 1, horizon=200)
    assert sum(v.exposures for v in day1.variants) == 160  # day two's exposures came later
    later = sum(1 for cid, row in stored(omni, "peek").items() if cid.startswith("d0-") and row[0] == "b")
    assert day1.variant("b").exposures == later


def test_previous_carries_the_sequential_test_on(omni: Omni, clock: VirtualClock) -> None:
    start = _seed_a_winner(omni, clock)
    day1 = omni.experiment("peek", control="a", until=start + DAY, horizon=200)
    assert day1.decision is Conclusion.WINNER and day1.winner == "b"
    fresh = omni.experiment("peek", control="a", until=start + 2 * DAY, horizon=200)
    carried = omni.experiment("peek", control="a", until=start + 2 * DAY, horizon=200, previous=day1)
    counts = {v.name: VariantData(v.exposures, v.conversions) for v in fresh.variants}
    assert carried.variant("b").conversion_lift == analyse(counts, control="a", horizon=200,
                                                           previous=day1).variant("b").conversion_lift
    first, now, kept = (r.variant("b").conversion_lift for r in (day1, fresh, carried))
    assert first is not None and now is not None and kept is not None
    assert now.p_value > 0.05 >= first.p_value  # on its own, day two's look no longer sees a winner
    assert kept.p_value == first.p_value and carried.decision is Conclusion.WINNER  # the decision stays
    assert kept.absolute_interval == first.absolute_interval.intersect(now.absolute_interval)


def _simulated_shop(omni: Omni, clock: VirtualClock, experiments: int, customers: int, effect: float) -> None:
    """Customers whose spending habit (known from before the exposure) drives most of what they spend
    after it; variant b adds `effect` per customer. A purchase 60 days before counts only with a long
    pre-period."""
    rng = random.Random(16)
    exposed_at = clock.timestamp() + 90 * DAY
    clock.set(at(exposed_at))
    events = []
    for e in range(experiments):
        for i in range(customers):
            cid = f"x{e}-{i}"
            variant = omni.assign(f"cuped-{e}", cid, SHARES)
            habit = rng.choice((0.0, rng.expovariate(1 / 60)))
            before = habit * rng.uniform(0.7, 1.3)
            after = habit * rng.uniform(0.7, 1.3) + rng.uniform(0, 16) + (effect if variant == "b" else 0)
            events.append((cid, "Order Completed", {"revenue": rng.uniform(5, 500)}, "pos", exposed_at - 60 * DAY))
            if before:
                events.append((cid, "Order Completed", {"revenue": before}, "web", exposed_at - 10 * DAY))
            if after:
                events.append((cid, "Order Completed", {"revenue": after}, "pos", exposed_at + 2 * DAY))
    omni.track_many([{"who": c, "event": n, "properties": p, "channel": ch, "timestamp": ts}
                     for c, n, p, ch, ts in events])
    clock.set(at(exposed_at + 8 * DAY))


def test_cuped_from_stored_pre_period_revenue_shrinks_the_variance_and_stays_unbiased(
    omni: Omni, clock: VirtualClock,
) -> None:
    effect, runs = 10.0, 8
    _simulated_shop(omni, clock, runs, 240, effect)
    plain, adjusted, widths = [], [], []
    for e in range(runs):
        asked = {"metric": "revenue", "method": "fixed", "control": "a"}
        raw = omni.experiment(f"cuped-{e}", **asked).variant("b").revenue_lift  # type: ignore[arg-type]
        cut = omni.experiment(f"cuped-{e}", cuped=True, **asked).variant("b").revenue_lift  # type: ignore[arg-type]
        short = omni.experiment(f"cuped-{e}", cuped=True, pre_period=timedelta(days=1),  # nothing that close
                                **asked).variant("b").revenue_lift  # type: ignore[arg-type]
        assert raw is not None and cut is not None and short is not None
        assert short.absolute == pytest.approx(raw.absolute) and short.p_value == pytest.approx(raw.p_value)
        plain.append(raw.absolute)
        adjusted.append(cut.absolute)
        widths.append((cut.absolute_interval.upper - cut.absolute_interval.lower)
                      / (raw.absolute_interval.upper - raw.absolute_interval.lower))
    print(f"\nCUPED from the store: interval width {statistics.fmean(widths):.2f} of plain; spread of the "
          f"estimates {statistics.stdev(plain):.1f} -> {statistics.stdev(adjusted):.1f}; "
          f"mean {statistics.fmean(adjusted):.1f} (true {effect:g})")
    assert max(widths) < 0.6  # the habit explains most of the spread
    assert statistics.stdev(adjusted) < 0.6 * statistics.stdev(plain)
    standard_error = statistics.stdev(adjusted) / math.sqrt(runs)
    assert abs(statistics.fmean(adjusted) - effect) < 3 * standard_error  # centred on the true effect
    sequential = omni.experiment("cuped-0", control="a", metric="revenue", cuped=True).variant("b").revenue_lift
    long = omni.experiment("cuped-0", control="a", metric="revenue", method="fixed", cuped=True,
                           pre_period=timedelta(days=90)).variant("b").revenue_lift
    assert sequential is not None and long is not None
    assert long.absolute != pytest.approx(adjusted[0])  # the 60-day-old purchase now counts, and is noise


def test_cuped_keeps_the_counts_and_refuses_a_bad_pre_period(omni: Omni, clock: VirtualClock) -> None:
    _seed_a_winner(omni, clock)
    plain = omni.experiment("peek", control="a")
    cut = omni.experiment("peek", control="a", cuped=True)
    assert [(v.exposures, v.conversions) for v in cut.variants] == [(v.exposures, v.conversions)
                                                                     for v in plain.variants]
    with pytest.raises(ValidationError) as caught:
        omni.experiment("peek", control="a", cuped=True, pre_period=timedelta(0))
    assert caught.value.field == "pre_period"
    with pytest.raises(ValidationError) as caught:
        omni.experiment("peek", control="a", cuped="yes")  # type: ignore[arg-type]
    assert caught.value.field == "cuped"
