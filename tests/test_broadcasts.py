"""Broadcasts on both stores: to a segment now, at a time, at a local time per customer's zone and at
each customer's best time, through the dispatcher's policies; resumable, cancellable, with progress."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from omnisdk import SMS, Email, Message, NotFoundError, Omni, UnknownChannelError, ValidationError, VirtualClock
from omnisdk.segments import consented, trait

ZONES = {"ny": "America/New_York", "paris": "Europe/Paris", "tokyo": "Asia/Tokyo", "nozone": None}
SALE = Message("sale", email=Email(subject="Sale, {{ customer.first_name }}", text="20% off"), sms=SMS(text="Sale"))


@pytest.fixture
def make_omni(store_url: str, clock: VirtualClock) -> Iterator[Callable[..., Omni]]:
    """Clients on the test's store sending through in-memory providers (several for the resume tests)."""
    opened: list[Omni] = []

    def make(**config: Any) -> Omni:
        channels = {"email": {"provider": "memory"}, "sms": {"provider": "memory"}}
        omni = Omni(store_url, clock=clock, config={"channels": channels, **config})
        omni.templates.add(SALE)
        opened.append(omni)
        return omni

    yield make
    for omni in opened:
        omni.close()


@pytest.fixture
def shop(make_omni: Callable[..., Omni]) -> Omni:
    omni = make_omni()
    for cid, tz in ZONES.items():
        omni.identify(cid, email=f"{cid}@example.com", traits={"tier": "gold", "first_name": cid}, timezone=tz)
        omni.consent(cid, channel="email", granted=True)
    omni.identify("silver", email="silver@example.com", traits={"tier": "silver"})
    omni.consent("silver", channel="email", granted=True)
    omni.identify("no-consent", email="nc@example.com", traits={"tier": "gold"})
    return omni


def broadcast_deliveries(omni: Omni, broadcast_id: str) -> dict[str, Any]:
    prefix = f"broadcast:{broadcast_id}:"
    found = [d for d in omni.deliveries() if d.idempotency_key.startswith(prefix)]
    by_customer = {d.customer_id: d for d in found}
    assert len(by_customer) == len(found), "a customer got two deliveries from one broadcast"
    return by_customer


def test_broadcast_now_goes_through_policies_and_reports_progress(shop: Omni) -> None:
    sent = shop.broadcast("sale", trait("tier") == "gold", channel="email", name="january-sale")
    assert shop.broadcast_status(sent.id).state == "scheduled"

    shop.run_until_idle()

    deliveries = broadcast_deliveries(shop, sent.id)
    assert sorted(deliveries) == ["no-consent", "nozone", "ny", "paris", "tokyo"]
    assert {cid for cid, d in deliveries.items() if d.status == "sent"} == {"nozone", "ny", "paris", "tokyo"}
    assert deliveries["no-consent"].status == "skipped"
    assert "no marketing consent on email" in (deliveries["no-consent"].decisions[-1].reason)
    status = shop.broadcast_status(sent.id)
    assert (status.state, status.audience, status.enqueued, status.sent, status.skipped, status.queued) == (
        "done", 5, 5, 4, 1, 0)
    assert status.percent == 100.0 and status.percent_enqueued == 100.0
    assert [b.name for b in shop.broadcasts()] == ["january-sale"]


def test_broadcast_at_a_time_waits_and_evaluates_the_segment_then(shop: Omni, clock: VirtualClock) -> None:
    at = clock.now() + timedelta(hours=3)
    planned = shop.broadcast("sale", trait("tier") == "silver", at=at, channel="email")
    shop.run_until_idle()
    assert shop.broadcast_status(planned.id).enqueued == 0

    shop.identify("silver-2", email="s2@example.com", traits={"tier": "silver"})  # joins before it starts
    shop.consent("silver-2", channel="email", granted=True)
    clock.advance(hours=3)
    shop.run_until_idle()

    deliveries = broadcast_deliveries(shop, planned.id)
    assert sorted(deliveries) == ["silver", "silver-2"]
    assert all(d.status == "sent" and d.sent_at == at for d in deliveries.values())


