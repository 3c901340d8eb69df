"""Quiet hours across DST: a window that starts or ends in a skipped or repeated local hour defers
a delivery once, to the first allowed instant, through the real dispatcher on a virtual clock."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnisdk import SMS, Message, Omni, VirtualClock
from omnisdk._localtime import wall_instant
from omnisdk.delivery import enqueue_delivery
from omnisdk.policies import QuietHours
from omnisdk.sendtime import candidate_times

NEW_YORK, LONDON = ZoneInfo("America/New_York"), ZoneInfo("Europe/London")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# -- the helper: a wall time as an instant


@pytest.mark.parametrize(("tz", "day", "wall", "expected"), [
    # fall back: 01:00-02:00 happens twice; the first occurrence is taken
    (NEW_YORK, date(2026, 11, 1), time(1, 30), utc(2026, 11, 1, 5, 30)),  # 01:30 EDT, not 01:30 EST (06:30Z)
    (LONDON, date(2026, 10, 25), time(1, 30), utc(2026, 10, 25, 0, 30)),  # 01:30 BST, not 01:30 GMT (01:30Z)
    # spring forward: the skipped times become the instant of the jump
    (NEW_YORK, date(2026, 3, 8), time(2, 30), utc(2026, 3, 8, 7, 0)),  # 03:00 EDT
    (NEW_YORK, date(2026, 3, 8), time(2, 0), utc(2026, 3, 8, 7, 0)),
    (LONDON, date(2026, 3, 29), time(1, 59), utc(2026, 3, 29, 1, 0)),  # 02:00 BST
    # ordinary times either side
    (NEW_YORK, date(2026, 3, 8), time(3, 0), utc(2026, 3, 8, 7, 0)),
    (NEW_YORK, date(2026, 3, 8), time(1, 59), utc(2026, 3, 8, 6, 59)),
    (LONDON, date(2026, 10, 25), time(2, 0), utc(2026, 10, 25, 2, 0)),
])
def test_a_wall_time_is_its_first_instant_at_or_after(tz: ZoneInfo, day: date, wall: time,
                                                      expected: datetime) -> None:
    assert wall_instant(day, wall, tz) == expected.timestamp()


# -- through the dispatcher


@pytest.fixture
def make_omni(store_url: str, clock: VirtualClock) -> Iterator[object]:
    opened: list[Omni] = []

    def make(start: str, end: str) -> Omni:
        omni = Omni(store_url, clock=clock, load_entry_points=False, config={
            "channels": {"sms": {"provider": "memory"}},
            "policies": {"quiet_hours": {"start": start, "end": end}},
        })
        omni.templates.add(Message("promo", sms=SMS(text="Hi")))
        opened.append(omni)
        return omni

    yield make
    for omni in opened:
        omni.close()


def queue(omni: Omni, cid: str, timezone: str) -> str:
    omni.identify(cid, phone="+14155550100", timezone=timezone)
    omni.consent(cid, channel="sms", granted=True)
    with omni.store.transaction() as tx:
        return enqueue_delivery(tx, key=f"run-{cid}:promo", customer_id=cid, template="promo", channels=["sms"],
                                now=omni.clock.timestamp(), run_id=f"run-{cid}", journey="j", step="promo")


def actions(omni: Omni, cid: str) -> list[str]:
    [delivery] = omni.deliveries(customer_id=cid)
    return [d.action for d in delivery.decisions]


DST_CASES = {
    # zone, quiet hours, queued at, the first allowed instant
    "new-york-fold-end": ("America/New_York", "23:00", "01:30", utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 5, 30)),
    "london-fold-end": ("Europe/London", "23:00", "01:30", utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 0, 30)),
    "new-york-gap-end": ("America/New_York", "23:00", "02:30", utc(2026, 3, 8, 5, 0), utc(2026, 3, 8, 7, 0)),
    "london-gap-end": ("Europe/London", "23:00", "01:30", utc(2026, 3, 28, 23, 30), utc(2026, 3, 29, 1, 0)),
    # a window that starts in the repeated hour holds through its second pass
    "new-york-fold-start": ("America/New_York", "01:15", "05:00", utc(2026, 11, 1, 6, 5), utc(2026, 11, 1, 10, 0)),
    "london-fold-start": ("Europe/London", "01:15", "05:00", utc(2026, 10, 25, 1, 5), utc(2026, 10, 25, 5, 0)),
}


@pytest.mark.parametrize("case", DST_CASES.values(), ids=DST_CASES.keys())
def test_quiet_hours_at_a_dst_change_defer_once_to_the_first_allowed_instant(
    make_omni: object, clock: VirtualClock, case: tuple[str, str, str, datetime, datetime]
) -> None:
    timezone, start, end, queued_at, allowed_at = case
    clock.set(queued_at)
    omni = make_omni(start, end)  # type: ignore[operator]
    queue(omni, "c-1", timezone)

    omni.run_until_idle()
    [deferred] = omni.deliveries(customer_id="c-1")
    assert (deferred.status, deferred.due_at) == ("deferred", allowed_at)
    assert actions(omni, "c-1") == ["defer"]

    clock.set(allowed_at - timedelta(minutes=1))
    omni.run_until_idle()
    assert actions(omni, "c-1") == ["defer"]  # still waiting, not deferred again
    assert omni.provider("sms").sent == []  # type: ignore[attr-defined]

    clock.set(allowed_at)
    omni.run_until_idle()
    [sent] = omni.deliveries(customer_id="c-1")
    assert (sent.status, sent.sent_at) == ("sent", allowed_at)
    assert actions(omni, "c-1") == ["defer", "send", "sent"]


@pytest.mark.parametrize(("timezone", "second_pass"), [
    ("America/New_York", utc(2026, 11, 1, 6, 10)),  # 01:10 EST, after 01:30 EDT ended the window
    ("Europe/London", utc(2026, 10, 25, 1, 10)),  # 01:10 GMT, after 01:30 BST
])
@pytest.mark.timeout(120)  # the old code looped here for ever
def test_the_second_pass_of_a_repeated_hour_after_the_window_ended_is_not_quiet(
    make_omni: object, clock: VirtualClock, timezone: str, second_pass: datetime
) -> None:
    """It used to defer again and again to the first 01:30, already past (a loop)."""
    clock.set(second_pass)
    omni = make_omni("23:00", "01:30")  # type: ignore[operator]
    queue(omni, "c-1", timezone)

    omni.run_until_idle()

    assert actions(omni, "c-1") == ["send", "sent"]


# -- every zone, every kind of night: an oracle that only reads clocks (instant -> wall time)

ZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))
#: Zones that change their clocks: where the hard cases are.
DST_ZONES = [z for z in ZONES if len({ZoneInfo(z).utcoffset(datetime(2026, m, 1)) for m in (1, 4, 7, 10)}) > 1]
MINUTE = 60


@lru_cache(maxsize=256)
def transitions(name: str, year: int) -> tuple[int, ...]:
    """Instants (epoch seconds) when the zone's offset changes in `year`."""
    tz = ZoneInfo(name)
    found = []
    at = int(utc(year, 1, 1).timestamp())
    end = int(utc(year + 1, 1, 1).timestamp())
    offset = datetime.fromtimestamp(at, tz).utcoffset()
    while at < end:
        step = at + 3 * 3600
        if datetime.fromtimestamp(step, tz).utcoffset() != offset:
            low, high = at, step
            while high - low > MINUTE:
                middle = (low + high) // 2 // MINUTE * MINUTE
                if middle <= low:
                    break
                if datetime.fromtimestamp(middle, tz).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            found.append(high)
            offset = datetime.fromtimestamp(step, tz).utcoffset()
        at = step
    return tuple(found)


