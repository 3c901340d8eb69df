"""The dispatcher: outbox rows become provider calls, with policies, retries, failover and fallback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import jinja2
import pytest

import omnisdk
from dispatch_providers import Script, TestProviders, signed
from omnisdk import SMS, Email, Message, Omni, Push, VirtualClock
from omnisdk.delivery import enqueue_delivery
from omnisdk.delivery._sending import HISTORY_NAMES, TRIGGER_NAMES, template_reads

OmniFactory = Callable[..., Omni]


@pytest.fixture
def make_omni(store_url: str, clock: VirtualClock) -> Iterator[OmniFactory]:
    """An Omni on the test's store with the scripted providers, configured per test."""
    opened: list[Omni] = []

    def make(channels: dict[str, Any], **config: Any) -> Omni:
        omni = Omni(store_url, config={"channels": channels, **config}, clock=clock, plugins=[TestProviders()],
                    load_entry_points=False)
        omni.templates.add(Message(
            "hello",
            sms=SMS(text="Hi {{ customer.first_name }}"),
            email=Email(subject="Hello {{ customer.first_name }}", text="Hi"),
            push=Push(title="Hi", body="Hello {{ customer.first_name }}"),
        ))
        omni.templates.add(Message("broken", sms=SMS(text="Hi {{ customer.no_such_trait }}")))
        opened.append(omni)
        return omni

    yield make
    for omni in opened:
        omni.close()


def customer(omni: Omni, cid: str, *, consent: tuple[str, ...] = ("sms", "email", "push"), **ids: Any) -> str:
    ids.setdefault("phone", "+14155550100")
    omni.identify(cid, traits={"first_name": "Ada"}, timezone="UTC", **ids)
    for channel in consent:
        omni.consent(cid, channel=channel, granted=True)
    return cid


def queue(omni: Omni, cid: str, channels: list[str], *, template: str = "hello", key: str | None = None,
          **kwargs: Any) -> str:
    with omni.store.transaction() as tx:
        return enqueue_delivery(tx, key=key or f"run-{cid}:{template}", customer_id=cid, template=template,
                                channels=channels, now=omni.clock.timestamp(), run_id=f"run-{cid}", journey="j",
                                step=template, **kwargs)


def only(omni: Omni, delivery_id: str) -> omnisdk.Delivery:
    return next(d for d in omni.deliveries() if d.id == delivery_id)


def test_a_queued_message_is_sent_and_recorded(make_omni: OmniFactory) -> None:
    script = Script()
    omni = make_omni({"sms": {"provider": "scripted", "script": script}})
    customer(omni, "c-1")
    did = queue(omni, "c-1", ["sms"])

    assert omni.run_until_idle() >= 1

    [delivery] = omni.deliveries(customer_id="c-1")
    assert delivery.id == did
    assert (delivery.status, delivery.channel, delivery.provider, delivery.attempts) == ("sent", "sms", "scripted", 1)
    assert delivery.provider_message_id == f"scripted-{did}"
    assert (delivery.cost, delivery.segments) == (0.0075, 1)
    assert [d.action for d in delivery.decisions] == ["send", "sent"]
    assert [m.to for m in script.sent] == ["+14155550100"]
    assert script.sent[0].content == SMS(text="Hi Ada")
    assert script.sent[0].idempotency_key == "run-c-1:hello:sms"
    sent = [t for t in omni.timeline("c-1") if t.name == "Message Sent"]
    assert [(t.channel, t.properties["delivery_id"], t.properties["step"]) for t in sent] == [("sms", did, "hello")]


