"""The last-moment re-check: what is stored between a send's claim and its provider call still stops it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dispatch_providers import Script, TestProviders, signed
from omnisdk import SMS, Message, Omni, VirtualClock
from omnisdk.delivery import enqueue_delivery

OmniFactory = Callable[..., Omni]


@pytest.fixture
def make_omni(store_url: str, clock: VirtualClock) -> Iterator[OmniFactory]:
    opened: list[Omni] = []

    def make(script: Script, **config: Any) -> Omni:
        channels = {"sms": {"provider": "scripted", "script": script, "max_concurrency": 1}}
        omni = Omni(store_url, config={"channels": channels, **config}, clock=clock, plugins=[TestProviders()],
                    load_entry_points=False)
        omni.templates.add(Message("hello", sms=SMS(text="Hi {{ customer.first_name }}")))
        omni.templates.add(Message("other", sms=SMS(text="Also hi")))
        opened.append(omni)
        return omni

    yield make
    for omni in opened:
        omni.close()


def customer(omni: Omni, i: int, phone: str | None = None) -> str:
    cid = f"c-{i}"
    omni.identify(cid, traits={"first_name": "Ada"}, timezone="UTC", phone=phone or f"+1415555{i:04d}")
    omni.consent(cid, channel="sms", granted=True)
    return cid


def queue(omni: Omni, cid: str, template: str = "hello") -> str:
    with omni.store.transaction() as tx:
        return enqueue_delivery(tx, key=f"run-{cid}:{template}", customer_id=cid, template=template,
                                channels=["sms"], now=omni.clock.timestamp())


def row(omni: Omni, did: str) -> tuple[Any, ...]:
    with omni.store.transaction() as tx:
        found = tx.one("SELECT status, lease_owner FROM deliveries WHERE id = ?", (did,))
    assert found is not None
    return tuple(found)


def send_claimed(omni: Omni, claimed: Any) -> None:
    """The claimed batch's calls and record, as a tick makes them after its claim."""
    omni._run(omni._core.dispatcher._send_and_record(claimed, asyncio.Event()))


def test_a_stop_stored_while_the_send_waits_for_its_call_stops_it(
    make_omni: OmniFactory, clock: VirtualClock
) -> None:
    """The regression: the provider's only slot is busy with a call of ten messages; the next message
    is claimed and leased, waiting for the slot, when the customer's STOP arrives through the webhook.
    It is not sent."""
    script = Script(gate=asyncio.Event(), free_calls=1)  # the first call is answered, the second hangs
    omni = make_omni(script)
    for i in range(20):
        queue(omni, customer(omni, i))
    clock.advance(seconds=1)  # due last: in the request after the hanging one
    victim = queue(omni, customer(omni, 99, phone="+14155550199"))

    async def scenario() -> None:
        task = asyncio.ensure_future(omni._core.run_until_idle())
        for _ in range(200):
            await asyncio.sleep(0)
        assert script.batches == [10] and row(omni, victim)[0] == "queued" and row(omni, victim)[1]  # leased
        headers, body = signed([{"event": "Unsubscribed", "id": "ev-1", "who": {"phone": "+14155550199"}}])
        assert omni.handle_webhook("scripted", "POST", "https://shop.example/hooks", headers, body).status == 204
        script.gate.set()  # type: ignore[union-attr]
        await task

    omni._run(scenario())

    assert "+14155550199" not in script.to() and len(script.sent) == 20
    [delivery] = omni.deliveries(customer_id="c-99")
    assert delivery.status == "skipped"
    assert delivery.decisions[-1].action == "skip"
    assert delivery.decisions[-1].reason == "re-checked before the call: no marketing consent on sms"


def test_consent_revoked_through_the_api_after_the_claim(make_omni: OmniFactory, clock: VirtualClock) -> None:
    script = Script()
    omni = make_omni(script)
    did = queue(omni, customer(omni, 1))
    claimed, _ = omni._core.dispatcher._claim(clock.timestamp())
    assert [c.id for c in claimed] == [did]
    omni.consent("c-1", channel="sms", granted=False)

    send_claimed(omni, claimed)
    omni.run_until_idle()

    assert script.sent == [] and row(omni, did) == ("skipped", None)


