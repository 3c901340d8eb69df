"""Cancellation and shutdown mid-send leave every delivery in a state recovery resolves; `drain()`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dispatch_providers import LookupScript, LookupTestProviders, Script, TestProviders
from omnisdk import SMS, Email, Message, Omni, VirtualClock
from omnisdk.delivery import enqueue_delivery

OmniFactory = Callable[..., Omni]


@pytest.fixture
def make_omni(store_url: str, clock: VirtualClock) -> Iterator[OmniFactory]:
    opened: list[Omni] = []

    def make(channels: dict[str, Any]) -> Omni:
        omni = Omni(store_url, config={"channels": channels}, clock=clock,
                    plugins=[TestProviders(), LookupTestProviders()], load_entry_points=False)
        omni.templates.add(Message("hello", sms=SMS(text="Hi"), email=Email(subject="Hi", text="Hi")))
        opened.append(omni)
        return omni

    yield make
    for omni in opened:
        omni.close()


def queue(omni: Omni, i: int, channel: str = "sms") -> str:
    cid = f"c-{i}"
    omni.identify(cid, timezone="UTC", phone=f"+1415555{i:04d}", email=f"c{i}@example.com")
    with omni.store.transaction() as tx:
        return enqueue_delivery(tx, key=f"run-{cid}:{channel}", customer_id=cid, template="hello",
                                channels=[channel], now=omni.clock.timestamp(), purpose="transactional")


def rows(omni: Omni) -> dict[str, tuple[Any, ...]]:
    with omni.store.transaction() as tx:
        return {r[0]: tuple(r[1:]) for r in tx.query("SELECT id, status, lease_owner FROM deliveries")}


async def turns(n: int = 200) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def cancel_mid_call(omni: Omni) -> None:
    """Run the worker until its calls hang, then cancel it as a shutdown does, and let it unwind."""
    async def main() -> None:
        task = asyncio.ensure_future(omni._core.run_until_idle())
        await turns()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    omni._run(main())


@pytest.mark.parametrize(("provider", "script_cls"), [("lookup", LookupScript), ("scripted", Script)])
def test_a_cancelled_call_is_in_doubt_at_once_and_the_waiting_ones_are_given_back(
    make_omni: OmniFactory, provider: str, script_cls: type[Script]
) -> None:
    """One slot, requests of 5: the first request hangs when the worker is cancelled; the other rows
    were claimed but their call had not started."""
    script = script_cls(gate=asyncio.Event())
    omni = make_omni({"sms": {"provider": provider, "script": script, "max_concurrency": 1}})
    ids = [queue(omni, i) for i in range(10 if provider == "lookup" else 12)]

    cancel_mid_call(omni)

    state = rows(omni)
    in_doubt = [did for did, (status, _) in state.items() if status == "sending"]
    assert len(in_doubt) == (5 if provider == "lookup" else 10)  # the hanging request's rows
    assert all(owner is None for _, owner in state.values())  # nothing left leased to the dead worker
    assert {status for did, (status, _) in state.items() if did not in in_doubt} == {"queued"}
    for did in in_doubt:
        [delivery] = [d for d in omni.deliveries() if d.id == did]
        assert delivery.decisions[-1].action == "in_doubt" and "cut off" in delivery.decisions[-1].reason

    if isinstance(script, LookupScript):
        script.taken.update({did: f"SM-{did}" for did in in_doubt[:2]})  # the provider got two of them
    script.gate = None
    omni.run_until_idle()  # no lease to wait for: the recovery runs at once

    final = {d.id: d for d in omni.deliveries()}
    if provider == "lookup":
        assert {d.status for d in final.values()} == {"sent"}
        assert sorted(m.delivery_id for m in script.sent) == sorted(did for did in ids if did not in in_doubt[:2])
        assert all(final[did].provider_message_id == f"SM-{did}" for did in in_doubt[:2])
    else:  # at most once: the cut-off calls failed with the reason, never resent; the others sent
        assert {did for did, d in final.items() if d.status == "failed"} == set(in_doubt)
        assert all("interrupted mid-send" in (final[did].error or "") for did in in_doubt)
        assert sorted(m.delivery_id for m in script.sent) == sorted(set(ids) - set(in_doubt))


def test_answers_that_came_back_before_the_cancel_are_recorded(make_omni: OmniFactory) -> None:
    """Two slots: one request answers, the other hangs; the answered rows are `sent`, not in doubt."""
    script = Script(gate=asyncio.Event(), free_calls=1)
    omni = make_omni({"email": {"provider": "scripted", "script": script, "max_concurrency": 2}})
    [queue(omni, i, "email") for i in range(6)]  # two requests of 3

    cancel_mid_call(omni)

    statuses = sorted(status for status, _ in rows(omni).values())
    assert statuses == ["sending"] * 3 + ["sent"] * 3


def test_a_batch_cancelled_while_waiting_for_its_mark_is_never_marked() -> None:
    from omnisdk.delivery._send import SendingMarks as _SendingMarks

    written: list[list[Any]] = []
    marks = _SendingMarks(lambda items: written.append(items) or set())

    async def main() -> None:
        waiting = asyncio.ensure_future(marks.mark(["a"]))  # type: ignore[list-item]
        await asyncio.sleep(0)  # it is waiting for the flush
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await turns(3)

    asyncio.run(main())
    assert written == []


def test_drain_lets_the_calls_in_flight_finish_and_claims_nothing_more(make_omni: OmniFactory) -> None:
    script = Script(gate=asyncio.Event())
    omni = make_omni({"sms": {"provider": "scripted", "script": script, "max_concurrency": 1}})
    ids = [queue(omni, i) for i in range(25)]
    dispatcher = omni._core.dispatcher

    async def main() -> bool:
        task = asyncio.ensure_future(omni._core.run_until_idle())
        await turns()
        draining = asyncio.ensure_future(dispatcher.drain(timeout=3600))
        await turns()
        assert not draining.done()  # waiting for the call in flight, however long it takes
        script.gate.set()  # type: ignore[union-attr]
        finished = await draining
        await task
        return finished

    assert omni._run(main()) is True
    state = rows(omni)
    sent = [did for did in ids if state[did][0] == "sent"]
    assert len(sent) == 10 and len(script.sent) == 10  # the first claim only (one slot, requests of 10)
    assert {state[did] for did in ids if did not in sent} == {("queued", None)}  # never claimed, or given back
    assert omni.run_until_idle() == 0  # drained: nothing more until resume
    dispatcher.resume()
    omni.run_until_idle()
    assert {status for status, _ in rows(omni).values()} == {"sent"} and len(script.sent) == 25


def test_drain_cuts_off_what_does_not_finish_in_time(make_omni: OmniFactory) -> None:
    script = Script(gate=asyncio.Event())
    omni = make_omni({"sms": {"provider": "scripted", "script": script}})
    did = queue(omni, 1)

    async def main() -> bool:
        task = asyncio.ensure_future(omni._core.run_until_idle())
        await turns()
        finished = await omni._core.dispatcher.drain(timeout=0)
        await task  # the tick ends normally: its cut-off batch is settled, not an error
        return finished

    assert omni._run(main()) is False
    assert rows(omni)[did] == ("sending", None)
    omni._core.dispatcher.resume()
    script.gate = None
    omni.run_until_idle()
    assert rows(omni)[did][0] == "failed" and script.sent == []  # at most once: never resent blindly
