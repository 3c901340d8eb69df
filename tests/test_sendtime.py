"""Send-time optimisation on both stores: habits by local hour, the population prior for new customers,
quiet hours avoided when choosing, per-channel learning, and `ctx.send(at="best_time")` in journeys."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from omnisdk import Email, JourneyContext, Message, Omni, ValidationError, VirtualClock, journey
from omnisdk.sendtime import candidate_times, choose, posterior, shares

NY = ZoneInfo("America/New_York")  # the clock starts at 2026-01-05 12:00 UTC = 07:00 in New York
DAY = timedelta(days=1)


@pytest.fixture
def make_omni(store_url: str, clock: VirtualClock) -> Iterator[Callable[..., Omni]]:
    opened: list[Omni] = []

    def make(**config: Any) -> Omni:
        omni = Omni(store_url, clock=clock, config={"channels": {"email": {"provider": "memory"}}, **config})
        omni.templates.add(Message("promo", email=Email(subject="For you", text="Hello")))
        opened.append(omni)
        return omni

    yield make
    for omni in opened:
        omni.close()


def engaged(omni: Omni, cid: str, tz: str, hour: int, *, days: int, event: str = "Message Opened",
            channel: str = "email", minute: int = 20) -> None:
    """`days` events at `hour`:`minute` local time on the days before the clock's now."""
    zone = ZoneInfo(tz)
    today = omni.clock.now().astimezone(zone).date()
    omni.track_many([
        {"who": cid, "event": event, "channel": channel,
         "timestamp": datetime.combine(today - timedelta(days=d), datetime.min.time(), zone).replace(
             hour=hour, minute=minute)}
        for d in range(1, days + 1)
    ])


def crowd(omni: Omni, hour: int, *, people: int = 12, days: int = 3) -> None:
    """A population in several zones, all engaging at `hour` local time."""
    zones = ("America/New_York", "Europe/Paris", "Asia/Tokyo", "Australia/Sydney")
    for i in range(people):
        tz = zones[i % len(zones)]
        omni.identify(f"crowd-{i}", timezone=tz)
        engaged(omni, f"crowd-{i}", tz, hour, days=days)


def test_a_customers_habitual_hour_in_their_zone(make_omni: Callable[..., Omni]) -> None:
    omni = make_omni()
    omni.identify("ada", email="ada@example.com", timezone="America/New_York")
    engaged(omni, "ada", "America/New_York", 19, days=8)
    engaged(omni, "ada", "America/New_York", 8, days=1, event="Link Clicked")

    hours = omni.engagement_hours("ada", channel="email")
    assert (hours.timezone, hours.events, hours.best_hour, hours.counts[19], hours.counts[8]) == (
        "America/New_York", 9, 19, 8.0, 1.0)
    assert omni.best_time("ada", channel="email") == datetime(2026, 1, 5, 19, tzinfo=NY)


def test_a_new_customer_gets_the_population_prior(make_omni: Callable[..., Omni]) -> None:
    omni = make_omni()
    crowd(omni, 12)
    omni.identify("neo", timezone="Asia/Kolkata")  # UTC+05:30, no history: 17:30 there now

    hours = omni.engagement_hours("neo")
    assert hours.events == 0 and hours.best_hour == 12
    assert omni.best_time("neo") == datetime(2026, 1, 6, 12, tzinfo=ZoneInfo("Asia/Kolkata"))


def test_a_few_events_do_not_outweigh_the_prior_but_a_habit_does(make_omni: Callable[..., Omni]) -> None:
    omni = make_omni()
    crowd(omni, 12)
    omni.identify("owl", timezone="Europe/Paris")
    engaged(omni, "owl", "Europe/Paris", 3, days=1)
    assert omni.engagement_hours("owl").best_hour == 12

    engaged(omni, "owl", "Europe/Paris", 3, days=12, minute=40)
    assert omni.engagement_hours("owl").best_hour == 3
    assert omni.best_time("owl") == datetime(2026, 1, 6, 3, tzinfo=ZoneInfo("Europe/Paris"))


def test_a_best_time_inside_quiet_hours_is_avoided(make_omni: Callable[..., Omni]) -> None:
    quiet = make_omni(policies={"quiet_hours": {"start": "21:00", "end": "08:00"}})
    quiet.identify("late", timezone="America/New_York")
    engaged(quiet, "late", "America/New_York", 22, days=10)
    engaged(quiet, "late", "America/New_York", 18, days=3, minute=5)

    assert quiet.engagement_hours("late").best_hour == 22
    assert quiet.best_time("late") == datetime(2026, 1, 5, 18, tzinfo=NY)
    assert quiet.best_time("late", purpose="transactional") == datetime(2026, 1, 5, 22, tzinfo=NY)
    assert make_omni().best_time("late") == datetime(2026, 1, 5, 22, tzinfo=NY)  # no quiet hours configured


def test_channels_are_learned_apart_and_purchases_count_for_every_channel(make_omni: Callable[..., Omni]) -> None:
    omni = make_omni()
    omni.identify("bo", timezone="America/New_York")
    engaged(omni, "bo", "America/New_York", 9, days=6)
    engaged(omni, "bo", "America/New_York", 20, days=6, event="Message Replied", channel="sms")
    engaged(omni, "bo", "America/New_York", 14, days=4, event="Order Completed", channel="pos")

    assert omni.engagement_hours("bo", channel="email").best_hour == 9
    assert omni.engagement_hours("bo", channel="sms").best_hour == 20
    assert omni.engagement_hours("bo", channel="push").best_hour == 14  # nothing on push: when they shop
    assert omni.engagement_hours("bo", channel="push").counts[14] == 4


