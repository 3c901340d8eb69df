"""Experiments inside journeys, on both stores and the virtual clock: `ctx.experiment` assigns and records
one exposure per customer, `omni.experiment` reads the result from the exposures and the conversions on
any channel, and the global control group receives no marketing message from anything."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from omnisdk import SMS, ConfigError, Email, JourneyContext, Message, NotFoundError, Omni, ValidationError, journey
from omnisdk.experiments import Conclusion, GlobalControl, Split
from omnisdk.journeys import from_yaml
from omnisdk.segments import consented
from omnisdk.store._experiments import Exposure, exposures, record_exposure, variant_outcomes
from omnisdk.testing import JourneyTester

DAY = timedelta(days=1)
SHARES = {"a": 0.5, "b": 0.5}
CHANNELS = {"email": {"provider": "memory"}, "sms": {"provider": "memory"}, "push": {"provider": "memory"}}
TEMPLATES = [
    Message(name, email=Email(subject=name, text=name), sms=SMS(text=name))
    for name in ("hello-a", "hello-b", "welcome", "sale", "receipt", "later")
]


@journey("subject", version="1", trigger="Signed Up")
async def subject_v1(ctx: JourneyContext) -> None:
    variant = await ctx.experiment("subject-test", SHARES)
    await ctx.send("hello", f"hello-{variant}", channel="email")
    await ctx.sleep("pause", DAY)
    await ctx.send("later", "later", channel="email")


@journey("subject", version="2", trigger="Signed Up")
async def subject_v2(ctx: JourneyContext) -> None:
    """A new version with other shares and another step name: customers already exposed keep their variant."""
    variant = await ctx.experiment("subject-test", {"a": 0.01, "b": 0.99}, step="pick-subject")
    await ctx.send("hello-v2", f"hello-{variant}", channel="email")


@journey("holdout", version="1", trigger="Signed Up")
async def with_holdout(ctx: JourneyContext) -> None:
    variant = await ctx.experiment("welcome-holdout", {"send": 0.8, "none": 0.2}, holdouts={"none"})
    if variant == "none":  # the holdout: measured like any variant, sent nothing
        return
    await ctx.send("welcome", "welcome", channel="email")


@pytest.fixture
def tester_for(store_url: str) -> Iterator[Callable[..., JourneyTester]]:
    made: list[JourneyTester] = []

    def make(*journeys: Any, config: dict[str, Any] | None = None) -> JourneyTester:
        tester = JourneyTester(*journeys, store=store_url, config={"channels": CHANNELS, **(config or {})})
        for template in TEMPLATES:
            tester.omni.templates.add(template)
        made.append(tester)
        return tester

    yield make
    for tester in made:
        tester.close()


def sign_up(t: JourneyTester, customers: list[str]) -> None:
    for i, cid in enumerate(customers):
        t.omni.identify(cid, email=f"{cid}@example.com", phone=f"+1415555{i:04d}")
        t.omni.consent(cid, channel="email", granted=True)
        t.omni.consent(cid, channel="sms", granted=True)
    t.omni.track_many([(cid, "Signed Up", {}) for cid in customers])
    t.omni.run_until_idle()


def stored_exposures(t: JourneyTester, experiment: str) -> dict[str, Exposure]:
    with t.omni.store.transaction() as tx:
        found = exposures(tx, experiment)
    assert len({e.customer_id for e in found}) == len(found)
    return {e.customer_id: e for e in found}


def test_a_journey_experiment_runs_to_a_decision(tester_for: Callable[..., JourneyTester]) -> None:
    t = tester_for(subject_v1)
    customers = [f"c{i}" for i in range(400)]
    sign_up(t, customers)
    variants = {cid: Split(SHARES).variant("subject-test", cid) for cid in customers}
    assert [d.template for d in t.deliveries("c0")] == [f"hello-{variants['c0']}"]

    rng = random.Random(16)  # b's subject line really works better: 40% buy within a week, against 10%
    for cid in customers:
        if rng.random() < (0.4 if variants[cid] == "b" else 0.1):
            t.clock.advance(timedelta(minutes=1))
            t.omni.track(cid, "Order Completed", {"revenue": 30.0}, channel="pos")
    t.omni.track("c0", "Order Completed", {"revenue": 99.0}, channel="pos", timestamp=t.clock.timestamp() + 8 * 86400)
    t.advance(days=2)

    result = t.omni.experiment("subject-test", goal="Order Completed", window=timedelta(days=7), control="a",
                               horizon=500)
    assert (result.decision, result.winner, result.method) == (Conclusion.WINNER, "b", "sequential")
    counts = Counter(variants.values())
    a, b = result.variant("a"), result.variant("b")
    assert (a.exposures, b.exposures) == (counts["a"], counts["b"])
    assert b.conversion_lift is not None and b.conversion_lift.absolute_interval.lower > 0
    assert a.revenue_per_exposed == pytest.approx(30.0 * a.conversions / a.exposures)  # c0's late order is outside
    assert b.decision is Conclusion.WINNER


def test_the_same_customer_gets_the_same_variant_on_every_store_and_version(
    tester_for: Callable[..., JourneyTester],
) -> None:
    t = tester_for(subject_v1)
    customers = [f"v{i}" for i in range(30)]
    sign_up(t, customers)
    first = stored_exposures(t, "subject-test")
    # the pure hash, so SQLite and PostgreSQL (this test runs on both) hold the same variants
    assert {cid: e.variant for cid, e in first.items()} == {cid: Split(SHARES).variant("subject-test", cid)
                                                           for cid in customers}
    t.advance(days=2)  # the v1 runs complete; v2 starts new runs with other shares
    t.omni.register(subject_v2)
    t.omni.track_many([(cid, "Signed Up", {}) for cid in customers])
    t.advance(hours=1)

    for cid in customers:
        v2_send = [d for d in t.deliveries(cid) if d.step == "hello-v2"]
        assert [d.template for d in v2_send] == [f"hello-{first[cid].variant}"]
    assert stored_exposures(t, "subject-test") == first  # v1's exposures stay, with their run ids
    assert {e.journey for e in first.values()} == {"subject"}


def test_the_exposure_is_recorded_once_across_replays(tester_for: Callable[..., JourneyTester]) -> None:
    t = tester_for(subject_v1)
    sign_up(t, ["ada"])
    exposed = stored_exposures(t, "subject-test")["ada"]
    t.advance(hours=5)
    t.advance(days=2)  # the run replays after its sleep: the memo answers, no second exposure
    assert t.run("ada").status == "completed"
    assert t.steps("ada") == ["hello", "later"]
    assert stored_exposures(t, "subject-test") == {"ada": exposed}
    assert exposed.run_id == t.run("ada").id and exposed.exposed_at == t.deliveries("ada")[0].created_at.timestamp()


def test_a_holdout_variant_is_exposed_and_sent_nothing(tester_for: Callable[..., JourneyTester]) -> None:
    t = tester_for(with_holdout)
    customers = [f"h{i}" for i in range(60)]
    sign_up(t, customers)
    stored = stored_exposures(t, "welcome-holdout")
    held = {cid for cid, e in stored.items() if e.variant == "none"}
    assert len(stored) == 60 and 0 < len(held) < 60
    assert all((t.deliveries(cid) == []) == (cid in held) for cid in customers)


@journey("bandit", version="1", trigger="Signed Up")
async def with_bandit(ctx: JourneyContext) -> None:
    variant = await ctx.experiment("bandit-test", SHARES, allocation="thompson", goal="Order Completed",
                                   window=timedelta(days=7), control="a", control_floor=0.1)
    await ctx.send("hello", f"hello-{variant}", channel="email")


def test_a_bandit_moves_traffic_to_the_better_variant_and_keeps_the_control_floor(
    tester_for: Callable[..., JourneyTester],
) -> None:
    t = tester_for(with_bandit)
    first = [f"w1-{i}" for i in range(100)]
    sign_up(t, first)
    wave1 = stored_exposures(t, "bandit-test")
    assert {cid: e.variant for cid, e in wave1.items()} == {cid: Split(SHARES).variant("bandit-test", cid)
                                                           for cid in first}  # nothing known yet: the shares given
    rng = random.Random(3)
    for cid, exposure in wave1.items():
        if rng.random() < (0.5 if exposure.variant == "b" else 0.05):
            t.omni.track(cid, "Order Completed", channel="pos")
    t.advance(hours=2)  # past the hourly refresh
    second = [f"w2-{i}" for i in range(200)]
    sign_up(t, second)
    stored = stored_exposures(t, "bandit-test")
    wave2 = Counter(stored[cid].variant for cid in second)
    assert wave2["b"] > 150 and wave2["a"] >= 8  # most traffic to b, control near its 10% floor
    assert {cid: stored[cid] for cid in first} == wave1  # exposed customers keep their variant
    assert [d.template for d in t.deliveries("w2-0")] == [f"hello-{stored['w2-0'].variant}"]


def test_exposures_and_conversions_in_the_store(store_url: str) -> None:
    with Omni(store_url) as omni:
        omni.track("ada", "Order Completed", {"value": 5.0}, channel="pos", timestamp=900.0)  # before: not counted
        omni.track("ada", "Order Completed", {"value": 12.5}, channel="pos", timestamp=1500.0)
        omni.track("ada", "Order Completed", {"revenue": 7.5, "value": 1.0}, channel="web", timestamp=1600.0)
        omni.track("bob", "Order Completed", {"revenue": "lots"}, channel="web", timestamp=1100.0)
        omni.track("cy", "Order Completed", {"revenue": 40.0}, channel="pos", timestamp=1000.0 + 86400 * 8)
        with omni.store.transaction() as tx:
            first = Exposure(experiment="x", customer_id="ada", variant="a", exposed_at=1000.0)
            assert record_exposure(tx, first) == "a"
            again = Exposure(experiment="x", customer_id="ada", variant="b", exposed_at=2000.0, run_id="r-2")
            assert record_exposure(tx, again) == "a"  # the first exposure stays
            for cid, variant in (("bob", "b"), ("cy", "b")):
                record_exposure(tx, Exposure(experiment="x", customer_id=cid, variant=variant, exposed_at=1000.0))
            outcomes = variant_outcomes(tx, "x", goal=["Order Completed"], window=7 * 86400)
        assert [(o.variant, o.exposures, o.conversions, o.revenue, o.revenue_squares) for o in outcomes] == [
            ("a", 1, 1, 20.0, 400.0), ("b", 2, 1, 0.0, 0.0)]
        with pytest.raises(NotFoundError):
            omni.experiment("nobody-saw-this", control="a")
        result = omni.experiment("x", control="a", window=timedelta(days=7))
        assert result.decision is Conclusion.KEEP_RUNNING and result.variant("b").exposures == 2


def test_a_merge_keeps_one_exposure_per_experiment(store_url: str) -> None:
    with Omni(store_url) as omni:
        anon = omni.track({"anonymous_id": "a-1"}, "Product Viewed", channel="web").customer_id
        omni.identify("c-1", email="c1@example.com")
        with omni.store.transaction() as tx:
            for cid, experiment, variant in ((anon, "x", "b"), (anon, "y", "b"), ("c-1", "x", "a")):
                record_exposure(tx, Exposure(experiment=experiment, customer_id=cid, variant=variant,
                                             exposed_at=1000.0))
        omni.identify("c-1", anonymous_id="a-1")  # the anonymous profile merges into c-1
        assert omni.customer(anon).id == "c-1"
        with omni.store.transaction() as tx:
            assert [(e.customer_id, e.variant) for e in exposures(tx, "x")] == [("c-1", "a")]  # the winner's stays
            assert [(e.customer_id, e.variant) for e in exposures(tx, "y")] == [("c-1", "b")]  # the loser's moves


def test_global_control_members_receive_no_marketing_on_any_channel(
    tester_for: Callable[..., JourneyTester],
) -> None:
    control = GlobalControl(0.2, salt="2026")
    customers = [f"g{i}" for i in range(60)]
    held = {cid for cid in customers if control.includes(cid)}
    assert 0 < len(held) < 30

    @journey("welcome", version="1", trigger="Signed Up")
    async def welcome(ctx: JourneyContext) -> None:
        await ctx.experiment("welcome-test", SHARES)  # marketing: the group is not exposed
        await ctx.experiment("receipt-test", SHARES, purpose="transactional")  # everyone is
        await ctx.send("email", "welcome", channel="email")
        await ctx.send("waterfall", "welcome", channels=["sms", "email"], data={"again": True})
        await ctx.send("account", "receipt", channel="sms", purpose="transactional")

    t = tester_for(welcome, config={"experiments": {"global_control": 0.2, "global_control_salt": 2026},
                                    "policies": {"dedupe": "0"}})
    sign_up(t, customers)
    t.omni.broadcast("sale", consented("email"), channel="email", name="spring-sale")
    for cid in sorted(held)[:3]:
        t.omni.send(cid, "receipt", channel="email", purpose="transactional")
    for cid in sorted(held):  # the app's own marketing message, on any channel it can find
        t.omni.send(cid, "sale", channels=["push", "sms", "email"])
    t.advance(hours=1)

    received: dict[str, list[tuple[str, str]]] = {}
    for channel in ("email", "sms", "push"):
        for message in t.omni.provider(channel).sent:  # type: ignore[attr-defined]
            received.setdefault(message.customer_id, []).append((channel, message.purpose))
    for cid in held:
        assert all(purpose == "transactional" for _, purpose in received.get(cid, []))
        for delivery in t.omni.deliveries(customer_id=cid):
            if delivery.purpose == "marketing":
                assert delivery.status == "skipped"
                assert [(d.policy, d.reason) for d in delivery.decisions if d.action == "skip"] == [
                    ("global_control", "global control group: no marketing messages")]
    assert set(stored_exposures(t, "welcome-test")) == set(customers) - held
    assert set(stored_exposures(t, "receipt-test")) == set(customers)
    for cid in held:  # the journey's transactional sms, and the app's receipt for three of them
        expected = [("email", "transactional")] if cid in sorted(held)[:3] else []
        assert sorted(received[cid]) == [*expected, ("sms", "transactional")]
    for cid in set(customers) - held:
        assert sorted(received[cid]) == [("email", "marketing"), ("email", "marketing"), ("sms", "marketing"),
                                         ("sms", "transactional")]

    rng = random.Random(5)
    for cid in customers:
        if rng.random() < (0.1 if cid in held else 0.5):
            t.omni.track(cid, "Order Completed", {"revenue": 20.0}, channel="pos")
    lift = t.omni.marketing_lift(goal="Order Completed", window=timedelta(days=7))
    assert lift.control == "global control"
    assert (lift.variant("global control").exposures, lift.variant("marketed").exposures) == (len(held), 60 - len(held))
    assert t.omni.marketing_lift(journey="welcome").variant("marketed").exposures == 60 - len(held)
    by_sms = t.omni.marketing_lift(channel="sms")  # the waterfall asked for sms first: everyone
    assert (by_sms.variant("global control").exposures, by_sms.variant("marketed").exposures) == (len(held),
                                                                                                60 - len(held))
    assert t.omni.marketing_lift(channel="push").variant("marketed").exposures == 0


def test_two_workers_running_the_journey_agree_with_the_hash(store_url: str) -> None:
    """Runs picked up by either of two workers at once: each customer's variant is the hash's, exposed once."""
    from concurrent.futures import ThreadPoolExecutor

    customers = [f"p{i}" for i in range(80)]
    config = {"channels": CHANNELS}
    with Omni(store_url, config=config) as one, Omni(store_url, config=config) as two:
        for worker in (one, two):
            worker.register(subject_v1)
            for template in TEMPLATES:
                worker.templates.add(template)
        for cid in customers:
            one.identify(cid, email=f"{cid}@example.com")
            one.consent(cid, channel="email", granted=True)
        one.track_many([(cid, "Signed Up", {}) for cid in customers])
        with ThreadPoolExecutor(max_workers=2) as pool:
            done = list(pool.map(lambda worker: worker.run_until_idle(), (one, two)))
        assert sum(done) > 0
        with one.store.transaction(immediate=False) as tx:
            found = exposures(tx, "subject-test")
        assert sorted(e.customer_id for e in found) == sorted(customers)  # once each
        assert {e.customer_id: e.variant for e in found} == {cid: Split(SHARES).variant("subject-test", cid)
                                                             for cid in customers}
        for cid in customers[:10]:
            [hello] = [d for d in one.deliveries(customer_id=cid) if d.step == "hello"]
            assert hello.template == f"hello-{Split(SHARES).variant('subject-test', cid)}"


def test_async_omni_reads_an_experiment(store_url: str) -> None:
    import asyncio

    from omnisdk import AsyncOmni

    async def main() -> None:
        async with AsyncOmni(store_url) as omni:
            with omni.store.transaction() as tx:
                for i in range(4):
                    record_exposure(tx, Exposure(experiment="x", customer_id=f"c{i}", variant="ab"[i % 2],
                                                 exposed_at=1000.0))
            await omni.track("c1", "Order Completed", channel="pos", timestamp=1200.0)
            result = await omni.experiment("x", control="a")
            assert [(v.name, v.exposures, v.conversions) for v in result.variants] == [("a", 2, 0), ("b", 2, 1)]
            assert [o.experiment for o in await omni.experiments()] == ["x"]

    asyncio.run(main())


def test_global_control_configuration_is_checked(store_url: str) -> None:
    for section, field in (({"global_control": 1.5}, "experiments.global_control"),
                           ({"global_control": 0.1, "salt": "x"}, "experiments.salt")):
        with pytest.raises(ConfigError) as caught:
            Omni(store_url, config={"experiments": section})
        assert caught.value.field == field
    with Omni(store_url) as omni, pytest.raises(ValidationError):
        omni.marketing_lift()


EXPERIMENT_NODE = """
id: declarative-subject
version: "1"
trigger: Signed Up
nodes:
  pick:
    experiment: subject-test
    variants: {a: 0.4, b: 0.4, none: 0.2}
    holdouts: [none]
    branches: {a: send-a, b: send-b}
  send-a: {send: hello-a, channel: email}
  send-b: {send: hello-b, channel: email}