def wall_minute(value: int) -> time:
    return time(value // 60, value % 60)


@st.composite
def nights(draw: st.DrawFn) -> tuple[str, int, time, time]:
    """A zone, an instant near one of its offset changes (or anywhere), and a quiet window whose
    ends are often close to the local time of that change."""
    name = draw(st.sampled_from(DST_ZONES) | st.sampled_from(ZONES))
    year = draw(st.integers(2000, 2037))
    changes = transitions(name, year)
    if changes and draw(st.integers(0, 3)):  # mostly next to a change
        pivot = draw(st.sampled_from(changes))
    else:
        pivot = int(utc(year, 1, 1).timestamp()) + draw(st.integers(0, 364)) * 86400
    now = pivot + draw(st.integers(-3 * 60, 3 * 60) | st.integers(-30 * 60, 30 * 60)) * MINUTE
    local = datetime.fromtimestamp(pivot, ZoneInfo(name))
    near = local.hour * 60 + local.minute
    minute = st.one_of(st.integers(near - 90, near + 90).map(lambda m: m % 1440), st.integers(0, 1439))
    start, end = draw(minute), draw(minute)
    if start == end:
        end = (end + 1) % 1440
    return name, now, wall_minute(start), wall_minute(end)


class Oracle:
    """Quiet windows found by reading the clock minute by minute: a night's window runs from the
    first minute whose wall time reaches `start` to the first whose wall time reaches `end`."""

    def __init__(self, tz: ZoneInfo, now: int, quiet: QuietHours) -> None:
        self.first = now - 4 * 86400
        walls = [datetime.fromtimestamp(self.first + i * MINUTE, tz).replace(tzinfo=None)
                 for i in range(8 * 86400 // MINUTE)]
        self.reached = list(itertools.accumulate(walls, max))  # the latest wall time shown so far
        today = datetime.fromtimestamp(now, tz).date()
        overnight = quiet.start > quiet.end
        self.windows = []
        for days in range(-2, 3):
            day = today + timedelta(days=days)
            end_day = day + timedelta(days=1) if overnight else day
            self.windows.append((self._reaches(datetime.combine(day, quiet.start)),
                                 self._reaches(datetime.combine(end_day, quiet.end))))

    def _reaches(self, wall: datetime) -> int:
        return self.first + bisect.bisect_left(self.reached, wall) * MINUTE

    def quiet(self, at: int) -> bool:
        return any(start <= at < end for start, end in self.windows)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nights())
def test_the_end_of_quiet_hours_is_allowed_and_nothing_earlier_is(night: tuple[str, int, time, time]) -> None:
    name, now, start, end = night
    tz = ZoneInfo(name)
    quiet = QuietHours(start=start, end=end)
    oracle = Oracle(tz, now, quiet)

    until = quiet.ends_at(now, tz)

    if not oracle.quiet(now):
        assert until is None
        return
    assert until is not None
    assert not oracle.quiet(int(until))  # allowed
    assert all(oracle.quiet(at) for at in range(now, int(until), MINUTE))  # and no earlier minute is
    assert until == int(until) and until % MINUTE == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nights())
def test_send_time_slots_are_the_starts_of_local_hours(night: tuple[str, int, time, time]) -> None:
    """A slot is each minute when the clock first shows a new local hour (a repeated hour is not new)."""
    name, now, _, _ = night
    tz = ZoneInfo(name)
    within = 30 * 3600

    slots = candidate_times(now, within, tz)

    def hour(at: int) -> datetime:
        return datetime.fromtimestamp(at, tz).replace(tzinfo=None, minute=0, second=0, fold=0)

    # The latest hour the clock has shown, counting the hours before `now`: when `now` falls in the
    # second pass of a fold, the hours it repeats were shown already and are not new.
    latest = max(hour(at) for at in range(now - 4 * 3600, now + 1, MINUTE))
    starts = []
    for at in range(now + MINUTE, now + within + 1, MINUTE):
        if hour(at) > latest:
            starts.append(at)
            latest = hour(at)
    assert slots == [now, *starts]