def test_local_time_lands_in_each_customers_zone(shop: Omni, clock: VirtualClock) -> None:
    planned = shop.broadcast("sale", trait("tier") == "gold", at=datetime(2026, 1, 6), local_time=time(10, 0),
                             channel="email")
    expected = {cid: datetime(2026, 1, 6, 10, 0, tzinfo=ZoneInfo(tz or "UTC")) for cid, tz in ZONES.items()}
    for _ in range(48):  # an hour at a time through both days: each zone's message goes out at its 10:00
        clock.advance(hours=1)
        shop.run_until_idle()
    deliveries = broadcast_deliveries(shop, planned.id)
    for cid, when in expected.items():
        assert deliveries[cid].due_at == when
        assert deliveries[cid].status == "sent"
        sent_local = deliveries[cid].sent_at.astimezone(when.tzinfo)  # type: ignore[union-attr]
        assert (sent_local.date(), sent_local.hour) == (when.date(), 10), cid
    assert len({d.sent_at for cid, d in deliveries.items() if cid in expected}) == 4  # four zones, four moments


def test_local_time_already_passed_today_goes_out_tomorrow_at_that_time(shop: Omni, clock: VirtualClock) -> None:
    # now is 12:00 UTC = 07:00 in New York, 13:00 in Paris, 21:00 in Tokyo
    planned = shop.broadcast("sale", trait("tier") == "gold", local_time=time(9, 0), channel="email")
    shop.run_until_idle()
    due = {cid: d.due_at for cid, d in broadcast_deliveries(shop, planned.id).items()}
    assert due["ny"] == datetime(2026, 1, 5, 9, tzinfo=ZoneInfo("America/New_York"))
    assert due["paris"] == datetime(2026, 1, 6, 9, tzinfo=ZoneInfo("Europe/Paris"))
    assert due["tokyo"] == datetime(2026, 1, 6, 9, tzinfo=ZoneInfo("Asia/Tokyo"))


def test_quiet_hours_and_caps_still_apply(make_omni: Callable[..., Omni], clock: VirtualClock) -> None:
    omni = make_omni(policies={"quiet_hours": {"start": "21:00", "end": "08:00"},
                               "frequency_cap": {"marketing": "1/7d"}})
    omni.identify("tokyo", email="t@example.com", timezone="Asia/Tokyo")  # 21:00 there now
    omni.identify("paris", email="p@example.com", timezone="Europe/Paris")  # 13:00 there now
    for cid in ("tokyo", "paris"):
        omni.consent(cid, channel="email", granted=True)
    first = omni.broadcast("sale", consented("email"), channel="email")
    omni.run_until_idle()
    deliveries = broadcast_deliveries(omni, first.id)
    assert deliveries["paris"].status == "sent"
    assert deliveries["tokyo"].status == "deferred"
    assert deliveries["tokyo"].decisions[-1].reason.startswith("quiet hours 21:00-08:00 Asia/Tokyo")

    clock.advance(hours=11)  # 08:00 in Tokyo
    omni.run_until_idle()
    assert broadcast_deliveries(omni, first.id)["tokyo"].status == "sent"

    again = omni.broadcast("sale", consented("email"), channel="email")
    omni.run_until_idle()
    assert {d.status for d in broadcast_deliveries(omni, again.id).values()} == {"skipped"}
    assert omni.broadcast_status(again.id).skipped == 2


def test_a_crashed_broadcast_resumes_from_its_cursor_without_double_queueing(
    make_omni: Callable[..., Omni], clock: VirtualClock
) -> None:
    settings = {"analytics": {"broadcast_page_size": 3, "broadcast_pages_per_tick": 1}}
    first = make_omni(**settings)
    for i in range(10):
        first.identify(f"c{i:02d}", email=f"c{i}@example.com", traits={"tier": "gold"})
    planned = first.broadcast("sale", trait("tier") == "gold", channel="email", at=clock.now() + timedelta(days=1))
    clock.advance(days=1)
    # The first worker queues one page, then dies holding the lease (it never ticks again).
    asyncio.run(first._core.broadcasts.tick())
    assert first.broadcast_status(planned.id).enqueued == 3

    second = make_omni(**settings)
    second.run_until_idle()
    assert second.broadcast_status(planned.id).enqueued == 3  # the lease still belongs to the first worker

    clock.advance(minutes=3)  # the lease ran out
    second.run_until_idle()
    status = second.broadcast_status(planned.id)
    assert (status.state, status.audience, status.enqueued) == ("done", 10, 10)
    assert sorted(broadcast_deliveries(second, planned.id)) == [f"c{i:02d}" for i in range(10)]