def test_the_decision_log_is_append_only_rows_written_once_per_batch(make_omni: OmniFactory) -> None:
    """Each entry is a row of `delivery_decisions` (who, what, when, which policy, why), inserted once and
    never rewritten; a batch's entries go in one statement, and the old JSON column stays empty."""
    omni = make_omni({"sms": {"provider": "scripted", "script": Script()}})
    ids = [queue(omni, customer(omni, cid, phone=phone), ["sms"])
           for cid, phone in (("c-1", "+14155550101"), ("c-2", "+14155550102"))]  # one batch
    inserts: list[str] = []
    execute = omnisdk.store.Transaction.execute

    def spy(self: Any, sql: str, params: Any = ()) -> int:
        if sql.startswith("INSERT INTO delivery_decisions"):
            inserts.append(sql)
        return execute(self, sql, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(omnisdk.store.Transaction, "execute", spy)
        omni.run_until_idle()
    assert len(inserts) == 2  # the claim's "send" entries, then the record's "sent" entries
    with omni.store.transaction() as tx:
        rows = tx.query("SELECT delivery_id, actor, outcome, channel FROM delivery_decisions ORDER BY seq")
        logs = [tx.scalar("SELECT decisions FROM deliveries WHERE id = ?", (did,)) for did in ids]
    assert sorted(rows) == sorted((did, "dispatcher", outcome, "sms") for did in ids for outcome in ("send", "sent"))
    assert [r[2] for r in rows] == ["send", "send", "sent", "sent"]
    assert all(log in ("[]", []) for log in logs)
    assert [[(d.action, d.actor) for d in only(omni, did).decisions] for did in ids] == [
        [("send", "dispatcher"), ("sent", "dispatcher")]] * 2


class OddReasons:
    """A plugin policy whose verdict's reason is not a string."""

    @omnisdk.hookimpl
    def register_policies(self, register: Any) -> None:
        def no_sms(ctx: omnisdk.policies.PolicyContext) -> omnisdk.policies.Verdict | None:
            odd: Any = ["no", "sms"]
            return omnisdk.policies.Verdict(action="skip", reason=odd) if ctx.channel == "sms" else None

        register(no_sms)


def test_a_policy_reason_that_is_not_a_string_does_not_stop_the_next_channel(
    store_url: str, clock: VirtualClock
) -> None:
    with Omni(store_url, config={"channels": {"sms": {"provider": "scripted", "script": Script()},
                                              "email": {"provider": "scripted", "script": Script()}}},
              clock=clock, plugins=[TestProviders(), OddReasons()], load_entry_points=False) as omni:
        omni.templates.add(Message("hello", sms=SMS(text="Hi"), email=Email(subject="Hi", text="Hi")))
        customer(omni, "c-1", email="ada@example.com")
        did = queue(omni, "c-1", ["sms", "email"])
        omni.run_until_idle()
        delivery = only(omni, did)
    assert (delivery.status, delivery.channel) == ("sent", "email")
    assert [d.action for d in delivery.decisions] == ["send", "sent"]


def test_no_consent_skips_with_the_reason_in_the_decision_log(make_omni: OmniFactory) -> None:
    script = Script()
    omni = make_omni({"sms": {"provider": "scripted", "script": script}})
    customer(omni, "c-1", consent=())
    queue(omni, "c-1", ["sms"])

    omni.run_until_idle()

    [delivery] = omni.deliveries(customer_id="c-1", status="skipped")
    assert "no marketing consent on sms" in delivery.decisions[-1].reason
    assert script.sent == []


def test_quiet_hours_defer_until_they_end(make_omni: OmniFactory, clock: VirtualClock) -> None:
    script = Script()
    omni = make_omni({"sms": {"provider": "scripted", "script": script}},
                     policies={"quiet_hours": {"start": "21:00", "end": "08:00"}})
    customer(omni, "c-1")
    omni.identify("c-1", timezone="Asia/Tokyo")  # 12:00 UTC is 21:00 in Tokyo
    queue(omni, "c-1", ["sms"])

    omni.run_until_idle()
    [deferred] = omni.deliveries(customer_id="c-1")
    assert deferred.status == "deferred"
    assert script.sent == []

    clock.advance(hours=10, minutes=59)
    omni.run_until_idle()
    assert script.sent == []
    clock.advance(minutes=2)
    omni.run_until_idle()
    assert only(omni, deferred.id).status == "sent"
    assert len(script.sent) == 1


def test_retry_after_is_honoured_through_the_outbox(make_omni: OmniFactory, clock: VirtualClock) -> None:
    script = Script(queue=[omnisdk.RetryableError(reason="429 Too Many Requests", retry_after=120, status=429)])
    omni = make_omni({"sms": {"provider": "scripted", "script": script}})
    customer(omni, "c-1")
    did = queue(omni, "c-1", ["sms"])

    omni.run_until_idle()
    waiting = only(omni, did)
    assert (waiting.status, waiting.attempts, waiting.error) == ("queued", 1, "429 Too Many Requests")
    assert (waiting.due_at - clock.now()).total_seconds() >= 120

    clock.advance(seconds=100)
    omni.run_until_idle()
    assert script.sent == []
    clock.advance(seconds=30)
    omni.run_until_idle()
    done = only(omni, did)
    assert (done.status, done.attempts) == ("sent", 2)
    assert [d.action for d in done.decisions] == ["send", "retry", "send", "sent"]


def test_a_plugin_that_raises_is_an_unknown_outcome_and_the_runner_survives(
    make_omni: OmniFactory, clock: VirtualClock
) -> None:
    """The request may have left before the plugin failed: at-most-once never resends, at-least-once does."""
    sms_script = Script(queue=[RuntimeError("plugin bug")])
    push_script = Script(queue=[RuntimeError("plugin bug")])
    omni = make_omni({"sms": {"provider": "scripted", "script": sms_script},
                      "push": {"provider": "scripted", "script": push_script}})
    customer(omni, "c-1", push_token="tok-1")
    sms = queue(omni, "c-1", ["sms"])
    push = queue(omni, "c-1", ["push"], key="run-c-1:push")

    omni.run_until_idle()
    failed = only(omni, sms)
    assert failed.status == "failed" and "RuntimeError: plugin bug" in (failed.error or "")
    assert "outcome unknown" in (failed.error or "")
    assert "RuntimeError: plugin bug" in (only(omni, push).error or "")

    clock.advance(minutes=5)
    omni.run_until_idle()
    assert (only(omni, sms).status, only(omni, push).status) == ("failed", "sent")
    assert sms_script.sent == []


def test_a_row_cancelled_after_the_claim_is_not_sent(make_omni: OmniFactory, clock: VirtualClock) -> None:
    """A journey that exits (or a broadcast cancelled) in another process between claim and call wins."""
    script = Script()
    omni = make_omni({"sms": {"provider": "scripted", "script": script}})
    customer(omni, "c-1")
    did = queue(omni, "c-1", ["sms"])
    dispatcher = omni._core.dispatcher
    claimed, _ = dispatcher._claim(clock.timestamp())
    assert [c.id for c in claimed] == [did]
    with omni.store.transaction() as tx:
        tx.execute("UPDATE deliveries SET status = 'cancelled', error = 'journey exited' WHERE id = ?", (did,))

    assert dispatcher._mark_sending(claimed) == set()
    omni.run_until_idle()
    assert (only(omni, did).status, script.sent) == ("cancelled", [])


def test_marking_sending_takes_only_the_rows_this_worker_still_holds(
    make_omni: OmniFactory, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One statement per chunk of ids (500, here 2), on both stores."""
    from omnisdk.store import _deliveries

    monkeypatch.setattr(_deliveries, "_CHUNK", 2)
    omni = make_omni({"sms": {"provider": "scripted", "script": Script()}})
    ids = [queue(omni, customer(omni, f"c-{i}", phone=f"+1415555010{i}"), ["sms"]) for i in range(5)]
    dispatcher = omni._core.dispatcher
    claimed, _ = dispatcher._claim(clock.timestamp())
    assert sorted(c.id for c in claimed) == sorted(ids)
    with omni.store.transaction() as tx:
        tx.execute("UPDATE deliveries SET status = 'cancelled' WHERE id = ?", (ids[0],))
        tx.execute("UPDATE deliveries SET lease_owner = 'another-worker' WHERE id = ?", (ids[1],))

    assert dispatcher._mark_sending(claimed) == set(ids[2:])
    with omni.store.transaction() as tx:
        rows = dict(tx.query("SELECT id, status FROM deliveries"))
    assert rows == {ids[0]: "cancelled", ids[1]: "queued", **{did: "sending" for did in ids[2:]}}
    assert dispatcher._mark_sending(claimed) == set()  # marked once only


def test_a_send_claimed_but_not_yet_recorded_counts_for_the_next_claims_dedupe(
    make_omni: OmniFactory, clock: VirtualClock
) -> None:
    omni = make_omni({"sms": {"provider": "scripted", "script": Script()}})
    customer(omni, "c-1")

    def promo(key: str) -> str:
        with omni.store.transaction() as tx:
            return enqueue_delivery(tx, key=key, customer_id="c-1", template="hello", channels=["sms"],
                                    now=clock.timestamp())

    first = promo("first")
    dispatcher = omni._core.dispatcher
    claimed, _ = dispatcher._claim(clock.timestamp())
    assert [c.id for c in claimed] == [first]
    second = promo("second")  # the same template: a duplicate while the first is in flight

    assert dispatcher._claim(clock.timestamp()) == ([], 1)
    skipped = only(omni, second)
    assert skipped.status == "skipped" and skipped.decisions[-1].reason.startswith("duplicate: 'hello'")


def test_gives_up_after_max_attempts(make_omni: OmniFactory, clock: VirtualClock) -> None:
    script = Script(queue=[omnisdk.RetryableError(reason="503")] * 3)
    omni = make_omni({"sms": {"provider": "scripted", "script": script}}, delivery={"max_attempts": 3})
    customer(omni, "c-1")
    did = queue(omni, "c-1", ["sms"])
    for _ in range(5):
        omni.run_until_idle()
        clock.advance(minutes=15)
    failed = only(omni, did)
    assert (failed.status, failed.attempts) == ("failed", 3)
    assert failed.error is not None and "gave up after 3 attempts" in failed.error


def test_a_permanent_error_moves_down_the_waterfall_and_forgets_a_dead_address(make_omni: OmniFactory) -> None:
    sms, email = Script(queue=[omnisdk.PermanentError(reason="landline", forget_address=True)]), Script()
    omni = make_omni({"sms": {"provider": "scripted", "script": sms},
                      "email": {"provider": "scripted", "script": email}})
    customer(omni, "c-1", email="ada@example.com")
    did = queue(omni, "c-1", ["sms", "email"])

    omni.run_until_idle()

    delivery = only(omni, did)
    assert (delivery.status, delivery.channel) == ("sent", "email")
    assert [(d.action, d.channel) for d in delivery.decisions] == [
        ("send", "sms"), ("forget_address", "sms"), ("fallback", "email"), ("send", "email"), ("sent", "email"),
    ]
    assert email.to() == ["ada@example.com"]
    assert omni.customer("c-1").phone is None


def test_a_permanent_error_without_fallback_fails_the_delivery(make_omni: OmniFactory) -> None:
    sms = Script(queue=[omnisdk.PermanentError(reason="invalid number", fallback=False)])
    omni = make_omni({"sms": {"provider": "scripted", "script": sms}, "email": {"provider": "scripted",
                                                                                "script": Script()}})
    customer(omni, "c-1", email="ada@example.com")
    did = queue(omni, "c-1", ["sms", "email"])
    omni.run_until_idle()
    assert (only(omni, did).status, only(omni, did).error) == ("failed", "invalid number")


def test_failover_to_the_fallback_provider(make_omni: OmniFactory, clock: VirtualClock) -> None:
    primary = Script(queue=[omnisdk.RetryableError(reason="500")] * 2)
    backup = Script()
    omni = make_omni({"email": {"provider": "scripted", "script": primary, "fallback_provider": "backup",
                                "backup": {"script": backup}}})
    customer(omni, "c-1", email="ada@example.com")
    did = queue(omni, "c-1", ["email"])
    for _ in range(3):
        omni.run_until_idle()
        clock.advance(minutes=1)

    delivery = only(omni, did)
    assert (delivery.status, delivery.provider, delivery.attempts) == ("sent", "backup", 3)
    assert "failover" in [d.action for d in delivery.decisions]
    assert primary.sent == [] and backup.to() == ["ada@example.com"]


def test_the_circuit_breaker_stops_calls_to_a_failing_provider(make_omni: OmniFactory, clock: VirtualClock) -> None:
    script = Script(queue=[omnisdk.RetryableError(reason="503")] * 2)
    omni = make_omni({"sms": {"provider": "scripted", "script": script, "max_concurrency": 1}},
                     delivery={"breaker_threshold": 2, "breaker_cooldown": 60, "batch_size": 1})
    for i in range(3):
        customer(omni, f"c-{i}", phone=f"+1415555010{i}")
        queue(omni, f"c-{i}", ["sms"])

    omni.run_until_idle()  # two failed calls open the circuit; the third row waits for it
    assert script.batches == [1, 1]
    assert {d.status for d in omni.deliveries()} == {"queued", "deferred"}
    assert any("circuit open" in d.decisions[-1].reason for d in omni.deliveries())

    clock.advance(seconds=61)  # half-open: a probe goes through, succeeds, the circuit closes
    for _ in range(4):
        omni.run_until_idle()
        clock.advance(seconds=30)
    assert [d.status for d in omni.deliveries()] == ["sent"] * 3


def test_batches_follow_the_providers_max_batch_size(make_omni: OmniFactory) -> None:
    script = Script()
    omni = make_omni({"email": {"provider": "scripted", "script": script}})
    for i in range(7):
        customer(omni, f"c-{i}", email=f"c{i}@example.com", phone=f"+1415555010{i}")
        queue(omni, f"c-{i}", ["email"])
    omni.run_until_idle()
    assert sorted(script.batches) == [1, 3, 3]
    assert len(set(script.to())) == 7


def test_timed_fallback_sends_on_the_next_channel_when_not_delivered(
    make_omni: OmniFactory, clock: VirtualClock
) -> None:
    push, sms = Script(), Script()
    omni = make_omni({"push": {"provider": "scripted", "script": push}, "sms": {"provider": "scripted", "script": sms}})
    customer(omni, "c-1", fcm_token="tok-1")
    customer(omni, "c-2", fcm_token="tok-2", phone="+14155550102")
    first = queue(omni, "c-1", ["push", "sms"], fallback_after=600)
    second = queue(omni, "c-2", ["push", "sms"], fallback_after=600)
    omni.run_until_idle()
    assert push.to() == ["tok-1", "tok-2"] and sms.sent == []

    # c-2's push is confirmed delivered by a webhook; c-1's is not
    headers, body = signed([{"event": "Message Delivered", "channel": "push", "id": "e1",
                             "message_id": f"scripted-{second}"}])
    assert omni.handle_webhook("scripted", "POST", "https://shop/wh", headers, body).status == 204

    clock.advance(minutes=9)
    omni.run_until_idle()
    assert sms.sent == []
    clock.advance(minutes=2)
    omni.run_until_idle()
    assert sms.to() == ["+14155550100"]
    child = next(d for d in omni.deliveries(customer_id="c-1") if d.parent_id == first)
    assert (child.status, child.channel) == ("sent", "sms")
    assert only(omni, second).status == "delivered"
    assert [d.status for d in omni.deliveries(customer_id="c-2")] == ["delivered"]


def test_a_template_error_fails_that_delivery_only(make_omni: OmniFactory) -> None:
    script = Script()
    omni = make_omni({"sms": {"provider": "scripted", "script": script}})
    customer(omni, "c-1")
    customer(omni, "c-2", phone="+14155550102")
    bad = queue(omni, "c-1", ["sms"], template="broken")
    good = queue(omni, "c-2", ["sms"])
    omni.run_until_idle()
    assert only(omni, bad).status == "failed"
    assert "no_such_trait" in (only(omni, bad).error or "")
    assert only(omni, good).status == "sent"


def test_an_unknown_template_or_unconfigured_channel_fails_with_a_reason(make_omni: OmniFactory) -> None:
    omni = make_omni({"sms": {"provider": "scripted", "script": Script()}})
    customer(omni, "c-1")
    unknown = queue(omni, "c-1", ["sms"], template="nope")
    no_provider = queue(omni, "c-1", ["push"], key="other")
    omni.run_until_idle()
    assert only(omni, unknown).status == "failed" and "nope" in (only(omni, unknown).error or "")
    assert only(omni, no_provider).status == "failed"
    assert "configured provider" in (only(omni, no_provider).error or "")


@pytest.mark.parametrize(
    ("channels", "field"),
    [
        ({"sms": {"provider": "scripted", "script": Script(), "scrip": 1}}, "channels.sms.scrip"),
        ({"sms": {"provider": "scripted"}}, "channels.sms.script"),
        ({"sms": {"provider": "twillio"}}, "channels.sms.provider"),
        ({"sms": {"provider": "scripted", "script": Script(), "rate_limit": -1}}, "channels.sms.rate_limit"),
        ({"email": {"provider": "scripted", "script": Script(), "fallback_provider": "backup", "backup": {}}},
         "channels.email.backup.script"),
    ],
)
def test_configuration_errors_name_the_key(channels: dict[str, Any], field: str, tmp_path: Any) -> None:
    with pytest.raises(omnisdk.ConfigError) as caught:
        Omni(f"sqlite:///{tmp_path}/x.db", config={"channels": channels}, plugins=[TestProviders()],
             load_entry_points=False)
    assert caught.value.field == field


def test_a_crash_mid_send_is_reconciled_by_the_crash_policy(store_url: str, clock: VirtualClock) -> None:
    """A send cut off mid-call (the worker died) leaves rows `sending`; when the lease runs out,
    an at-most-once provider's row fails (never a duplicate), an idempotent or at-least-once one is resent."""
    plain, keyed, push = Script(gate=asyncio.Event()), Script(gate=asyncio.Event()), Script(gate=asyncio.Event())
    config = {"channels": {"sms": {"provider": "scripted", "script": plain}, "push": {"provider": "scripted",
              "script": push}, "email": {"provider": "keyed", "script": keyed}},
              "delivery": {"lease_seconds": 60}}
    first = Omni(store_url, config=config, clock=clock, plugins=[TestProviders()], load_entry_points=False)
    first.templates.add(Message("hello", sms=SMS(text="Hi"), push=Push(title="Hi", body="Hi"),
                                email=Email(subject="Hi", text="Hi")))
    customer(first, "c-1", fcm_token="tok", email="ada@example.com")
    ids = {ch: queue(first, "c-1", [ch], key=f"k-{ch}") for ch in ("sms", "push", "email")}

    async def crash_mid_call() -> None:
        task = asyncio.ensure_future(first._core.run_until_idle())
        for _ in range(100):
            await asyncio.sleep(0)
        task.cancel()

    first._run(crash_mid_call())
    assert {d.status for d in first.deliveries()} == {"sending"}
    first.close()

    plain.gate = push.gate = keyed.gate = None
    with Omni(store_url, config=config, clock=clock, plugins=[TestProviders()], load_entry_points=False) as second:
        second.templates.add(Message("hello", sms=SMS(text="Hi"), push=Push(title="Hi", body="Hi"),
                                     email=Email(subject="Hi", text="Hi")))
        second.run_until_idle()
        assert {d.status for d in second.deliveries()} == {"sending"}  # the lease still holds
        clock.advance(seconds=61)
        second.run_until_idle()
        status = {d.channel: d.status for d in second.deliveries()}
        assert status == {"sms": "failed", "push": "sent", "email": "sent"}
        assert "at_most_once" in (only(second, ids["sms"]).error or "")
        assert plain.sent == [] and len(push.sent) == 1 and len(keyed.sent) == 1


def test_deliveries_filters_and_the_delivery_updated_hook(make_omni: OmniFactory, store_url: str) -> None:
    seen: list[tuple[str, str]] = []

    class Listener:
        @omnisdk.hookimpl
        def delivery_updated(self, delivery: omnisdk.Delivery, omni: Any) -> None:
            seen.append((delivery.id, delivery.status))

    script = Script()
    with Omni(store_url, config={"channels": {"sms": {"provider": "scripted", "script": script}}},
              plugins=[TestProviders(), Listener()], load_entry_points=False, clock=VirtualClock()) as omni:
        omni.templates.add(Message("hello", sms=SMS(text="Hi")))
        customer(omni, "c-1")
        customer(omni, "c-2", consent=(), phone="+14155550102")
        sent, skipped = queue(omni, "c-1", ["sms"]), queue(omni, "c-2", ["sms"])
        omni.run_until_idle()
        assert [d.id for d in omni.deliveries(status="sent")] == [sent]
        assert [d.id for d in omni.deliveries(status=["skipped", "failed"])] == [skipped]
        assert [d.id for d in omni.deliveries(run_id="run-c-2")] == [skipped]
        assert (len(omni.deliveries(journey="j")), len(omni.deliveries(channel="sms"))) == (2, 1)
        with pytest.raises(omnisdk.ValidationError):
            omni.deliveries(status="lost")
    assert (sent, "sent") in seen and (skipped, "skipped") in seen



def test_a_journeys_message_renders_its_trigger(make_omni: OmniFactory) -> None:
    script = Script()
    omni = make_omni({"sms": {"provider": "scripted", "script": script}})
    omni.templates.add(Message("added", sms=SMS(
        text="{{ customer.first_name }}, {{ event.product_id }} x{{ trigger.properties.quantity }} ({{ trigger.name }}"
             " on {{ trigger.channel }}) is in your cart")))

    @omnisdk.journey("cart", version="1", trigger="Product Added")
    async def cart(ctx: omnisdk.JourneyContext) -> None:
        await ctx.send("remind", "added", channel="sms", purpose="transactional")

    omni.register(cart)
    customer(omni, "c-1")
    omni.track("c-1", "Product Added", {"product_id": "sku-7", "quantity": 2}, channel="app")
    omni.track("c-1", "Product Viewed", {"product_id": "sku-9"}, channel="web")  # later, not the trigger

    omni.run_until_idle()

    assert [m.content for m in script.sent] == [SMS(text="Ada, sku-7 x2 (Product Added on app) is in your cart")]


def test_a_message_outside_a_journey_has_no_trigger_and_says_so(make_omni: OmniFactory) -> None:
    script = Script()
    omni = make_omni({"sms": {"provider": "scripted", "script": script}})
    omni.templates.add(Message("needs-trigger", sms=SMS(text="{{ event.product_id }}")))
    customer(omni, "c-1")
    did = queue(omni, "c-1", ["sms"], template="needs-trigger")

    omni.run_until_idle()

    delivery = only(omni, did)
    assert delivery.status == "failed" and "product_id" in (delivery.error or "")
    assert script.sent == []


def test_a_batch_reaches_merged_profiles_through_their_survivor(make_omni: OmniFactory) -> None:
    """Customers are loaded for a whole claimed batch at once: merged ids follow the merge, unknown ids fail."""
    script = Script()
    omni = make_omni({"sms": {"provider": "scripted", "script": script}})
    anonymous = omni.track({"anonymous_id": "web-1"}, "Page Viewed", channel="web").customer_id
    customer(omni, "c-1", anonymous_id="web-1", phone="+14155550101")  # the anonymous profile merges into c-1
    customer(omni, "c-2", phone="+14155550102")
    merged = queue(omni, anonymous, ["sms"], purpose="transactional")
    plain = queue(omni, "c-2", ["sms"], purpose="transactional")
    unknown = queue(omni, "nobody", ["sms"], purpose="transactional")

    omni.run_until_idle()

    assert sorted(script.to()) == ["+14155550101", "+14155550102"]
    assert (only(omni, merged).status, only(omni, plain).status) == ("sent", "sent")
    assert only(omni, unknown).status == "failed" and "does not exist" in (only(omni, unknown).error or "")
    assert omni.customer(anonymous).id == "c-1"


class LastSeenFilter:
    """A plugin filter that reads the template's context itself, as `jinja2.pass_context` allows."""

    @omnisdk.hookimpl
    def register_template_filters(self, register: Any) -> None:
        @jinja2.pass_context
        def last_seen(context: Any, _value: Any) -> str:
            return str(context["latest"]["Product Viewed"].properties["name"])

        register("last_seen", last_seen)


def test_templates_that_read_history_get_it_however_they_read_it(store_url: str, clock: VirtualClock) -> None:
    """History is loaded only for templates that read it; a partial or a plugin filter counts as reading it."""
    script = Script()
    config = {"channels": {"sms": {"provider": "scripted", "script": script}},
              "brand": {"partials": {"seen": "{{ latest['Product Viewed'].properties.name }}"}}}
    with Omni(store_url, config=config, clock=clock, plugins=[TestProviders(), LastSeenFilter()],
              load_entry_points=False) as omni:
        templates = {
            "plain": "Hi {{ customer.first_name }}",
            "latest": "{{ latest['Product Viewed'].properties.name }}",
            "history": "{{ (history | selectattr('name', 'eq', 'Product Viewed') | first).properties.name }}",
            "partial": '{% include "seen" %}',
            "filter": "{{ customer | last_seen }}",
        }
        for name, text in templates.items():
            omni.templates.add(Message(name, sms=SMS(text=text)))
        customer(omni, "c-1")
        omni.track("c-1", "Product Viewed", {"name": "Boots"}, channel="web")
        for name in templates:
            queue(omni, "c-1", ["sms"], template=name, key=name, purpose="transactional")

        omni.run_until_idle()

        assert sorted(m.content.text for m in script.sent) == ["Boots", "Boots", "Boots", "Boots", "Hi Ada"]
        assert all(m.from_profile for m in script.sent)


def test_template_reads_names_what_needs_loading() -> None:
    assert template_reads(Message("m", sms=SMS(text="Hi {{ customer.first_name | upper }}")), "sms") == {"customer"}
    french = Message("m", sms=SMS(text="{{ history }}"))
    localised = Message("m", sms=SMS(text="{{ event.sku }}"), locales={"fr": french})
    assert template_reads(localised, "sms") == {"event", "history"}
    assert template_reads(localised, "email") == set()
    for unknowable in ('{% include "footer" %}', "{{ customer | money }}", "{% if customer is vip %}x{% endif %}"):
        assert template_reads(Message("m", sms=SMS(text=unknowable)), "sms") >= HISTORY_NAMES | TRIGGER_NAMES


@pytest.mark.parametrize(("provider", "resent"), [("scripted", False), ("keyed", True), ("push", True)])
def test_an_ambiguous_failure_follows_the_crash_policy(make_omni: OmniFactory, clock: VirtualClock,
                                                       provider: str, resent: bool) -> None:
    """A timeout after the request went out may have delivered the message: an at-most-once provider
    is never called again for it; one with idempotency keys or at-least-once is."""
    timeout = omnisdk.RetryableError(reason="timeout: ReadTimeout; the provider may have accepted it", ambiguous=True)
    script = Script(queue=[timeout])
    channel = {"scripted": "sms", "keyed": "email", "push": "push"}[provider]
    omni = make_omni({channel: {"provider": "scripted" if provider == "push" else provider, "script": script}})
    customer(omni, "c-1", email="ada@example.com", fcm_token="tok-1")
    did = queue(omni, "c-1", [channel])

    omni.run_until_idle()
    clock.advance(minutes=10)
    omni.run_until_idle()

    delivery = only(omni, did)
    assert script.batches == ([1, 1] if resent else [1])
    if resent:
        assert delivery.status == "sent" and [d.action for d in delivery.decisions] == ["send", "retry", "send", "sent"]
    else:
        assert delivery.status == "failed"
        assert delivery.error == ("outcome unknown, not sent again (at_most_once): "
                                  "timeout: ReadTimeout; the provider may have accepted it")


def test_an_unambiguous_failure_is_retried_even_at_most_once(make_omni: OmniFactory, clock: VirtualClock) -> None:
    refused = omnisdk.providers.transport_error_outcome(ConnectionRefusedError("refused"))
    assert not refused.ambiguous
    script = Script(queue=[refused])
    omni = make_omni({"sms": {"provider": "scripted", "script": script}})
    did = queue(omni, customer(omni, "c-1"), ["sms"])

    omni.run_until_idle()
    clock.advance(minutes=10)
    omni.run_until_idle()

    assert only(omni, did).status == "sent" and script.batches == [1, 1]


def claim_limits(dispatcher: Any, monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """The row limit of every claim `dispatcher` makes from now on."""
    limits: list[int | None] = []
    claim = dispatcher._claim

    def spy(now: float, limit: int | None = None) -> Any:
        limits.append(limit)
        return claim(now, limit)

    monkeypatch.setattr(dispatcher, "_claim", spy)
    return limits


def test_a_ticks_first_claim_only_fills_the_providers_slots(
    make_omni: OmniFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """So the first calls go out before a whole batch is rendered; full batches follow."""
    script = Script()
    omni = make_omni({"sms": {"provider": "scripted", "script": script, "max_concurrency": 2}})
    dispatcher = omni._core.dispatcher
    fill = 2 * dispatcher.pool.primary["sms"].capabilities.max_batch_size  # two slots of full requests
    for i in range(fill + 5):
        queue(omni, customer(omni, f"c-{i}", phone=f"+1415555{i:04d}"), ["sms"])
    limits = claim_limits(dispatcher, monkeypatch)
    omni.run_until_idle()
    assert limits[:2] == [fill, 500]
    assert [d.status for d in omni.deliveries()] == ["sent"] * (fill + 5)
    assert len(script.sent) == fill + 5


def test_while_calls_are_in_flight_a_batch_is_claimed_in_chunks(
    make_omni: OmniFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction per chunk, the event loop turning between them; the outbox running dry is told."""
    from omnisdk.delivery import _dispatcher

    monkeypatch.setattr(_dispatcher, "_CLAIM_CHUNK", 3)
    omni = make_omni({"sms": {"provider": "scripted", "script": Script()}})
    ids = [queue(omni, customer(omni, f"c-{i}", phone=f"+1415555{i:04d}"), ["sms"]) for i in range(10)]
    dispatcher = omni._core.dispatcher
    limits = claim_limits(dispatcher, monkeypatch)
    busy = asyncio.run(dispatcher._claim_batch(8, in_flight=True))
    rest = asyncio.run(dispatcher._claim_batch(8, in_flight=False))
    assert limits == [3, 3, 2, 8]
    assert (len(busy[0]), busy[1:]) == (8, (0, False))
    assert (len(rest[0]), rest[1:]) == (2, (0, True))  # fewer than asked: nothing more is due
    assert sorted(c.id for c in busy[0] + rest[0]) == sorted(ids)


def test_a_row_this_worker_holds_is_not_claimed_again_when_its_lease_runs_out_before_the_call(
    make_omni: OmniFactory, clock: VirtualClock
) -> None:
    """Under load, a claim's lease can run out before its call starts; the same worker's next claim
    must not take the row a second time (both copies would be marked in one burst: two calls)."""
    script = Script()
    omni = make_omni({"sms": {"provider": "scripted", "script": script}})
    did = queue(omni, customer(omni, "c-1"), ["sms"])
    dispatcher = omni._core.dispatcher
    claimed, _ = dispatcher._claim(clock.timestamp())
    assert [c.id for c in claimed] == [did]
    clock.advance(seconds=dispatcher.settings.lease_seconds + 1)

    assert dispatcher._claim(clock.timestamp()) == ([], 0)
    assert dispatcher._mark_sending(claimed) == {did}
    assert only(omni, did).status == "sending"
