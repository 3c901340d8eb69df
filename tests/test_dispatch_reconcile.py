"""Unknown outcomes are looked up at the provider before anything else: sent → recorded with the
provider's id, not sent → sent again (only then), still unknown → asked again, within bounds."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import omnisdk
from dispatch_providers import (
    AMBIGUOUS,
    DropAfterAccept,
    DropBeforeSend,
    LookupScript,
    LookupTestProviders,
    Script,
    TestProviders,
)
from omnisdk import SMS, Message, Omni, VirtualClock
from omnisdk.delivery import enqueue_delivery
from omnisdk.providers import NotSent, StillUnknown

OmniFactory = Callable[..., Omni]


@pytest.fixture
def make_omni(store_url: str, clock: VirtualClock) -> Iterator[OmniFactory]:
    opened: list[Omni] = []

    def make(script: Script, provider: str = "lookup", **delivery: Any) -> Omni:
        config = {"channels": {"sms": {"provider": provider, "script": script}}, "delivery": delivery}
        omni = Omni(store_url, config=config, clock=clock, plugins=[TestProviders(), LookupTestProviders()],
                    load_entry_points=False)
        omni.templates.add(Message("hello", sms=SMS(text="Hi {{ customer.first_name }}")))
        opened.append(omni)
        return omni

    yield make
    for omni in opened:
        omni.close()


def queue(omni: Omni, i: int = 0) -> str:
    cid = f"c-{i}"
    omni.identify(cid, traits={"first_name": "Ada"}, timezone="UTC", phone=f"+1415555{i:04d}")
    omni.consent(cid, channel="sms", granted=True)
    with omni.store.transaction() as tx:
        return enqueue_delivery(tx, key=f"run-{cid}:hello", customer_id=cid, template="hello", channels=["sms"],
                                now=omni.clock.timestamp(), purpose="transactional")


def only(omni: Omni, did: str) -> omnisdk.Delivery:
    return next(d for d in omni.deliveries() if d.id == did)


def sent_touchpoints(omni: Omni, cid: str) -> list[Any]:
    return [t for t in omni.timeline(cid) if t.name == "Message Sent"]


def test_taken_then_dropped_is_recorded_sent_with_the_providers_id(make_omni: OmniFactory) -> None:
    script = LookupScript(queue=[DropAfterAccept])
    omni = make_omni(script)
    did = queue(omni)

    omni.run_until_idle()

    delivery = only(omni, did)
    assert (delivery.status, delivery.provider_message_id, delivery.error) == ("sent", "SM0001", None)
    assert [d.action for d in delivery.decisions] == ["send", "in_doubt", "sent"]
    assert [m.delivery_id for m in script.sent] == [did]  # never sent again
    [looked_up] = script.looked_up
    assert looked_up.outgoing.to == "+14155550000" and looked_up.outgoing.content == SMS(text="Hi Ada")
    assert looked_up.outgoing.idempotency_key == "run-c-0:hello:sms" and looked_up.lookups == 0
    assert looked_up.attempted_at.timestamp() == pytest.approx(omni.clock.timestamp())
    assert [t.properties["provider_message_id"] for t in sent_touchpoints(omni, "c-0")] == ["SM0001"]


def test_dropped_before_the_provider_saw_it_is_sent_again_once(make_omni: OmniFactory) -> None:
    script = LookupScript(queue=[DropBeforeSend])
    omni = make_omni(script)
    did = queue(omni)

    omni.run_until_idle()

    delivery = only(omni, did)
    assert (delivery.status, delivery.provider_message_id) == ("sent", "SM0001")
    assert [d.action for d in delivery.decisions] == ["send", "in_doubt", "reconcile", "send", "sent"]
    assert "not sent (no message to this number in the window); sending again" in delivery.decisions[2].reason
    assert [m.delivery_id for m in script.sent] == [did] and script.batches == [1, 1]


def test_still_unknown_is_asked_again_then_fails_after_max_lookups(
    make_omni: OmniFactory, clock: VirtualClock
) -> None:
    lagging = StillUnknown(reason="the message list lags", retry_after=30)
    script = LookupScript(queue=[DropAfterAccept], lookup_queue=[lagging] * 3)
    omni = make_omni(script, reconcile_max_lookups=3)
    did = queue(omni)

    omni.run_until_idle()
    assert (only(omni, did).status, len(script.looked_up)) == ("sending", 1)
    assert omni._core.next_due() == pytest.approx(clock.timestamp() + 30)  # the worker wakes for the next lookup
    omni.run_until_idle()
    assert len(script.looked_up) == 1  # not before retry_after
    for lookups in (2, 3):
        clock.advance(seconds=31)
        omni.run_until_idle()
        assert len(script.looked_up) == lookups
        assert [i.lookups for i in script.looked_up] == list(range(lookups))

    delivery = only(omni, did)
    assert delivery.status == "failed"
    assert delivery.error == "outcome unknown after 3 lookups over 62s, not sent again: the message list lags"
    assert len(script.sent) == 1 and sent_touchpoints(omni, "c-0") == []


def test_still_unknown_past_the_max_age_fails(make_omni: OmniFactory, clock: VirtualClock) -> None:
    script = LookupScript(queue=[DropAfterAccept], lookup_queue=[StillUnknown(reason="lags")] * 5)
    omni = make_omni(script, reconcile_max_age=600)
    did = queue(omni)

    omni.run_until_idle()
    clock.advance(seconds=601)
    omni.run_until_idle()

    delivery = only(omni, did)
    assert delivery.status == "failed" and delivery.error is not None
    assert delivery.error.startswith("outcome unknown after 2 lookups over 601s")


@pytest.mark.parametrize("broken", [RuntimeError("lookup bug"), "wrong count"])
def test_a_lookup_that_raises_or_miscounts_is_still_unknown(
    make_omni: OmniFactory, clock: VirtualClock, broken: Any
) -> None:
    script = LookupScript(queue=[DropAfterAccept])
    if isinstance(broken, BaseException):
        script.lookup_queue = [broken]
    omni = make_omni(script)
    if broken == "wrong count":
        lookup_cls = type(omni._core.dispatcher.pool.instance(omni._core.dispatcher.pool.primary["sms"]))
        original = lookup_cls.reconcile

        async def too_many(self: Any, batch: Any) -> Any:
            lookup_cls.reconcile = original  # once
            return [NotSent(reason="x")] * (len(batch) + 1)

        lookup_cls.reconcile = too_many  # type: ignore[method-assign]
    did = queue(omni)

    omni.run_until_idle()
    delivery = only(omni, did)
    assert delivery.status == "sending" and delivery.decisions[-1].action == "reconcile"
    assert "still unknown" in delivery.decisions[-1].reason
    clock.advance(minutes=5)
    omni.run_until_idle()
    assert (only(omni, did).status, only(omni, did).provider_message_id) == ("sent", "SM0001")
    assert len(script.sent) == 1


def test_a_crash_mid_call_is_looked_up_when_the_lease_runs_out(store_url: str, clock: VirtualClock) -> None:
    """The worker died while two calls were in flight: the provider took one of them."""
    script = LookupScript(gate=asyncio.Event())
    config = {"channels": {"sms": {"provider": "lookup", "script": script}}, "delivery": {"lease_seconds": 60}}

    def open_omni() -> Omni:
        omni = Omni(store_url, config=config, clock=clock, plugins=[LookupTestProviders(), TestProviders()],
                    load_entry_points=False)
        omni.templates.add(Message("hello", sms=SMS(text="Hi {{ customer.first_name }}")))
        return omni

    first = open_omni()
    taken, lost = queue(first, 1), queue(first, 2)

    async def crash_mid_call() -> None:
        task = asyncio.ensure_future(first._core.run_until_idle())
        for _ in range(100):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    first._run(crash_mid_call())
    assert {d.status for d in first.deliveries()} == {"sending"}
    first.close()
    script.taken[taken] = "SM-taken"  # what the provider had received when the worker died
    script.gate = None

    with open_omni() as second:
        second.run_until_idle()
        clock.advance(seconds=61)
        second.run_until_idle()
        assert (only(second, taken).status, only(second, taken).provider_message_id) == ("sent", "SM-taken")
        assert only(second, lost).status == "sent"
    assert [m.delivery_id for m in script.sent] == [lost]  # the taken one never went out twice


def test_a_provider_that_cannot_be_asked_keeps_its_crash_policy(make_omni: OmniFactory) -> None:
    script = Script(queue=[AMBIGUOUS])
    omni = make_omni(script, provider="scripted")
    did = queue(omni)
    omni.run_until_idle()
    assert only(omni, did).status == "failed" and "at_most_once" in (only(omni, did).error or "")


def test_a_row_in_doubt_without_its_content_falls_back_to_the_crash_policy(make_omni: OmniFactory) -> None:
    """Left `sending` before this version stored what a lookup needs: nothing to ask with."""
    script = LookupScript()
    omni = make_omni(script)
    did = queue(omni)
    with omni.store.transaction() as tx:
        tx.execute("UPDATE deliveries SET status = 'sending', channel = 'sms', provider = 'lookup', address = ?, "
                   "lease_until = ? WHERE id = ?", ("+14155550000", omni.clock.timestamp() - 1, did))
    omni.run_until_idle()
    assert only(omni, did).status == "failed" and script.looked_up == []
    assert "interrupted mid-send" in (only(omni, did).error or "")


def test_drops_before_and_after_accept_on_many_calls_lose_and_duplicate_nothing(make_omni: OmniFactory) -> None:
    """1 in 5 calls dropped before the provider saw them, 1 in 5 after it took them: every message
    reaches the provider exactly once and every record carries the provider's id."""
    rng = random.Random(13)
    faults = [rng.choice([None, None, None, DropBeforeSend, DropAfterAccept]) for _ in range(200)]
    script = LookupScript(queue=faults)
    omni = make_omni(script)
    ids = [queue(omni, i) for i in range(40)]

    omni.run_until_idle()

    deliveries = {d.id: d for d in omni.deliveries()}
    assert {d.status for d in deliveries.values()} == {"sent"}
    assert Counter(m.delivery_id for m in script.sent) == Counter(ids)  # exactly once each
    assert all(deliveries[did].provider_message_id == script.taken[did] for did in ids)
    assert sum(f is not None for f in faults[: len(ids)]) >= 8  # the faults did land