def test_a_page_queued_twice_adds_nothing(make_omni: Callable[..., Omni], clock: VirtualClock) -> None:
    omni = make_omni(analytics={"broadcast_page_size": 4, "broadcast_pages_per_tick": 1})
    for i in range(10):
        omni.identify(f"c{i:02d}", email=f"c{i}@example.com", traits={"tier": "gold"})
    planned = omni.broadcast("sale", trait("tier") == "gold", channel="email")
    omni.run_until_idle()
    # As if the cursor had been lost with a crash: the worker streams the segment again from the start.
    with omni.store.transaction() as tx:
        tx.execute("UPDATE broadcasts SET status = 'enqueueing', after_customer = '' WHERE id = ?", (planned.id,))
    omni.run_until_idle()
    status = omni.broadcast_status(planned.id)
    assert (status.state, status.enqueued) == ("done", 10)  # streamed to the end, nothing added
    assert len(broadcast_deliveries(omni, planned.id)) == 10


def test_send_time_best_queues_each_recipient_at_their_habitual_hour(shop: Omni, clock: VirtualClock) -> None:
    start = clock.now()
    for day in range(1, 8):  # a week of opens: New York at 18:xx, Paris at 07:xx, their local time
        shop.track("ny", "Message Opened", channel="email",
                   timestamp=datetime(2025, 12, 20 + day, 18, 10, tzinfo=ZoneInfo("America/New_York")))
        shop.track("paris", "Message Opened", channel="email",
                   timestamp=datetime(2025, 12, 20 + day, 7, 40, tzinfo=ZoneInfo("Europe/Paris")))
    planned = shop.broadcast("sale", trait("tier") == "gold", channel="email", send_time="best",
                             within=timedelta(hours=24))
    shop.run_until_idle()
    due = {cid: d.due_at for cid, d in broadcast_deliveries(shop, planned.id).items()}
    assert due["ny"] == datetime(2026, 1, 5, 18, tzinfo=ZoneInfo("America/New_York"))
    assert due["paris"] == datetime(2026, 1, 6, 7, tzinfo=ZoneInfo("Europe/Paris"))
    assert all(start <= when <= start + timedelta(hours=24) for when in due.values())


def test_cancel_stops_what_is_not_sent(shop: Omni, clock: VirtualClock) -> None:
    planned = shop.broadcast("sale", trait("tier") == "gold", local_time=time(23, 0), channel="email")
    shop.run_until_idle()  # queued for 23:00 local: nothing due yet
    status = shop.cancel_broadcast(planned.id)
    assert (status.state, status.cancelled, status.queued) == ("cancelled", 5, 0)
    assert shop.cancel_broadcast(planned.id).cancelled == 5  # twice is harmless
    clock.advance(days=2)
    shop.run_until_idle()
    assert {d.status for d in broadcast_deliveries(shop, planned.id).values()} == {"cancelled"}


def test_cancel_before_start_queues_nothing(shop: Omni, clock: VirtualClock) -> None:
    planned = shop.broadcast("sale", trait("tier") == "gold", at=clock.now() + timedelta(hours=1))
    shop.cancel_broadcast(planned.id)
    clock.advance(hours=2)
    shop.run_until_idle()
    assert broadcast_deliveries(shop, planned.id) == {}
    assert shop.broadcast_status(planned.id).state == "cancelled"