"""


def test_a_declarative_experiment_node_branches_per_variant(tester_for: Callable[..., JourneyTester]) -> None:
    definition = from_yaml(EXPERIMENT_NODE)
    t = tester_for(definition)
    customers = [f"d{i}" for i in range(40)]
    sign_up(t, customers)
    split = Split({"a": 0.4, "b": 0.4, "none": 0.2})
    for cid in customers:
        variant = split.variant("subject-test", cid)
        assert [d.template for d in t.deliveries(cid)] == ([] if variant == "none" else [f"hello-{variant}"])
    assert len(stored_exposures(t, "subject-test")) == 40
    assert '{{"pick: experiment subject-test"}}' in definition.mermaid()
    assert '-->|"a 40%"| n_send_a' in definition.mermaid()


@pytest.mark.parametrize(("change", "field"), [
    ({"variants": {"a": 0.5, "b": 0.6}}, "declarative-subject.nodes.pick.shares"),
    ({"branches": {"c": "send-a"}}, "declarative-subject.nodes.pick.branches"),
    ({"holdouts": ["nobody"]}, "declarative-subject.nodes.pick.holdouts"),
])
def test_a_declarative_experiment_node_is_checked(change: dict[str, Any], field: str) -> None:
    import yaml

    from omnisdk.journeys import from_dict

    definition = yaml.safe_load(EXPERIMENT_NODE)
    definition["nodes"]["pick"].update(change)
    with pytest.raises(ValidationError) as caught:
        from_dict(definition)
    assert caught.value.field == field



def test_the_experiments_command_lists_results(tester_for: Callable[..., JourneyTester], store_url: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import structlog

    from omnisdk.cli import main

    t = tester_for(with_holdout)
    sign_up(t, [f"k{i}" for i in range(20)])
    t.omni.track("k1", "Order Completed", {"revenue": 10.0}, channel="pos")
    try:
        assert main(["--store", store_url, "experiments", "--goal", "Order Completed"]) == 0
        assert main(["--store", store_url, "experiments", "other"]) == 0
    finally:
        structlog.reset_defaults()
    out = capsys.readouterr().out.splitlines()
    exposed = Counter(e.variant for e in stored_exposures(t, "welcome-holdout").values())
    assert out[0] == "welcome-holdout: 20 exposed, control none"
    assert out[2].split()[:2] == ["none", str(exposed["none"])] and out[2].endswith("control")
    assert out[3].split()[:2] == ["send", str(exposed["send"])] and out[3].endswith("keep running")
    assert out[4] == "  => keep running (sequential)"
    assert out[-1] == "no experiment has exposures yet"