def test_quiet_hours_that_began_after_the_claim_defer_the_send(make_omni: OmniFactory, clock: VirtualClock) -> None:
    script = Script()
    omni = make_omni(script, policies={"quiet_hours": {"start": "12:01", "end": "13:00"}})
    assert (clock.now().hour, clock.now().minute) == (12, 0)
    did = queue(omni, customer(omni, 1))
    claimed, _ = omni._core.dispatcher._claim(clock.timestamp())
    assert [c.id for c in claimed] == [did]
    clock.advance(minutes=2)  # the call waited (rate limit, slots) into quiet hours

    send_claimed(omni, claimed)

    [delivery] = omni.deliveries()
    assert (delivery.status, script.sent) == ("deferred", [])
    assert delivery.decisions[-1].reason.startswith("re-checked before the call: quiet hours")
    assert delivery.due_at is not None and delivery.due_at.hour == 13 and delivery.due_at.minute == 0
    clock.advance(hours=1)
    omni.run_until_idle()
    assert only_status(omni) == "sent" and len(script.sent) == 1


def only_status(omni: Omni) -> str:
    [delivery] = omni.deliveries()
    return delivery.status


def test_a_cap_filled_by_another_worker_after_the_claim_skips_the_send(
    make_omni: OmniFactory, clock: VirtualClock
) -> None:
    script = Script()
    omni = make_omni(script, policies={"frequency_cap": {"marketing": "1/1d"}})
    cid = customer(omni, 1)
    did = queue(omni, cid)
    claimed, _ = omni._core.dispatcher._claim(clock.timestamp())
    other = queue(omni, cid, "other")  # sent meanwhile by another worker
    with omni.store.transaction() as tx:
        tx.execute("UPDATE deliveries SET status = 'sent', channel = 'sms', sent_at = ? WHERE id = ?",
                   (clock.timestamp(), other))

    send_claimed(omni, claimed)

    assert script.sent == [] and row(omni, did)[0] == "skipped"
    assert "frequency cap 1/1d for marketing reached" in omni.deliveries(customer_id=cid)[0].decisions[-1].reason


def test_sends_claimed_together_within_the_cap_all_go_out(make_omni: OmniFactory, clock: VirtualClock) -> None:
    """The re-check counts this worker's earlier unrecorded sends, as the claim did, never a send
    against itself or a later one."""
    script = Script()
    omni = make_omni(script, policies={"frequency_cap": {"marketing": "2/1d"}, "dedupe": "0"})
    cid = customer(omni, 1)
    first = queue(omni, cid)
    dispatcher = omni._core.dispatcher
    early, _ = dispatcher._claim(clock.timestamp())
    second, third = queue(omni, cid, "other"), queue(omni, cid, "third")
    omni.templates.add(Message("third", sms=SMS(text="Third")))
    late, _ = dispatcher._claim(clock.timestamp())
    assert [c.id for c in early] == [first] and [c.id for c in late] == [second]  # the cap held at the claim

    send_claimed(omni, late)  # the later claim's call starts first
    send_claimed(omni, early)

    assert sorted(m.delivery_id for m in script.sent) == sorted([first, second])
    assert row(omni, third)[0] == "skipped"


def test_a_changed_address_is_decided_and_rendered_again(make_omni: OmniFactory, clock: VirtualClock) -> None:
    script = Script()
    omni = make_omni(script)
    did = queue(omni, customer(omni, 1, phone="+14155550101"))
    claimed, _ = omni._core.dispatcher._claim(clock.timestamp())
    with omni.store.transaction() as tx:
        tx.execute("UPDATE identities SET value = '+14155550102' WHERE customer_id = 'c-1' AND kind = 'phone'")

    send_claimed(omni, claimed)
    assert script.sent == [] and row(omni, did) == ("queued", None)
    omni.run_until_idle()

    assert script.to() == ["+14155550102"] and row(omni, did)[0] == "sent"
    actions = [d.action for d in omni.deliveries()[0].decisions]
    assert actions == ["send", "requeue", "send", "sent"]