def test_a_message_object_is_registered_and_sent(shop: Omni) -> None:
    flash = Message("flash", email=Email(subject="Flash sale", text="Today only"))
    planned = shop.broadcast(flash, shop.segment(trait("tier") == "silver"))
    shop.run_until_idle()
    assert [(d.template, d.channel, d.status) for d in broadcast_deliveries(shop, planned.id).values()] == [
        ("flash", "email", "sent")]
    assert planned.channels == ()  # no channel named: the dispatcher chose


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"template": "no-such-template"}, NotFoundError, None),
        ({"segment": "gold"}, ValidationError, "segment"),
        ({"channel": "fax"}, UnknownChannelError, "channels[0]"),
        ({"channel": "sms", "channels": ["email"]}, ValidationError, "channels"),
        ({"at": "tomorrow"}, ValidationError, "at"),
        ({"local_time": "10:00"}, ValidationError, "local_time"),
        ({"send_time": "soon"}, ValidationError, "send_time"),
        ({"within": timedelta(hours=4)}, ValidationError, "within"),
        ({"send_time": "best", "local_time": time(10)}, ValidationError, "send_time"),
        ({"purpose": "spam"}, ValidationError, "purpose"),
    ],
)
def test_bad_arguments_are_named(shop: Omni, kwargs: dict[str, Any], error: type[Exception], field: str | None) -> None:
    args: dict[str, Any] = {"template": "sale", "segment": trait("tier") == "gold", **kwargs}
    with pytest.raises(error) as raised:
        shop.broadcast(args.pop("template"), args.pop("segment"), **args)
    if field is not None:
        assert getattr(raised.value, "field", None) == field
    assert shop.broadcasts() == []


def test_unknown_broadcast_and_bad_settings(shop: Omni, make_omni: Callable[..., Omni]) -> None:
    from omnisdk import ConfigError

    with pytest.raises(NotFoundError):
        shop.broadcast_status("bc_nope")
    with pytest.raises(ConfigError, match=r"analytics\.broadcast_page_size"):
        make_omni(analytics={"broadcast_page_size": 0})


def test_merged_away_profiles_get_nothing(shop: Omni) -> None:
    anonymous = shop.identify(None, anonymous_id="web-1", traits={"tier": "gold"}).id
    shop.identify("ny", anonymous_id="web-1")  # the anonymous profile merges into ny
    assert shop.customer(anonymous).id == "ny"
    planned = shop.broadcast("sale", trait("tier") == "gold", channel="email")
    shop.run_until_idle()
    deliveries = broadcast_deliveries(shop, planned.id)
    assert "ny" in deliveries and anonymous not in deliveries


def test_started_at_reports_utc(shop: Omni, clock: VirtualClock) -> None:
    planned = shop.broadcast("sale", trait("tier") == "gold")
    assert planned.starts_at == clock.now() and planned.starts_at.tzinfo == UTC


def test_a_broken_broadcast_is_reported_and_the_others_go_on(shop: Omni, clock: VirtualClock) -> None:
    broken = shop.broadcast("sale", trait("tier") == "gold", channel="email")
    with shop.store.transaction() as tx:  # as if its stored segment no longer compiled against the schema
        tx.execute("UPDATE broadcasts SET segment_sql = ? WHERE id = ?", ("c.no_such_column = ?", broken.id))
    fine = shop.broadcast("sale", trait("tier") == "silver", channel="email")

    shop.run_until_idle()

    assert shop.broadcast_status(fine.id).state == "done"
    status = shop.broadcast_status(broken.id)
    assert status.state == "enqueueing" and "no_such_column" in (status.error or "")
    assert status.enqueued == 0


def test_async_client(store_url: str, clock: VirtualClock) -> None:
    from omnisdk import AsyncOmni

    async def scenario() -> tuple[str, int]:
        async with AsyncOmni(store_url, clock=clock, config={"channels": {"email": {"provider": "memory"}}}) as omni:
            omni.templates.add(SALE)
            await omni.identify("ada", email="ada@example.com", traits={"tier": "gold"})
            await omni.consent("ada", channel="email", granted=True)
            planned = await omni.broadcast("sale", trait("tier") == "gold", channel="email")
            await omni.run_until_idle()
            status = await omni.broadcast_status(planned.id)
            return status.state, status.sent

    assert asyncio.run(scenario()) == ("done", 1)