def test_the_window_bounds_the_choice(make_omni: Callable[..., Omni], clock: VirtualClock) -> None:
    omni = make_omni()
    omni.identify("ada", timezone="America/New_York")
    engaged(omni, "ada", "America/New_York", 19, days=5)
    engaged(omni, "ada", "America/New_York", 10, days=2)
    assert omni.best_time("ada", within=timedelta(hours=6)) == datetime(2026, 1, 5, 10, tzinfo=NY)
    assert omni.best_time("ada", within=timedelta(hours=2)) == clock.now()  # nothing better soon: now
    with pytest.raises(ValidationError):
        omni.best_time("ada", within=timedelta(0))


def test_the_prior_is_cached_in_the_store_and_refreshed_daily(make_omni: Callable[..., Omni],
                                                                clock: VirtualClock) -> None:
    first = make_omni()
    crowd(first, 12, people=4)
    first.identify("neo", timezone="UTC")
    assert first.engagement_hours("neo").best_hour == 12

    crowd(first, 16, people=12, days=5)  # the population moves on
    second = make_omni()  # another worker: reads the stored prior, computed less than a day ago
    assert second.engagement_hours("neo").best_hour == 12
    clock.advance(hours=25)
    assert second.engagement_hours("neo").best_hour == 16


@journey("promo", version="1", trigger="Signed Up")
async def promo_at_best_time(ctx: JourneyContext) -> None:
    await ctx.send("promo", "promo", channel="email", at="best_time", within=timedelta(hours=24))


@journey("bad-window", version="1", trigger="Browsed")
async def window_without_best_time(ctx: JourneyContext) -> None:
    await ctx.send("promo", "promo", channel="email", within=timedelta(hours=2))


def test_a_journey_sends_at_the_customers_best_time(make_omni: Callable[..., Omni], clock: VirtualClock) -> None:
    omni = make_omni()
    omni.register(promo_at_best_time)
    omni.identify("ada", email="ada@example.com", timezone="America/New_York")
    omni.consent("ada", channel="email", granted=True)
    engaged(omni, "ada", "America/New_York", 19, days=8)
    omni.track("ada", "Signed Up")
    omni.run_until_idle()
    (delivery,) = omni.deliveries(customer_id="ada")
    assert (delivery.status, delivery.due_at) == ("queued", datetime(2026, 1, 5, 19, tzinfo=NY))

    clock.set(datetime(2026, 1, 5, 18, 59, tzinfo=NY))
    omni.run_until_idle()
    assert omni.deliveries(customer_id="ada")[0].status == "queued"
    clock.advance(minutes=1)
    omni.run_until_idle()
    (sent,) = omni.deliveries(customer_id="ada")
    assert sent.status == "sent" and sent.sent_at == datetime(2026, 1, 5, 19, tzinfo=NY)


def test_a_window_without_best_time_fails_the_step(make_omni: Callable[..., Omni]) -> None:
    omni = make_omni(journeys={"max_attempts": 1})
    omni.register(window_without_best_time)
    omni.identify("ada", email="ada@example.com")
    omni.track("ada", "Browsed")
    omni.run_until_idle()
    (run,) = omni.runs(journey="bad-window")
    assert run.status == "failed" and "promo.within" in (run.reason or "")
    assert omni.deliveries(customer_id="ada") == []


# -- the maths, by hand
def test_shares_and_posterior_by_hand() -> None:
    assert shares([0.0] * 24) == [1 / 24] * 24
    prior = shares([46.0] + [0.0] * 23)  # 47/70 at midnight, 1/70 elsewhere
    assert prior[0] == pytest.approx(47 / 70) and prior[5] == pytest.approx(1 / 70)
    counts = [0.0] * 24
    counts[5] = 2.0
    smoothed = posterior(counts, prior, strength=8.0)  # (n_h + 8 p_h) / (2 + 8)
    assert smoothed[5] == pytest.approx((2 + 8 / 70) / 10) and smoothed[0] == pytest.approx(8 * 47 / 70 / 10)
    assert sum(smoothed) == pytest.approx(1.0)


def test_candidates_follow_local_hours_even_at_half_hour_offsets() -> None:
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC).timestamp()  # 17:30 in Kolkata
    slots = candidate_times(now, 3 * 3600, ZoneInfo("Asia/Kolkata"))
    assert [datetime.fromtimestamp(s, UTC).strftime("%H:%M") for s in slots] == ["12:00", "12:30", "13:30", "14:30"]


def test_choose_prefers_the_earliest_of_equals_and_the_end_of_quiet_hours_when_all_is_quiet() -> None:
    from omnisdk.policies import QuietHours

    utc = ZoneInfo("UTC")
    now = datetime(2026, 1, 5, 22, 15, tzinfo=UTC).timestamp()
    flat = [1.0] * 24
    assert choose(now, 5 * 3600, utc, flat) == now
    quiet = QuietHours(start=datetime.min.time().replace(hour=21), end=datetime.min.time().replace(hour=8))
    ends = datetime(2026, 1, 6, 8, tzinfo=UTC).timestamp()
    assert choose(now, 5 * 3600, utc, flat, quiet) == ends  # every slot is quiet
    assert choose(now, 12 * 3600, utc, flat, quiet) == ends  # 08:00 is the first slot allowed
    peaked = [1.0] * 24
    peaked[9] = 2.0
    assert choose(now, 24 * 3600, utc, peaked, quiet) == datetime(2026, 1, 6, 9, tzinfo=UTC).timestamp()


