"""The send-time rules from `config["policies"]`, parsed once: quiet hours, caps, dedupe, suppression."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, time, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from .._customers import PURPOSES, Customer
from .._errors import ConfigError
from .._localtime import wall_instant, zone
from .._touchpoints import MESSAGE_CHANNELS
from ..experiments._assign import GlobalControl
from ._addresses import CORE_ADDRESSES, Addresses

__all__ = [
    "ENGAGEMENT_EVENTS",
    "FrequencyCap",
    "Policy",
    "PolicyContext",
    "PolicyRules",
    "QuietHours",
    "Verdict",
    "parse_duration",
]

#: Touchpoints that show a customer engages on a channel (used to choose the best channel).
ENGAGEMENT_EVENTS: Final = ("Message Opened", "Link Clicked", "Message Replied")
#: Automatic channel choice tries these, after the customer's own preferences. Direct mail and
#: POS cost money or need a visit, so they are only used when a send names them.
DEFAULT_CHANNEL_ORDER: Final = ("email", "push", "sms", "social")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)?\s*$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any, field: str) -> float:
    """Seconds from "30m", "24h", "7d", "2w" (a bare number is seconds; "0" turns a window off)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise ConfigError(f"expected a duration like '30m', '24h' or '7d', got {value!r}", field=field)
    return float(match[1]) * _UNIT_SECONDS[match[2] or "s"]


def _clock_time(value: Any, field: str) -> time:
    if isinstance(value, time):
        return value
    try:
        return time.fromisoformat(value)
    except (TypeError, ValueError):
        raise ConfigError(f"expected a local time like '21:00', got {value!r}", field=field) from None


def _checked_zone(name: Any, field: str) -> str:
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(f"not an IANA time zone: {name!r}", field=field) from None
    return str(name)


@attrs.frozen(kw_only=True)
class QuietHours:
    """A nightly window in the customer's local time; sends inside it wait for its end."""

    start: time
    end: time
    purposes: tuple[str, ...] = ("marketing",)
    channels: tuple[str, ...] = MESSAGE_CHANNELS

    def applies(self, purpose: str, channel: str) -> bool:
        return purpose in self.purposes and channel in self.channels

    def ends_at(self, now: float, tz: ZoneInfo) -> float | None:
        """The first instant at or after `now` outside quiet hours, or None when `now` is outside them.

        Each night's window is one span of time, from the first instant at or after `start` to the
        first at or after `end` (`wall_instant`: a time skipped by DST means the moment after the
        jump; a repeated one its first occurrence). So a window that ends in a repeated hour is
        over at the first pass, and its second pass is not quiet again.
        """
        until: float | None = None
        for _ in range(3):  # two windows touch only when both ends fall in one DST gap
            end = self._window_end(now, tz)
            if end is None:
                return until
            until = now = end
        return until

    def _window_end(self, now: float, tz: ZoneInfo) -> float | None:
        """The end of the window that contains `now`, or None."""
        today = datetime.fromtimestamp(now, tz).date()
        overnight = self.start > self.end
        for days in (-2, -1, 0, 1):
            day = today + timedelta(days=days)
            starts = wall_instant(day, self.start, tz)
            ends = wall_instant(day + timedelta(days=1) if overnight else day, self.end, tz)
            if starts <= now < ends:
                return ends
        return None

    def describe(self, tz_name: str) -> str:
        return f"quiet hours {self.start:%H:%M}-{self.end:%H:%M} {tz_name}"


@attrs.frozen
class FrequencyCap:
    """At most `limit` messages of a purpose within `window` seconds, on all channels together."""

    limit: int
    window: float
    text: str

    @classmethod
    def parse(cls, value: Any, field: str) -> FrequencyCap:
        if isinstance(value, str) and "/" in value:
            count, _, window = value.partition("/")
            if count.strip().isdigit():
                return cls(int(count), parse_duration(window, field), value.strip())
        raise ConfigError(f"expected a cap like '3/7d' (3 messages per 7 days), got {value!r}", field=field)


@attrs.frozen(kw_only=True)
class PolicyContext:
    """What a plugin policy sees for one candidate channel."""

    customer: Customer
    channel: str
    purpose: str
    template: str
    now: float
    journey: str | None = None
    step: str | None = None
    data: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class Verdict:
    """A plugin policy's objection: skip this channel, or defer the whole delivery until `until`."""

    action: Literal["skip", "defer"]
    reason: str
    until: float | None = None


#: A plugin policy: return None to allow, or a `Verdict`. Its `name` (or `__name__`) labels the decision log.
Policy = Callable[[PolicyContext], "Verdict | None"]


def _per_purpose(key: str, value: Any) -> Mapping[str, Any]:
    """`key = VALUE` applies to marketing; `key = { marketing = VALUE, ... }` names the purposes."""
    table = value if isinstance(value, Mapping) else {"marketing": value}
    for purpose in table:
        if purpose not in PURPOSES:
            raise ConfigError(
                f"unknown purpose; expected one of {', '.join(PURPOSES)}", field=f"policies.{key}.{purpose}"
            )
    return table


