"""The journey runtime on both stores: omnichannel exits, long series in virtual time, the inbox,
re-entry, versions, failures, leases and merged profiles."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from omnisdk import JourneyContext, Omni, ValidationError, VirtualClock, journey
from omnisdk.testing import JourneyTester

DAY = timedelta(days=1)


@journey("cart-abandonment", version="1", trigger="Product Added", exit_on=["Order Completed"])
async def cart_abandonment(ctx: JourneyContext) -> None:
    if await ctx.wait_for("bought-1h", "Order Completed", timeout=timedelta(hours=1)):
        return
    cart = ctx.trigger.properties["cart_id"]
    await ctx.send("nudge", "cart-reminder", channels=["push", "email"], data={"cart_id": cart})
    if await ctx.wait_for("bought-1d", "Order Completed", timeout=DAY):
        return
    await ctx.send("coupon", "cart-coupon", channel="sms")


@journey("welcome", version="1", trigger="Signed Up", reentry="never")
async def welcome_series(ctx: JourneyContext) -> None:
    await ctx.send("hello", "welcome-1", channel="email")
    await ctx.sleep("pause-2d", 2 * DAY)
    await ctx.send("tips", "welcome-2", channel="email")
    await ctx.sleep("pause-5d", 5 * DAY)
    await ctx.send("offer", "welcome-3", channels=["sms", "email"])
    # "only if still not converted 7 days later": a wait_for that times out
    if await ctx.wait_for("converted", "Order Completed", timeout=7 * DAY) is None:
        await ctx.send("postcard", "welcome-postcard", channel="direct_mail")


@pytest.fixture
def tester_for(store_url: str) -> Iterator[Any]:
    made: list[JourneyTester] = []

    def make(*journeys: Any) -> JourneyTester:
        made.append(JourneyTester(*journeys, store=store_url))
        return made[-1]

    yield make
    for t in made:
        t.close()


def test_buying_in_store_ends_cart_abandonment_between_two_sends(tester_for: Any) -> None:
    t = tester_for(cart_abandonment)
    t.emit("ada", "Product Added", {"cart_id": "k1", "product_id": "sku-1"}, channel="web")
    t.emit("bob", "Product Added", {"cart_id": "k2", "product_id": "sku-2"}, channel="web")
    t.advance(hours=2)
    assert t.steps("ada") == ["nudge"]
    assert t.deliveries("ada")[0].data == {"cart_id": "k1"}

    t.emit("ada", "Order Completed", {"order_id": "o-1", "revenue": 20.0}, channel="pos")
    t.advance(days=2)

    assert t.steps("ada") == ["nudge"]  # the coupon never queued: the POS purchase ended the run
    ada = t.run("ada")
    assert (ada.status, ada.reason) == ("exited", "goal reached: Order Completed")
    assert t.steps("bob") == ["nudge", "coupon"]
    assert t.run("bob").status == "completed"


def test_purchase_within_the_first_hour_sends_nothing(tester_for: Any) -> None:
    t = tester_for(cart_abandonment)
    t.emit("ada", "Product Added", {"cart_id": "k1"})
    t.advance(minutes=20)
    t.emit("ada", "Order Completed", {"order_id": "o-1"}, channel="pos")
    t.advance(days=3)
    assert t.deliveries("ada") == []
    assert t.run("ada").status == "exited"


def test_a_goal_routed_in_the_same_batch_as_the_trigger_still_ends_the_run(tester_for: Any) -> None:
    t = tester_for(cart_abandonment)
    t.omni.track_many([
        ("ada", "Order Completed", {"order_id": "o-0"}),  # before the trigger: not a goal of that run
        ("ada", "Product Added", {"cart_id": "k1"}),
        ("bob", "Product Added", {"cart_id": "k2"}),
        ("bob", "Order Completed", {"order_id": "o-1"}),
    ])
    t.omni.run_until_idle()
    assert (t.run("ada").status, t.run("bob").status) == ("waiting", "exited")
    t.advance(days=2)
    assert (t.steps("ada"), t.steps("bob")) == (["nudge", "coupon"], [])


def test_welcome_series_over_fourteen_virtual_days(tester_for: Any) -> None:
    t = tester_for(welcome_series)
    start = t.clock.now()
    t.emit("ada", "Signed Up", channel="web")
    t.emit("bob", "Signed Up", channel="app")
    t.advance(days=8)
    t.emit("bob", "Order Completed", {"order_id": "o-9"}, channel="web")
    t.advance(days=6)

    queued = t.deliveries("ada")
    assert [d.step for d in queued] == ["hello", "tips", "offer", "postcard"]
    assert [(d.created_at - start).days for d in queued] == [0, 2, 7, 14]
    assert [list(d.channels) for d in queued] == [["email"], ["email"], ["sms", "email"], ["direct_mail"]]
    assert t.steps("bob") == ["hello", "tips", "offer"]  # converted: no postcard
    assert t.statuses("ada") == ["completed"] and t.statuses("bob") == ["completed"]


def test_an_event_that_arrives_before_its_wait_for_still_counts(tester_for: Any) -> None:
    @journey("review-request", version="1", trigger="Order Completed")
    async def review_request(ctx: JourneyContext) -> None:
        await ctx.sleep("settle", 3 * DAY)
        cart = ctx.trigger.properties["cart_id"]
        got = await ctx.wait_for("picked-up", "Order Picked Up", where={"cart_id": cart}, timeout=DAY)
        await ctx.send("ask", "review" if got else "pickup-reminder", channel="email")

    t = tester_for(review_request)
    t.emit("ada", "Order Completed", {"cart_id": "k1"}, channel="web")
    t.emit("bob", "Order Completed", {"cart_id": "k2"}, channel="web")
    t.advance(days=1)
    # both pick up while the runs sleep, long before their wait_for exists; bob's is another cart
    t.emit("ada", "Order Picked Up", {"cart_id": "k1"}, channel="pos")
    t.emit("bob", "Order Picked Up", {"cart_id": "k-other"}, channel="pos")
    t.advance(days=5)
    assert [d.template for d in t.deliveries("ada")] == ["review"]
    assert [d.template for d in t.deliveries("bob")] == ["pickup-reminder"]


def test_wait_for_returns_the_touchpoint_and_consumes_it(tester_for: Any) -> None:
    seen: list[Any] = []

    @journey("two-clicks", version="1", trigger="Signed Up")
    async def two_clicks(ctx: JourneyContext) -> None:
        first = await ctx.wait_for("first", "Link Clicked", timeout=DAY)
        second = await ctx.wait_for("second", "Link Clicked", timeout=DAY)
        seen.append((first and first.properties["n"], second and second.properties["n"]))

    t = tester_for(two_clicks)
    t.emit("ada", "Signed Up")
    t.emit("ada", "Link Clicked", {"n": 1}, channel="email")
    t.emit("ada", "Link Clicked", {"n": 2}, channel="sms")
    assert seen[-1] == (1, 2)


@pytest.mark.parametrize(
    ("reentry", "expected"),
    [("never", ["completed"]), ("after_exit", ["completed", "completed"]), ("always", ["completed"] * 3)],
)
def test_reentry_rules(tester_for: Any, reentry: str, expected: list[str]) -> None:
    @journey(f"browse-{reentry}", version="1", trigger="Product Viewed", reentry=reentry)
    async def browse(ctx: JourneyContext) -> None:
        await ctx.sleep("linger", timedelta(hours=1))
        await ctx.send("ping", "browse-abandon", channel="email")

    t = tester_for(browse)
    t.emit("ada", "Product Viewed", {"product_id": "a"})
    t.emit("ada", "Product Viewed", {"product_id": "b"})  # while a run is active
    t.advance(hours=2)
    t.emit("ada", "Product Viewed", {"product_id": "c"})  # after it ended
    t.advance(hours=2)
    assert t.statuses("ada") == expected
    assert len(t.deliveries("ada")) == len(expected)


def test_one_active_run_per_customer_by_default(tester_for: Any) -> None:
    t = tester_for(cart_abandonment)
    t.omni.track_many([("ada", "Product Added", {"cart_id": f"k{i}"}) for i in range(5)])
    t.omni.run_until_idle()
    assert t.statuses("ada") == ["waiting"]


def test_ctx_run_is_memoised_across_replays(tester_for: Any) -> None:
    calls: list[str] = []

    @journey("coupon-code", version="1", trigger="Signed Up")
    async def coupon_code(ctx: JourneyContext) -> None:
        code = await ctx.run("make-code", lambda: calls.append("x") or f"WELCOME-{len(calls)}")
        await ctx.sleep("wait", DAY)
        await ctx.sleep("wait-more", DAY)
        await ctx.send("code", "coupon", channel="email", data={"code": code})

    t = tester_for(coupon_code)
    t.emit("ada", "Signed Up")
    t.advance(days=3)
    assert calls == ["x"]
    assert t.deliveries("ada")[0].data == {"code": "WELCOME-1"}


def test_context_exposes_customer_trigger_and_history(tester_for: Any) -> None:
    seen: dict[str, Any] = {}

    @journey("vip-check", version="1", trigger="Order Completed")
    async def vip_check(ctx: JourneyContext) -> None:
        seen["name"] = ctx.customer.first_name
        seen["trigger"] = (ctx.trigger.channel, ctx.trigger.properties["order_id"])
        seen["history"] = [(tp.channel, tp.name) for tp in ctx.history()]
        seen["now"] = ctx.now()

    t = tester_for(vip_check)
    t.identify("ada", email="ada@example.com", traits={"first_name": "Ada"})
    t.emit("ada", "Product Viewed", {"product_id": "a"}, channel="app")
    t.emit("ada", "Order Completed", {"order_id": "o-1"}, channel="pos")
    assert seen == {
        "name": "Ada",
        "trigger": ("pos", "o-1"),
        "history": [("app", "Product Viewed"), ("pos", "Order Completed")],
        "now": t.clock.now(),
    }


def test_a_new_version_inserts_a_step_while_old_runs_are_in_flight(store_url: str, clock: VirtualClock) -> None:
    def version(v: str, with_extra: bool) -> Any:
        @journey("onboarding", version=v, trigger="Signed Up")
        async def onboarding(ctx: JourneyContext) -> None:
            await ctx.send("a", "onboard-a", channel="email")
            await ctx.sleep("wait", DAY)
            if with_extra:
                await ctx.send("b", "onboard-b", channel="email")
            await ctx.send("c", "onboard-c", channel="email")

        return onboarding

    with Omni(store_url, clock=clock) as omni:
        omni.register(version("1", False))
        omni.track("old", "Signed Up")
        omni.track("moved", "Signed Up")
        omni.run_until_idle()
        omni.register(version("2", True))  # deployed while two v1 runs sleep
        omni.track("new", "Signed Up")
        omni.run_until_idle()
        moved = next(r for r in omni.runs(customer_id="moved"))
        assert omni.migrate_run(moved.id, "2").version == "2"
        clock.advance(days=2)
        omni.run_until_idle()

        def steps(cid: str) -> list[str | None]:
            return [d.step for d in sorted(omni.deliveries(customer_id=cid), key=lambda d: (d.created_at, d.step))]

        assert steps("old") == ["a", "c"]
        assert steps("new") == ["a", "b", "c"]
        assert steps("moved") == ["a", "b", "c"]  # `a` replayed by name, `b` ran, nothing sent twice
        assert {(r.customer_id, r.version, r.status) for r in omni.runs()} == {
            ("old", "1", "completed"), ("new", "2", "completed"), ("moved", "2", "completed")
        }


def test_a_run_whose_version_is_gone_fails_clearly_and_can_be_migrated(store_url: str, clock: VirtualClock) -> None:
    @journey("gone", version="1", trigger="Signed Up")
    async def v1(ctx: JourneyContext) -> None:
        await ctx.send("hi", "gone-hi", channel="email")
        await ctx.sleep("wait", DAY)
        await ctx.send("bye", "gone-bye", channel="email")

    @journey("gone", version="2", trigger="Signed Up")
    async def v2(ctx: JourneyContext) -> None:
        await ctx.send("hi", "gone-hi", channel="email")
        await ctx.sleep("wait", DAY)
        await ctx.send("bye", "gone-bye-v2", channel="email")

    with Omni(store_url, clock=clock) as omni:
        omni.register(v1)
        omni.track("ada", "Signed Up")
        omni.run_until_idle()
    clock.advance(days=2)
    with Omni(store_url, clock=clock) as omni:  # the next deploy only has version 2
        omni.register(v2)
        omni.run_until_idle()
        [run] = omni.runs(customer_id="ada")
        assert run.status == "failed"
        assert "journey 'gone' version '1' is not registered (registered versions: 2)" in (run.reason or "")
        assert omni.migrate_run(run.id, "2").status == "running"
        omni.run_until_idle()
        assert omni.runs(customer_id="ada")[0].status == "completed"
        assert sorted(d.template for d in omni.deliveries(customer_id="ada")) == ["gone-bye-v2", "gone-hi"]


def test_changed_code_under_a_recorded_run_fails_that_run(store_url: str, clock: VirtualClock) -> None:
    @journey("drift", version="1", trigger="Signed Up")
    async def before(ctx: JourneyContext) -> None:
        await ctx.send("first", "drift-1", channel="email")
        await ctx.sleep("wait", DAY)

    @journey("drift", version="1", trigger="Signed Up")
    async def after(ctx: JourneyContext) -> None:  # same version, but "first" is now a sleep
        await ctx.sleep("first", DAY)
        await ctx.sleep("wait", DAY)

    with Omni(store_url, clock=clock) as omni:
        omni.register(before)
        omni.track("ada", "Signed Up")
        omni.run_until_idle()
    clock.advance(days=2)
    with Omni(store_url, clock=clock) as omni:
        omni.register(after)
        omni.run_until_idle()
        [run] = omni.runs(customer_id="ada")
        assert run.status == "failed"
        assert run.reason is not None and run.reason.startswith("NonDeterminismError")
        assert "step 'first' was recorded as send" in run.reason and "now runs as sleep" in run.reason


def test_a_step_name_used_twice_fails_the_run(tester_for: Any) -> None:
    @journey("twice", version="1", trigger="Signed Up")
    async def twice(ctx: JourneyContext) -> None:
        for _ in range(2):
            await ctx.send("same", "twice", channel="email")

    t = tester_for(twice)
    t.emit("ada", "Signed Up")
    run = t.run("ada")
    assert run.status == "failed" and "step name 'same' used twice" in (run.reason or "")
    assert t.deliveries("ada") == []  # the failed attempt's writes were rolled back


def test_a_failing_step_is_retried_with_backoff_then_fails_and_can_be_retried(tester_for: Any) -> None:
    state = {"broken": True, "calls": 0}

    def flaky() -> str:
        state["calls"] += 1
        if state["broken"]:
            raise RuntimeError("inventory service down")
        return "ok"

    @journey("flaky", version="1", trigger="Signed Up")
    async def flaky_journey(ctx: JourneyContext) -> None:
        await ctx.send("before", "flaky-before", channel="email")
        await ctx.run("lookup", flaky)
        await ctx.send("after", "flaky-after", channel="email")

    t = tester_for(flaky_journey)
    t.emit("ada", "Signed Up")
    assert t.run("ada").status == "running" and t.run("ada").attempts == 1
    t.advance(days=1)
    run = t.run("ada")
    assert (run.status, run.attempts) == ("failed", 5)
    assert run.reason == "RuntimeError: inventory service down"
    assert t.deliveries("ada") == []
    state["broken"] = False
    t.omni.retry_run(run.id)
    t.omni.run_until_idle()
    assert t.run("ada").status == "completed"
    assert t.steps("ada") == ["after", "before"]  # both queued by the successful retry


def test_cancel_run_cancels_what_it_queued(tester_for: Any) -> None:
    @journey("later", version="1", trigger="Signed Up")
    async def later(ctx: JourneyContext) -> None:
        await ctx.send("deferred", "later", channel="email", at=ctx.now() + 3 * DAY)
        await ctx.sleep("wait", 5 * DAY)

    t = tester_for(later)
    t.emit("ada", "Signed Up")
    run = t.omni.cancel_run(t.run("ada").id)
    assert run.status == "cancelled"
    assert [d.status for d in t.deliveries("ada")] == ["cancelled"]


def test_an_expired_lease_is_picked_up_by_another_worker(store_url: str, clock: VirtualClock) -> None:
    @journey("leased", version="1", trigger="Signed Up")
    async def leased(ctx: JourneyContext) -> None:
        await ctx.send("only", "leased", channel="email")

    with Omni(store_url, clock=clock) as dead, Omni(store_url, clock=clock) as alive:
        dead.register(leased)
        alive.register(leased)
        dead.track("ada", "Signed Up")
        dead._core.journeys.route()
        assert len(dead._core.journeys.claim()) == 1  # ... and the worker dies before replaying it
        alive.run_until_idle()
        assert alive.deliveries(customer_id="ada") == []  # leased to the dead worker
        clock.advance(seconds=alive._core.journeys.lease_seconds + 1)
        alive.run_until_idle()
        assert alive.runs(customer_id="ada")[0].status == "completed"
        assert [d.step for d in alive.deliveries(customer_id="ada")] == ["only"]


def test_merged_profiles_keep_one_active_run(tester_for: Any) -> None:
    t = tester_for(cart_abandonment)
    t.emit({"anonymous_id": "web-1"}, "Product Added", {"cart_id": "k1"})
    t.advance(minutes=5)
    t.identify("ada", email="ada@example.com")
    t.emit("ada", "Product Added", {"cart_id": "k2"})
    assert len(t.runs("ada")) == 1
    t.identify("ada", anonymous_id="web-1")  # the web visitor was Ada: the two profiles merge
    t.omni.run_until_idle()
    runs = t.runs("ada")
    assert [r.status for r in runs] == ["waiting", "cancelled"]  # the older run continues
    assert runs[1].reason == f"profiles merged into ada: run {runs[0].id} continues"
    t.advance(hours=2)
    assert t.steps("ada") == ["nudge"]


def test_journey_definitions_are_validated() -> None:
    async def fn(ctx: JourneyContext) -> None:
        return None

    with pytest.raises(ValidationError, match="versions are explicit strings"):
        journey("x", version=2, trigger="A")(fn)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="reentry"):
        journey("x", trigger="A", reentry="sometimes")(fn)
    with pytest.raises(ValidationError, match="trigger"):
        journey("x", trigger=[])(fn)


def test_step_arguments_are_validated(tester_for: Any) -> None:
    @journey("bad-args", version="1", trigger="Signed Up")
    async def bad_args(ctx: JourneyContext) -> None:
        await ctx.sleep("nap", 3600)  # type: ignore[arg-type]

    t = tester_for(bad_args)
    t.emit("ada", "Signed Up")
    t.advance(days=1)
    run = t.run("ada")
    assert run.status == "failed"
    assert run.reason == "ValidationError: nap.duration: expected a datetime.timedelta"


def test_an_event_routed_while_its_run_is_being_replayed_is_not_lost(pg_schema_url: str, clock: VirtualClock) -> None:
    """PostgreSQL, two workers: the router of one wakes a run the other is replaying at that moment."""
    calls: list[str] = []

    with Omni(pg_schema_url, clock=clock) as replaying, Omni(pg_schema_url, clock=clock) as routing:

        def meanwhile() -> int:
            calls.append("peek")
            if len(calls) == 1:  # another worker routes a new event for this customer right now
                routing.track("ada", "Coupon Applied", {"code": "X"})
                routing._core.journeys.route()
            return len(calls)

        @journey("race", version="1", trigger="Signed Up")
        async def race(ctx: JourneyContext) -> None:
            await ctx.send("hello", "race-hello", channel="email")
            await ctx.run("peek", meanwhile)
            got = await ctx.wait_for("coupon", "Coupon Applied", timeout=DAY)
            await ctx.send("after", "race-coupon" if got else "race-none", channel="email")

        replaying.register(race)
        routing.register(race)
        replaying.track("ada", "Signed Up")
        replaying.run_until_idle()
        [run] = replaying.runs(customer_id="ada")
        assert run.status == "completed"
        # ctx.run is at-least-once: the batch and its run-by-run redo lost the lease and were discarded,
        # then the woken run replayed with the coupon in its inbox
        assert len(calls) == 3
        assert sorted(d.template for d in replaying.deliveries(customer_id="ada")) == ["race-coupon", "race-hello"]


def test_another_journeys_send_triggers_a_journey(store_url: str) -> None:
    """End to end through the dispatcher (memory provider): a sent receipt starts the review journey."""
    from omnisdk import Email, Message

    @journey("receipt", version="1", trigger="Order Completed", reentry="always")
    async def receipt(ctx: JourneyContext) -> None:
        await ctx.send("receipt", "receipt", channel="email", purpose="transactional")

    @journey("review", version="1", trigger="Message Sent", trigger_where={"template": "receipt"})
    async def review(ctx: JourneyContext) -> None:
        await ctx.sleep("settle", 3 * DAY)
        await ctx.send("ask", "review-request", channel="email", purpose="transactional")

    config = {"channels": {"email": {"provider": "memory"}}}
    with JourneyTester(receipt, review, store=store_url, config=config) as t:
        t.omni.templates.add(Message("receipt", email=Email(subject="Thanks", text="Your order")))
        t.omni.templates.add(Message("review-request", email=Email(subject="How was it?", text="Tell us")))
        t.identify("ada", email="ada@example.com")
        t.emit("ada", "Order Completed", {"order_id": "o-1"}, channel="pos")
        assert sorted(r.journey for r in t.runs("ada")) == ["receipt", "review"]
        t.advance(days=4)
        sent = [(d.template, d.status) for d in t.deliveries("ada")]
        assert sent == [("receipt", "sent"), ("review-request", "sent")]
        assert t.statuses("ada", journey="review") == ["completed"]  # its own send did not re-trigger it


def test_sleep_until_and_a_wait_without_timeout(tester_for: Any) -> None:
    from datetime import datetime

    @journey("pickup", version="1", trigger="Order Ready for Pickup")
    async def pickup(ctx: JourneyContext) -> None:
        opening = datetime.fromisoformat(ctx.trigger.properties["store_opens"])
        await ctx.sleep_until("store-opens", opening)
        await ctx.send("ready", "pickup-ready", channel="sms")
        picked = await ctx.wait_for("picked", "Order Picked Up", timeout=None)
        assert picked is not None
        await ctx.send("thanks", "pickup-thanks", channel="email", data={"store": picked.properties["store"]})

    t = tester_for(pickup)
    opens = (t.clock.now() + timedelta(hours=20)).isoformat()
    t.emit("ada", "Order Ready for Pickup", {"store_opens": opens}, channel="pos")
    t.advance(hours=19)
    assert t.steps("ada") == []
    t.advance(hours=2)
    assert t.steps("ada") == ["ready"]
    t.advance(days=30)  # no timeout: it keeps waiting, as a row
    assert (t.run("ada").status, t.run("ada").due_at) == ("waiting", None)
    t.emit("ada", "Order Picked Up", {"store": "soho"}, channel="pos")
    assert t.steps("ada") == ["ready", "thanks"]
    assert t.deliveries("ada")[-1].data == {"store": "soho"}


def test_apps_on_other_schemas_of_one_database_route_while_one_router_holds_its_lock(
    pg_schema_url: str, postgres_url: str
) -> None:
    """The router's advisory lock is keyed by schema too: another app's router, busy in the same
    PostgreSQL database under another schema, must not stop this one routing (it used to)."""
    import psycopg

    from omnisdk.store._runs import ROUTER_LOCK_SQL

    other = "omni_test_other_" + pg_schema_url.rsplit("_", 1)[-1]
    with psycopg.connect(postgres_url) as busy:  # another app's router, mid-transaction
        busy.execute(f'CREATE SCHEMA IF NOT EXISTS "{other}"')
        busy.execute(f'SET LOCAL search_path TO "{other}"')
        assert busy.execute(ROUTER_LOCK_SQL).fetchone() == (True,)
        t = JourneyTester(cart_abandonment, store=pg_schema_url)
        try:
            t.emit("ada", "Product Added", {"cart_id": "k1"}, channel="web")
            assert t.statuses("ada") == ["waiting"]
        finally:
            t.close()
        busy.rollback()
        busy.execute(f'DROP SCHEMA IF EXISTS "{other}" CASCADE')
        busy.commit()