@attrs.frozen(kw_only=True)
class PolicyRules:
    """Every send-time rule, ready for `decide`. Build it once per client with `from_config`."""

    quiet_hours: QuietHours | None = None
    default_timezone: str = "UTC"
    frequency_caps: Mapping[str, tuple[FrequencyCap, ...]] = attrs.field(factory=dict)
    dedupe: Mapping[str, float] = attrs.field(factory=lambda: {"marketing": 86400.0})
    suppress: tuple[tuple[str, tuple[str, ...]], ...] = ()
    channel_order: tuple[str, ...] = DEFAULT_CHANNEL_ORDER
    engagement_window: float = 30 * 86400.0
    custom: tuple[tuple[str, Policy], ...] = ()
    #: `[experiments] global_control`: the customers no marketing message reaches (None: nobody).
    global_control: GlobalControl | None = None
    #: Which identity kinds address each channel (the client's plugins add theirs): "reachable?".
    addresses: Addresses = attrs.field(default=CORE_ADDRESSES, eq=False)

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None, custom: Sequence[Policy] = (), *,
                    global_control: GlobalControl | None = None,
                    addresses: Addresses = CORE_ADDRESSES) -> PolicyRules:
        """Parse `[policies]`; bad values raise `ConfigError` naming the key (`policies.quiet_hours.start`).
        `global_control` comes from `[experiments]` (`experiments.ExperimentSettings`), `addresses`
        from the client's identity kinds."""
        section = dict(section or {})
        known = ("quiet_hours", "default_timezone", "frequency_cap", "dedupe", "suppress", "channel_order",
                 "engagement_window")
        for key in section:
            if key not in known:
                raise ConfigError(f"unknown policy; expected one of {', '.join(known)}", field=f"policies.{key}")
        kwargs: dict[str, Any] = {}
        if "quiet_hours" in section:
            kwargs["quiet_hours"] = _quiet_hours(section["quiet_hours"])
        if "default_timezone" in section:
            kwargs["default_timezone"] = _checked_zone(section["default_timezone"], "policies.default_timezone")
        if "frequency_cap" in section:
            caps = {}
            for purpose, value in _per_purpose("frequency_cap", section["frequency_cap"]).items():
                values = value if isinstance(value, list | tuple) else [value]
                caps[purpose] = tuple(FrequencyCap.parse(v, f"policies.frequency_cap.{purpose}") for v in values)
            kwargs["frequency_caps"] = caps
        if "dedupe" in section:
            table = _per_purpose("dedupe", section["dedupe"])
            windows = {p: parse_duration(v, f"policies.dedupe.{p}") for p, v in table.items()}
            kwargs["dedupe"] = {p: w for p, w in windows.items() if w > 0}
        if "suppress" in section:
            kwargs["suppress"] = _suppress(section["suppress"])
        if "channel_order" in section:
            order = section["channel_order"]
            if not isinstance(order, list | tuple) or any(c not in MESSAGE_CHANNELS for c in order):
                raise ConfigError(f"expected a list of channels from {', '.join(MESSAGE_CHANNELS)}",
                                  field="policies.channel_order")
            kwargs["channel_order"] = tuple(order)
        if "engagement_window" in section:
            kwargs["engagement_window"] = parse_duration(section["engagement_window"], "policies.engagement_window")
        kwargs["custom"] = tuple((str(getattr(p, "name", None) or getattr(p, "__name__", repr(p))), p) for p in custom)
        return cls(**kwargs, global_control=global_control, addresses=addresses)

    def goals_for(self, template: str, data: Mapping[str, Any]) -> tuple[str, ...]:
        """Events that, once they happen after a send was queued, make it pointless (the customer bought)."""
        if not self.suppress and not (isinstance(data, Mapping) and "skip_if" in data):
            return ()  # the usual case, asked twice per delivery
        goals: list[str] = []
        for pattern, events in self.suppress:
            if fnmatch.fnmatchcase(template, pattern):
                goals.extend(events)
        skip_if = data.get("skip_if") if isinstance(data, Mapping) else None
        if isinstance(skip_if, str):
            goals.append(skip_if)
        elif isinstance(skip_if, list | tuple):
            goals.extend(str(e) for e in skip_if)
        return tuple(dict.fromkeys(goals))

    @property
    def history_window(self) -> float:
        """How far back deliveries matter for caps and dedupe, of any purpose."""
        return self.window_for({*self.frequency_caps, *self.dedupe})

    def window_for(self, purposes: Collection[str]) -> float:
        """How far back deliveries matter for the caps and dedupe of sends with these purposes (0: not at all)."""
        windows = [c.window for p in purposes for c in self.frequency_caps.get(p, ())]
        windows += [self.dedupe[p] for p in purposes if p in self.dedupe]
        return max(windows, default=0.0)


def _quiet_hours(value: Any) -> QuietHours:
    field = "policies.quiet_hours"
    if not isinstance(value, Mapping) or "start" not in value or "end" not in value:
        raise ConfigError("expected { start = \"21:00\", end = \"08:00\" }", field=field)
    start, end = _clock_time(value["start"], f"{field}.start"), _clock_time(value["end"], f"{field}.end")
    if start == end:
        raise ConfigError("start and end are the same time", field=field)
    purposes = tuple(value.get("purposes", ("marketing",)))
    channels = tuple(value.get("channels", MESSAGE_CHANNELS))
    for p in purposes:
        if p not in PURPOSES:
            raise ConfigError(f"unknown purpose {p!r}", field=f"{field}.purposes")
    for c in channels:
        if c not in MESSAGE_CHANNELS:
            raise ConfigError(f"unknown channel {c!r}", field=f"{field}.channels")
    return QuietHours(start=start, end=end, purposes=purposes, channels=channels)


def _suppress(value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, Mapping):
        raise ConfigError("expected { \"template-glob\" = [\"Order Completed\"] }", field="policies.suppress")
    rules = []
    for pattern, events in value.items():
        names = [events] if isinstance(events, str) else events
        if not isinstance(names, list | tuple) or not all(isinstance(e, str) and e for e in names):
            raise ConfigError("expected a list of event names", field=f"policies.suppress.{pattern}")
        rules.append((str(pattern), tuple(names)))
    return tuple(rules)
